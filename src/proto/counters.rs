//! Counters: intercept's statistics, sent to copy in version 7.
//!
//! Owns the [`Counter`] value, the well-known ids and the counters frame body
//! (`count u16 | count × (id u16 | value u64)`). Values are whatever intercept counted; the
//! codec only carries them.

use super::wire::Reader;
use super::{ProtoError, v7};

/// One named statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Counter {
    pub id: u16,
    pub value: u64,
}

/// Well-known counter ids. A receiver shows an id it does not know by its number.
pub mod counter_id {
    /// Replies intercept captured, all connections together.
    pub const REPLIES_CAPTURED: u16 = 1;
    /// Replies sent on this connection.
    pub const REPLIES_SENT: u16 = 2;
    /// Replies dropped because no connection had registered their flow.
    pub const REPLIES_UNROUTED: u16 = 3;
    /// Replies for this connection dropped because its outbound buffer was full.
    pub const REPLIES_DROPPED_SLOW: u16 = 4;
    /// Flows currently registered by this connection.
    pub const ROUTES: u16 = 5;
}

const COUNTER_LEN: usize = 10;

/// Appends a version-7 counters frame. Fails, leaving `out` untouched, when the counters do
/// not fit one frame (more than 6553).
pub fn encode_counters(counters: &[Counter], out: &mut Vec<u8>) -> Result<(), ProtoError> {
    let count = u16::try_from(counters.len()).map_err(|_| ProtoError::FrameTooLarge {
        len: counters.len().saturating_mul(COUNTER_LEN),
    })?;
    v7::write_frame(v7::FRAME_COUNTERS, out, |body| {
        body.extend_from_slice(&count.to_be_bytes());
        for counter in counters {
            body.extend_from_slice(&counter.id.to_be_bytes());
            body.extend_from_slice(&counter.value.to_be_bytes());
        }
    })
}

/// Reads a counters body.
pub(crate) fn decode_counters(body: &[u8]) -> Result<Vec<Counter>, ProtoError> {
    let mut reader = Reader::new(body, "v7 counters");
    let count = reader.u16()?;
    // The count is checked against the body before anything is allocated for it.
    let needed = 2 + usize::from(count) * COUNTER_LEN;
    if body.len() < needed {
        return Err(ProtoError::Truncated {
            what: "v7 counters",
            needed,
            had: body.len(),
        });
    }
    (0..count)
        .map(|_| {
            Ok(Counter {
                id: reader.u16()?,
                value: reader.u64()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_round_trip_with_a_fixed_layout() {
        let counters = [
            Counter {
                id: counter_id::REPLIES_SENT,
                value: 42,
            },
            Counter {
                id: 0x8001,
                value: u64::MAX,
            },
        ];
        let mut out = Vec::new();
        encode_counters(&counters, &mut out).unwrap();
        assert_eq!(&out[..6], &[0x00, 0x03, 0x00, 0x16, 0x00, 0x02]);
        assert_eq!(&out[6..16], &[0, 2, 0, 0, 0, 0, 0, 0, 0, 42]);
        assert_eq!(decode_counters(&out[4..]), Ok(counters.to_vec()));
    }

    #[test]
    fn a_count_beyond_the_body_is_caught_before_allocating() {
        assert_eq!(
            decode_counters(&[0xff, 0xff, 0, 1]),
            Err(ProtoError::Truncated {
                what: "v7 counters",
                needed: 655_352,
                had: 4
            })
        );
    }

    #[test]
    fn trailing_bytes_are_ignored_and_too_many_counters_refused() {
        let mut body = vec![0, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 9];
        body.extend_from_slice(b"future");
        assert_eq!(
            decode_counters(&body),
            Ok(vec![Counter { id: 5, value: 9 }])
        );
        let many = vec![Counter { id: 1, value: 1 }; 6554];
        let mut out = Vec::new();
        assert_eq!(
            encode_counters(&many, &mut out),
            Err(ProtoError::FrameTooLarge { len: 65_542 })
        );
        assert!(out.is_empty());
    }
}
