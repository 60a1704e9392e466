//! The protocol families a comparison knows, which one a session speaks (from `--protocol`
//! or guessed from its first request), and the heads a record shows: a request's or a
//! reply's first line for HTTP, its first bytes escaped otherwise.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::classify::{self, Classified, Reply};

/// A request/response protocol family.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.x: replies classed by status code.
    Http,
    /// memcached's text protocol: STORED, VALUE, END, NOT_FOUND, ERROR, ...
    Memcached,
    /// redis RESP: +simple, -error, :integer, $bulk, *array.
    Redis,
    /// Any other: replies compared by their size and first bytes.
    Generic,
}

impl Protocol {
    /// The name `--protocol` and the records use.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Memcached => "memcached",
            Protocol::Redis => "redis",
            Protocol::Generic => "generic",
        }
    }

    /// The family of a session whose first request starts with `request`.
    pub fn guess(request: &[u8]) -> Protocol {
        if classify::http::is_request(request) {
            Protocol::Http
        } else if classify::redis::is_request(request) {
            Protocol::Redis
        } else if classify::memcached::is_request(request) {
            Protocol::Memcached
        } else {
            Protocol::Generic
        }
    }

    /// The class of `reply`, answering a request that starts with `request`.
    pub fn classify(self, request: &[u8], reply: Reply<'_>) -> Classified {
        match self {
            Protocol::Http => classify::http::classify(request, reply),
            Protocol::Memcached => classify::memcached::classify(reply),
            Protocol::Redis => classify::redis::classify(reply),
            Protocol::Generic => classify::generic::classify(),
        }
    }

    /// A head as a record shows it: for HTTP the first line, otherwise the first bytes;
    /// escaped, of at most `max` bytes.
    pub fn head(self, bytes: &[u8], max: usize) -> String {
        let shown = match self {
            Protocol::Http => first_line(bytes),
            _ => bytes,
        };
        escape(&shown[..shown.len().min(max)])
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `bytes` up to the first CR or LF.
pub fn first_line(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(bytes.len());
    &bytes[..end]
}

/// Bytes as text a terminal and JSON take: printable ASCII as it is, `\\`, `\r`, `\n`, `\t`,
/// and `\xHH` for every other byte.
pub fn escape(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for &byte in bytes {
        match byte {
            b'\\' => text.push_str("\\\\"),
            b'\r' => text.push_str("\\r"),
            b'\n' => text.push_str("\\n"),
            b'\t' => text.push_str("\\t"),
            0x20..=0x7e => text.push(char::from(byte)),
            _ => text.push_str(&format!("\\x{byte:02x}")),
        }
    }
    text
}

/// What [`escape`] made of some bytes, back as the bytes; `None` for text it cannot have
/// written.
pub fn unescape(text: &str) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut chars = text.bytes();
    while let Some(byte) = chars.next() {
        if byte != b'\\' {
            bytes.push(byte);
            continue;
        }
        match chars.next()? {
            b'\\' => bytes.push(b'\\'),
            b'r' => bytes.push(b'\r'),
            b'n' => bytes.push(b'\n'),
            b't' => bytes.push(b'\t'),
            b'x' => {
                let hex = [chars.next()?, chars.next()?];
                let hex = std::str::from_utf8(&hex).ok()?;
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
            }
            _ => return None,
        }
    }
    Some(bytes)
}

/// The group a request head belongs to in a report (`stats compare --by head`): for HTTP
/// the method and the path without its query, for memcached the command and its first key,
/// for redis the command name and its first argument, otherwise the head's first line.
pub fn group(protocol: Protocol, head: &str) -> String {
    let line = match unescape(head) {
        Some(bytes) => bytes,
        None => return head.to_owned(),
    };
    let words = |bytes: &[u8], n: usize| -> String {
        String::from_utf8_lossy(first_line(bytes))
            .split_ascii_whitespace()
            .take(n)
            .collect::<Vec<_>>()
            .join(" ")
    };
    match protocol {
        Protocol::Http => {
            let line = words(&line, 2);
            match line.split_once('?') {
                Some((path, _)) => path.to_owned(),
                None => line,
            }
        }
        Protocol::Memcached => words(&line, 2),
        Protocol::Redis => match classify::redis::command_words(&line, 2) {
            Some(words) => words.join(" "),
            None => words(&line, 2),
        },
        Protocol::Generic => escape(first_line(&line)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_request_names_the_protocol() {
        assert_eq!(
            Protocol::guess(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n"),
            Protocol::Http
        );
        assert_eq!(
            Protocol::guess(b"POST /upload HTTP/1.0\r\n"),
            Protocol::Http
        );
        assert_eq!(
            Protocol::guess(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
            Protocol::Redis
        );
        assert_eq!(Protocol::guess(b"get key1\r\n"), Protocol::Memcached);
        assert_eq!(
            Protocol::guess(b"set k 0 0 1\r\nx\r\n"),
            Protocol::Memcached
        );
        assert_eq!(Protocol::guess(b"\x16\x03\x01\x02\x00"), Protocol::Generic);
        assert_eq!(
            Protocol::guess(b"GET key\r\n"),
            Protocol::Generic,
            "no HTTP version"
        );
        assert_eq!(Protocol::guess(b""), Protocol::Generic);
    }

    #[test]
    fn heads_are_the_first_line_for_http_and_escaped_bytes_otherwise() {
        let http = b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(Protocol::Http.head(http, 64), "GET /index.html HTTP/1.1");
        assert_eq!(Protocol::Http.head(http, 5), "GET /");
        assert_eq!(Protocol::Memcached.head(b"get k\r\n", 64), "get k\\r\\n");
        assert_eq!(
            Protocol::Generic.head(b"\x00\xffa\\", 64),
            "\\x00\\xffa\\\\"
        );
        assert_eq!(Protocol::Generic.head(b"abcdef", 3), "abc");
    }

    #[test]
    fn escaping_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(unescape(&escape(&bytes)), Some(bytes));
        assert_eq!(unescape("\\q"), None);
        assert_eq!(unescape("\\x4"), None);
    }

    #[test]
    fn groups_drop_what_varies() {
        assert_eq!(group(Protocol::Http, "GET /a/b?id=7 HTTP/1.1"), "GET /a/b");
        assert_eq!(
            group(Protocol::Http, "POST /upload HTTP/1.1"),
            "POST /upload"
        );
        assert_eq!(group(Protocol::Memcached, "get user:1\\r\\n"), "get user:1");
        assert_eq!(
            group(
                Protocol::Redis,
                "*2\\r\\n$3\\r\\nGET\\r\\n$6\\r\\nuser:1\\r\\n"
            ),
            "GET user:1"
        );
        assert_eq!(group(Protocol::Generic, "abc\\r\\ndef"), "abc");
    }
}
