//! One direction's bytes of an exchange (a request, or its reply): how many, when the first
//! and the last came, and the first ones as long as they follow on without a gap.

/// Bytes of one direction of one exchange, in the order they were sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bytes {
    /// How many bytes, seen or only counted.
    pub total: u64,
    /// When the first and the latest came, in µs since the Unix epoch.
    pub first_us: Option<u64>,
    pub last_us: Option<u64>,
    /// The first bytes, up to the first gap or the keep limit.
    kept: Vec<u8>,
    /// A gap came: nothing more is kept.
    gapped: bool,
}

impl Bytes {
    /// `len` more bytes at `at_us`, of which `known` (at most `len`) are the first ones;
    /// the first `keep` bytes are kept at most.
    pub fn add(&mut self, at_us: u64, known: &[u8], len: u64, keep: usize) {
        if len == 0 {
            return;
        }
        self.first_us.get_or_insert(at_us);
        self.last_us = Some(at_us);
        self.total += len;
        if self.gapped {
            return;
        }
        let room = keep.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&known[..known.len().min(room)]);
        if (known.len() as u64) < len {
            self.gapped = true;
        }
    }

    /// The first bytes, as far as they are known without a gap.
    pub fn kept(&self) -> &[u8] {
        &self.kept
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_counted_timed_and_kept_up_to_a_gap() {
        let mut bytes = Bytes::default();
        bytes.add(10, b"abc", 3, 8);
        bytes.add(12, b"de", 5, 8);
        bytes.add(15, b"xyz", 3, 8);
        assert_eq!(bytes.total, 11);
        assert_eq!((bytes.first_us, bytes.last_us), (Some(10), Some(15)));
        assert_eq!(bytes.kept(), b"abcde", "nothing after the gap");
    }

    #[test]
    fn the_keep_limit_holds() {
        let mut bytes = Bytes::default();
        bytes.add(1, b"abcdef", 6, 4);
        bytes.add(2, b"gh", 2, 4);
        assert_eq!((bytes.kept(), bytes.total), (&b"abcd"[..], 8));
        bytes.add(3, b"", 0, 4);
        assert_eq!(bytes.last_us, Some(2), "nothing is no news");
    }
}
