//! Cutting a segment larger than the path allows into MTU-sized ones, as TSO would have:
//! GRO and offloads hand the capture "super-segments" a raw socket refuses.
//!
//! Pure arithmetic on [`Segment`] records and payload slices; copies no payload.

use super::ipv4;
use super::ipv6;
use super::tcp;
use super::{Segment, SeqNum, TcpFlags, TcpOptions};

/// The largest payload that keeps `segment` within `mtu` bytes of IP packet: the MTU
/// minus the IP header (20 or 40 bytes) and the TCP header with its options. 0 when even
/// the headers do not fit.
pub fn max_payload_for_mtu(mtu: usize, segment: &Segment) -> usize {
    let ip_header_len = if segment.src.is_ipv4() {
        ipv4::HEADER_LEN
    } else {
        ipv6::HEADER_LEN
    };
    mtu.saturating_sub(ip_header_len + tcp::HEADER_LEN + segment.options.wire_len())
}

/// Cuts `payload` into pieces of at most `max_payload` bytes (0 is taken as 1), each with
/// its own segment.
///
/// Sequence numbers follow on (each piece starts at the previous piece's
/// [`seq_end`](Segment::seq_end), so after a SYN the data starts one later, RFC 9293
/// §3.4). SYN stays on the first piece, with the SYN-only options (MSS, window scale,
/// SACK-permitted); FIN and PSH stay on the last. `ip_id` grows by one per piece
/// (wrapping) and `payload_len` is each piece's length. A segment that fits comes out
/// once, unchanged but for `payload_len`; an empty payload too.
pub fn split<'a>(segment: &Segment, payload: &'a [u8], max_payload: usize) -> Split<'a> {
    Split {
        template: segment.clone(),
        remaining: payload,
        max_payload: max_payload.max(1),
        next_seq: segment.seq,
        index: 0,
        done: false,
    }
}

/// The iterator of [`split`].
#[derive(Debug, Clone)]
pub struct Split<'a> {
    template: Segment,
    remaining: &'a [u8],
    max_payload: usize,
    next_seq: SeqNum,
    index: u16,
    done: bool,
}

impl<'a> Iterator for Split<'a> {
    type Item = (Segment, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let (piece, rest) = self
            .remaining
            .split_at(self.max_payload.min(self.remaining.len()));
        let mut segment = self.template.clone();
        segment.seq = self.next_seq;
        segment.ip_id = self.template.ip_id.wrapping_add(self.index);
        segment.payload_len = piece.len();
        if self.index != 0 && segment.flags.syn() {
            segment.flags = segment.flags.without(TcpFlags::SYN);
            segment.options = TcpOptions {
                mss: None,
                window_scale: None,
                sack_permitted: false,
                ..segment.options
            };
        }
        if !rest.is_empty() {
            segment.flags = segment.flags.without(TcpFlags::FIN | TcpFlags::PSH);
        }
        self.next_seq = segment.seq_end();
        self.remaining = rest;
        self.index = self.index.wrapping_add(1);
        self.done = rest.is_empty();
        Some((segment, piece))
    }
}
