//! The input side shared by both stream decoders: bytes received but not yet decoded, and
//! the error that ended the stream, if any.
//!
//! Owns buffering only; it knows no frame layout. Consumed bytes are reclaimed lazily, so a
//! steady stream reuses one allocation, and a buffer emptied after a burst gives back all
//! but [`KEPT_CAPACITY`] (thousands of idle connections keep no burst's memory).

use super::ProtoError;

/// Capacity an emptied buffer keeps.
const KEPT_CAPACITY: usize = 4 * 1024;

/// Bytes fed from a TCP stream, consumed from the front.
#[derive(Debug, Default)]
pub(crate) struct StreamBuf {
    bytes: Vec<u8>,
    start: usize,
    failed: Option<ProtoError>,
}

impl StreamBuf {
    /// Appends bytes received from the stream.
    pub(crate) fn feed(&mut self, more: &[u8]) {
        if self.start > 0 && self.start >= self.bytes.len() / 2 {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
        self.bytes.extend_from_slice(more);
    }

    /// The bytes not consumed yet.
    pub(crate) fn pending(&self) -> &[u8] {
        self.bytes.get(self.start..).unwrap_or_default()
    }

    /// The first `len` pending bytes, or `None` until that many have arrived.
    pub(crate) fn peek(&self, len: usize) -> Option<&[u8]> {
        self.pending().get(..len)
    }

    /// Drops `len` bytes from the front.
    pub(crate) fn consume(&mut self, len: usize) {
        self.start = self.start.saturating_add(len).min(self.bytes.len());
        if self.start == self.bytes.len() {
            self.bytes.clear();
            self.bytes.shrink_to(KEPT_CAPACITY);
            self.start = 0;
        }
    }

    /// The error that ended the stream, if one did.
    pub(crate) fn check(&self) -> Result<(), ProtoError> {
        self.failed.clone().map_or(Ok(()), Err)
    }

    /// Passes `result` through, remembering an error so every later call returns it too.
    pub(crate) fn latch<T>(&mut self, result: Result<T, ProtoError>) -> Result<T, ProtoError> {
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumes_from_the_front_across_feeds() {
        let mut buf = StreamBuf::default();
        buf.feed(&[1, 2, 3]);
        assert_eq!(buf.peek(2), Some(&[1, 2][..]));
        assert_eq!(buf.peek(4), None);
        buf.consume(2);
        buf.feed(&[4, 5]);
        assert_eq!(buf.pending(), &[3, 4, 5]);
        buf.consume(10);
        assert!(buf.pending().is_empty());
    }

    #[test]
    fn an_emptied_buffer_gives_back_a_burst() {
        let mut buf = StreamBuf::default();
        buf.feed(&[0; 64 * 1024]);
        buf.consume(64 * 1024);
        assert!(
            buf.bytes.capacity() <= KEPT_CAPACITY,
            "{}",
            buf.bytes.capacity()
        );
    }

    #[test]
    fn an_error_is_latched() {
        let mut buf = StreamBuf::default();
        assert_eq!(buf.check(), Ok(()));
        let error = ProtoError::UnknownRecordType { record_type: 9 };
        assert_eq!(buf.latch::<()>(Err(error.clone())), Err(error.clone()));
        assert_eq!(buf.check(), Err(error));
    }
}
