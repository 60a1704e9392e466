//! Batching replies for one copy connection, in the version it speaks.
//!
//! Owns the encoder intercept uses for replies: it takes a reply's headers as the packet model
//! split them from what NFQUEUE or pcap delivered, and writes them straight into wire bytes,
//! doing every version-specific step (v6 truncation and padding, combined frame count; v7
//! frames with timestamp and payload prefix). Flushing policy (count limit, once per loop
//! turn) is the caller's; the batch reuses its buffer from one flush to the next.

use super::v6::{self, V6Layout};
use super::{MAX_PAYLOAD_PREFIX, ProtoError, Version, v7};
use crate::packet::{self, HeaderSplit};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    V6(V6Layout),
    V7 { prefix_limit: usize },
}

/// Replies waiting to be written to one copy connection.
#[derive(Debug)]
pub struct ReplyBatch {
    encoding: Encoding,
    count: u16,
    encoded: Vec<u8>,
}

impl ReplyBatch {
    /// A batch of version-6 messages in `layout`, flushed as one combined frame.
    pub fn v6(layout: V6Layout) -> Self {
        Self::with_encoding(Encoding::V6(layout))
    }

    /// A batch of version-7 reply frames, each carrying up to `prefix_limit` bytes of payload
    /// (capped at [`MAX_PAYLOAD_PREFIX`]).
    pub fn v7(prefix_limit: usize) -> Self {
        Self::with_encoding(Encoding::V7 {
            prefix_limit: prefix_limit.min(MAX_PAYLOAD_PREFIX),
        })
    }

    fn with_encoding(encoding: Encoding) -> Self {
        ReplyBatch {
            encoding,
            count: 0,
            encoded: Vec::new(),
        }
    }

    /// The protocol version this batch writes.
    pub fn version(&self) -> Version {
        match self.encoding {
            Encoding::V6(_) => Version::V6,
            Encoding::V7 { .. } => Version::V7,
        }
    }

    /// Adds the captured IP `packet` (no link header, payload possibly cut short) of a reply
    /// seen at `timestamp_us`; see [`push_split`](Self::push_split). Fails, leaving the batch
    /// as it was, for a packet that is not TCP with a whole header too.
    pub fn push(&mut self, packet: &[u8], timestamp_us: u64) -> Result<(), ProtoError> {
        self.push_split(&packet::split_ip_headers(packet)?, timestamp_us)
    }

    /// Adds a reply seen at `timestamp_us` (microseconds since the Unix epoch; version 6 does
    /// not carry it), from its headers as the packet model split them. Fails, leaving the
    /// batch as it was, for IPv6 in version 6, or when a version-6 batch
    /// [`is_full`](Self::is_full).
    pub fn push_split(
        &mut self,
        reply: &HeaderSplit<'_>,
        timestamp_us: u64,
    ) -> Result<(), ProtoError> {
        match self.encoding {
            Encoding::V6(layout) => {
                let max = layout.max_batch();
                if self.count >= max {
                    return Err(ProtoError::BatchFull { max });
                }
                v6::encode_message(reply, layout, &mut self.encoded)?;
            }
            Encoding::V7 { prefix_limit } => {
                v7::encode_captured(reply, timestamp_us, prefix_limit, &mut self.encoded)?;
            }
        }
        self.count = self.count.saturating_add(1);
        Ok(())
    }

    /// Replies held.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// True when no reply is held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// True when a version-6 combined frame holds as many messages as 1.x accepts; flush
    /// before pushing more. Version-7 batches are never full: they are plain concatenations.
    pub fn is_full(&self) -> bool {
        match self.encoding {
            Encoding::V6(layout) => self.count >= layout.max_batch(),
            Encoding::V7 { .. } => false,
        }
    }

    /// Appends the batch to `out` (nothing when empty) and empties it for reuse.
    pub fn flush_into(&mut self, out: &mut Vec<u8>) {
        if self.count == 0 {
            return;
        }
        if let Encoding::V6(_) = self.encoding {
            out.extend_from_slice(&self.count.to_be_bytes());
        }
        out.extend_from_slice(&self.encoded);
        self.encoded.clear();
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::fixtures::{SYN_ACK, client, combined_syn_ack, target, tcp_packet};

    #[test]
    fn a_v6_batch_is_one_combined_frame() {
        let mut batch = ReplyBatch::v6(V6Layout::Headers);
        let mut out = Vec::new();
        batch.flush_into(&mut out);
        assert!(out.is_empty(), "an empty batch writes nothing");
        batch.push(&SYN_ACK, 123).unwrap();
        assert_eq!((batch.len(), batch.is_full()), (1, false));
        batch.flush_into(&mut out);
        assert_eq!(out, combined_syn_ack());
        assert!(batch.is_empty());
    }

    #[test]
    fn a_v6_batch_holds_at_most_what_1x_accepts() {
        for layout in [V6Layout::Headers, V6Layout::HeadersAndPayload] {
            let mut batch = ReplyBatch::v6(layout);
            let max = layout.max_batch();
            for _ in 0..max {
                batch.push(&SYN_ACK, 0).unwrap();
            }
            assert!(batch.is_full());
            assert_eq!(batch.push(&SYN_ACK, 0), Err(ProtoError::BatchFull { max }));
            let mut out = Vec::new();
            batch.flush_into(&mut out);
            assert_eq!(&out[..2], &max.to_be_bytes());
            assert_eq!(out.len(), 2 + usize::from(max) * layout.message_len());
        }
    }

    #[test]
    fn a_rejected_packet_leaves_the_batch_as_it_was() {
        let mut batch = ReplyBatch::v6(V6Layout::Headers);
        batch.push(&SYN_ACK, 0).unwrap();
        let ipv6 = tcp_packet(
            "[::1]:80".parse().unwrap(),
            "[::2]:9".parse().unwrap(),
            &[],
            &[],
        );
        assert_eq!(batch.push(&ipv6, 0), Err(ProtoError::Ipv6NotInVersion6));
        assert_eq!(batch.push(&SYN_ACK[..30], 0).map_err(|_| ()), Err(()));
        let mut out = Vec::new();
        batch.flush_into(&mut out);
        assert_eq!(out, combined_syn_ack());
    }

    #[test]
    fn a_v7_batch_concatenates_frames_with_capped_prefixes() {
        let mut batch = ReplyBatch::v7(10_000);
        assert_eq!(batch.version(), Version::V7);
        let packet = tcp_packet(target(), client(), &[], &[b'z'; 400]);
        batch.push(&packet, 7).unwrap();
        batch.push(&SYN_ACK, 8).unwrap();
        assert!(!batch.is_full());
        let mut out = Vec::new();
        batch.flush_into(&mut out);
        let first_len = 4 + 12 + 40 + MAX_PAYLOAD_PREFIX;
        assert_eq!(out.len(), first_len + 4 + 12 + 60);
        assert_eq!(&out[first_len..first_len + 2], &[0x00, 0x02]);
    }
}
