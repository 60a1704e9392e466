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
/// SACK-permitted); FIN and PSH stay on the last. On IPv4 `ip_id` grows by one per piece
/// (wrapping); IPv6 has no identification field, so it is left as is. `payload_len` is
/// each piece's length. A segment that fits comes out once, unchanged but for
/// `payload_len`; so does an empty payload.
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
        if segment.src.is_ipv4() {
            segment.ip_id = self.template.ip_id.wrapping_add(self.index);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::testing::{checksums_verify, fixture_segment};
    use crate::packet::{IpVersion, Timestamps, emit_ip, parse_ip};

    fn big_payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn super_segment_splits_into_valid_mtu_sized_packets() {
        const MTU: usize = 1500;
        for version in [IpVersion::V4, IpVersion::V6] {
            let mut segment = fixture_segment(version);
            segment.flags = TcpFlags::ACK | TcpFlags::PSH | TcpFlags::FIN;
            if version == IpVersion::V4 {
                segment.ip_id = 0xfffe;
            }
            let payload = big_payload(20 * 1024);
            segment.payload_len = payload.len();
            let max = max_payload_for_mtu(MTU, &segment);
            let pieces: Vec<_> = split(&segment, &payload, max).collect();
            assert_eq!(pieces.len(), payload.len().div_ceil(max));

            let mut joined = Vec::new();
            let mut expected_seq = segment.seq;
            for (i, (piece, bytes)) in pieces.iter().enumerate() {
                let last = i == pieces.len() - 1;
                assert_eq!(piece.seq, expected_seq, "piece {i}");
                assert_eq!(piece.payload_len, bytes.len());
                assert_eq!(piece.flags.fin(), last, "piece {i}");
                assert_eq!(piece.flags.psh(), last, "piece {i}");
                assert!(piece.flags.ack());
                let expected_id = match version {
                    IpVersion::V4 => 0xfffeu16.wrapping_add(i as u16),
                    IpVersion::V6 => 0,
                };
                assert_eq!(piece.ip_id, expected_id);
                expected_seq = piece.seq_end();
                joined.extend_from_slice(bytes);

                let mut packet = Vec::new();
                emit_ip(piece, bytes, &mut packet).unwrap();
                assert!(packet.len() <= MTU, "piece {i}: {} bytes", packet.len());
                assert!(checksums_verify(&packet), "piece {i}");
                let (reparsed, reparsed_payload) = parse_ip(&packet).unwrap();
                assert_eq!(&reparsed, piece);
                assert_eq!(reparsed_payload, *bytes);
            }
            assert_eq!(joined, payload);
            assert_eq!(expected_seq, segment.seq_end());
            // Every piece but the last is full-sized.
            assert!(
                pieces[..pieces.len() - 1]
                    .iter()
                    .all(|(_, b)| b.len() == max)
            );
        }
    }

    #[test]
    fn syn_and_its_options_stay_on_the_first_piece() {
        let mut segment = fixture_segment(IpVersion::V4);
        segment.flags = TcpFlags::SYN;
        segment.options = TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some(Timestamps { tsval: 1, tsecr: 0 }),
        };
        let pieces: Vec<_> = split(&segment, b"abcdef", 4).collect();
        assert_eq!(pieces.len(), 2);
        let (first, second) = (&pieces[0].0, &pieces[1].0);
        assert_eq!(first.flags, TcpFlags::SYN);
        assert_eq!(first.options, segment.options);
        assert_eq!(second.flags, TcpFlags::default());
        assert_eq!(second.options.mss, None);
        assert_eq!(second.options.window_scale, None);
        assert!(!second.options.sack_permitted);
        assert_eq!(second.options.timestamps, segment.options.timestamps);
        // The SYN occupies one sequence number before the data (RFC 9293 §3.4).
        assert_eq!(second.seq, segment.seq + 1u32 + 4u32);
    }

    #[test]
    fn a_segment_that_fits_comes_out_unchanged() {
        let segment = fixture_segment(IpVersion::V6);
        let payload = big_payload(segment.payload_len);
        let pieces: Vec<_> = split(&segment, &payload, 1000).collect();
        assert_eq!(pieces, vec![(segment.clone(), &payload[..])]);

        let mut empty = segment;
        empty.flags = TcpFlags::FIN | TcpFlags::ACK;
        empty.payload_len = 0;
        let pieces: Vec<_> = split(&empty, &[], 1000).collect();
        assert_eq!(pieces, vec![(empty, &[][..])]);
    }

    #[test]
    fn zero_max_payload_is_taken_as_one() {
        let segment = fixture_segment(IpVersion::V4);
        let pieces: Vec<_> = split(&segment, b"abc", 0).map(|(_, b)| b).collect();
        assert_eq!(pieces, [b"a", b"b", b"c"]);
    }

    #[test]
    fn max_payload_accounts_for_ip_and_tcp_headers() {
        // Fixture segments carry timestamps: 12 option bytes.
        assert_eq!(
            max_payload_for_mtu(1500, &fixture_segment(IpVersion::V4)),
            1448
        );
        assert_eq!(
            max_payload_for_mtu(1500, &fixture_segment(IpVersion::V6)),
            1428
        );
        assert_eq!(max_payload_for_mtu(40, &fixture_segment(IpVersion::V4)), 0);
    }
}
