//! Reply classifiers, one small module per protocol family: what class a reply is (`200`,
//! `VALUE`, `$nil`, ...) and whether its bytes make exactly one whole reply.
//!
//! A classifier sees a [`Reply`]: the reply's first bytes, as far as they are known without
//! a gap, and how many bytes the reply has in all. The online side keeps the first few KiB
//! of each reply; the target side knows what intercept's payload prefixes carried (the
//! start of each reply packet). So the class comes from the head, and the framing from the
//! head as far as it reaches: a length it announces is checked against the byte count even
//! beyond the bytes kept.

pub mod generic;
pub mod http;
pub mod memcached;
pub mod redis;

/// The bytes of one reply a classifier sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<'a> {
    /// The reply's first bytes, without a gap.
    pub known: &'a [u8],
    /// The reply's length in bytes (at least `known.len()`).
    pub total: u64,
}

impl<'a> Reply<'a> {
    /// A reply whose bytes are all known.
    pub fn whole(bytes: &'a [u8]) -> Reply<'a> {
        Reply {
            known: bytes,
            total: bytes.len() as u64,
        }
    }

    /// Every byte of the reply is known.
    fn all_known(&self) -> bool {
        self.known.len() as u64 >= self.total
    }

    /// The framing a parse of the known bytes found.
    fn framing(&self, parse: Parse) -> Framing {
        match parse {
            Parse::Ends(end) if end == self.total => Framing::Complete,
            Parse::Ends(end) if end < self.total => Framing::Excess,
            Parse::Ends(_) => Framing::Short,
            Parse::NeedMore if self.all_known() => Framing::Short,
            Parse::NeedMore | Parse::Bad => Framing::Unknown,
        }
    }
}

/// A reply's class and framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// What kind of reply: the status code, the reply word, the RESP type.
    pub class: String,
    pub framing: Framing,
}

impl Classified {
    fn new(class: impl Into<String>, framing: Framing) -> Classified {
        Classified {
            class: class.into(),
            framing,
        }
    }

    /// Bytes that are not a reply of the protocol.
    fn unrecognized() -> Classified {
        Classified::new(UNRECOGNIZED, Framing::Unknown)
    }
}

/// The class of bytes that are not a reply of the protocol.
pub const UNRECOGNIZED: &str = "unrecognized";

/// Whether a reply's bytes are one whole reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly one whole reply.
    Complete,
    /// Fewer bytes than the reply announced (so far; for good once the side ended).
    Short,
    /// More bytes than one reply: a second one (pipelined requests) or bytes after it.
    Excess,
    /// Its end cannot be told: the framing lies beyond the bytes kept, or there is none
    /// (a body that ends with the connection, a protocol without framing).
    Unknown,
}

/// Where a parse of the known bytes got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parse {
    /// One whole reply ends after this many bytes.
    Ends(u64),
    /// The known bytes end before the reply's framing does.
    NeedMore,
    /// Not a reply of the protocol.
    Bad,
}

/// The line starting at `from`: its bytes without CRLF, and where the next one starts.
fn line_at(bytes: &[u8], from: usize) -> Option<(&[u8], usize)> {
    let rest = bytes.get(from..)?;
    let end = rest.windows(2).position(|pair| pair == b"\r\n")?;
    Some((&rest[..end], from + end + 2))
}

/// An unsigned decimal number of at most 18 digits.
fn decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 18 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}
