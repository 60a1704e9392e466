//! The internet checksum (RFC 1071) and the TCP pseudo-header sums (RFC 9293 §3.1,
//! RFC 8200 §8.1).
//!
//! Always a full computation over the bytes given: captured checksums may be partial
//! (offloads leave only the pseudo-header sum), so nothing here adjusts a checksum
//! incrementally. The IPv4 header checksum lives on [`Ipv4Packet`](super::Ipv4Packet).
//!
//! Every function returns the one's complement of the one's complement sum: computed over
//! bytes whose checksum field is zero it is the value to store; computed over bytes with a
//! correct checksum it is 0.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The IP protocol number of TCP, as the pseudo-header carries it.
const PROTOCOL_TCP: u8 = 6;

/// A running one's complement sum over 16-bit big-endian words.
///
/// Chunks may have any length: an odd byte at the end of one chunk pairs with the first
/// byte of the next, so the result does not depend on how the data is split.
#[derive(Debug, Clone, Copy, Default)]
pub struct Accumulator {
    /// Sum of 32-bit words; folded to 16 bits only at the end (2^16 ≡ 1 mod 2^16 - 1).
    sum: u64,
    /// The high byte of a word whose low byte has not arrived yet.
    pending: Option<u8>,
}

impl Accumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `data` to the sum.
    pub fn add(&mut self, mut data: &[u8]) {
        if let Some(high) = self.pending.take() {
            match data.split_first() {
                Some((&low, rest)) => {
                    self.sum += u64::from(u16::from_be_bytes([high, low]));
                    data = rest;
                }
                None => {
                    self.pending = Some(high);
                    return;
                }
            }
        }
        let mut words = data.chunks_exact(4);
        for word in &mut words {
            if let Ok(word) = <[u8; 4]>::try_from(word) {
                self.sum += u64::from(u32::from_be_bytes(word));
            }
        }
        let mut pairs = words.remainder().chunks_exact(2);
        for pair in &mut pairs {
            if let Ok(pair) = <[u8; 2]>::try_from(pair) {
                self.sum += u64::from(u16::from_be_bytes(pair));
            }
        }
        self.pending = pairs.remainder().first().copied();
    }

    /// Adds one 16-bit word.
    pub fn add_u16(&mut self, word: u16) {
        self.add(&word.to_be_bytes());
    }

    /// The checksum: the one's complement of the folded sum. A trailing odd byte is
    /// padded with zero (RFC 1071 §4.1).
    pub fn finish(self) -> u16 {
        let mut sum = self.sum + self.pending.map_or(0, |high| u64::from(high) << 8);
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        // The loop leaves `sum` at most 0xffff.
        !(sum as u16)
    }
}

/// The internet checksum of `data`.
pub fn internet(data: &[u8]) -> u16 {
    let mut acc = Accumulator::new();
    acc.add(data);
    acc.finish()
}

/// The TCP checksum of `tcp_segment` (header and payload) sent from `src` to `dst` over
/// IPv4: the pseudo-header of RFC 9293 §3.1 followed by the segment.
pub fn tcp_ipv4(src: Ipv4Addr, dst: Ipv4Addr, tcp_segment: &[u8]) -> u16 {
    tcp_with_pseudo_header(&src.octets(), &dst.octets(), tcp_segment)
}

/// The TCP checksum of `tcp_segment` sent from `src` to `dst` over IPv6: the
/// pseudo-header of RFC 8200 §8.1 followed by the segment.
pub fn tcp_ipv6(src: Ipv6Addr, dst: Ipv6Addr, tcp_segment: &[u8]) -> u16 {
    tcp_with_pseudo_header(&src.octets(), &dst.octets(), tcp_segment)
}

/// The checksum over a pseudo-header of the two addresses, protocol and length, then the
/// segment; the same sum serves both IP versions.
fn tcp_with_pseudo_header(src: &[u8], dst: &[u8], tcp_segment: &[u8]) -> u16 {
    let mut acc = Accumulator::new();
    acc.add(src);
    acc.add(dst);
    add_protocol_and_length(&mut acc, tcp_segment.len());
    acc.add(tcp_segment);
    acc.finish()
}

/// Adds the protocol and the upper-layer length. IPv4 carries a 16-bit length, IPv6 a
/// 32-bit one; as 32-bit words both sum the same for lengths below 2^16.
fn add_protocol_and_length(acc: &mut Accumulator, len: usize) {
    acc.add_u16(u16::from(PROTOCOL_TCP));
    acc.add(&(len as u32).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 1071 written out the slow way: pad, sum 16-bit words in a u32, fold, invert.
    fn reference(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for i in (0..data.len()).step_by(2) {
            let high = u32::from(data[i]) << 8;
            let low = data.get(i + 1).map_or(0, |&b| u32::from(b));
            sum += high | low;
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn rfc1071_example_sums_to_ddf2() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet(&data), !0xddf2);
    }

    #[test]
    fn known_ipv4_header_checksum() {
        // A widely quoted example header whose checksum field holds 0xb861.
        let mut header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(internet(&header), 0xb861);
        header[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(internet(&header), 0);
    }

    #[test]
    fn empty_and_odd_inputs() {
        assert_eq!(internet(&[]), 0xffff);
        assert_eq!(internet(&[0x12]), !0x1200);
    }

    #[test]
    fn known_tcp_ipv4_checksum() {
        // A bare SYN 10.0.0.1:1234 -> 10.0.0.2:80, seq 1, window 65535; 0x96bd was
        // computed independently with Python's struct module.
        let segment = [
            0x04, 0xd2, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x50, 0x02,
            0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
        ];
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&src.octets());
        pseudo.extend_from_slice(&dst.octets());
        pseudo.extend_from_slice(&[0, 6, 0, 20]);
        pseudo.extend_from_slice(&segment);
        assert_eq!(tcp_ipv4(src, dst, &segment), reference(&pseudo));
        assert_eq!(tcp_ipv4(src, dst, &segment), 0x96bd);
    }

    proptest! {
        #[test]
        fn internet_equals_reference(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            prop_assert_eq!(internet(&data), reference(&data));
        }

        #[test]
        fn chunking_does_not_change_the_sum(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
            cuts.sort_unstable();
            let mut acc = Accumulator::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([data.len()]) {
                acc.add(&data[start..cut]);
                start = cut;
            }
            prop_assert_eq!(acc.finish(), reference(&data));
        }

        #[test]
        fn pseudo_header_sums_equal_reference(
            src4: [u8; 4],
            dst4: [u8; 4],
            src: [u8; 16],
            dst: [u8; 16],
            segment in proptest::collection::vec(any::<u8>(), 0..1500),
        ) {
            let len = segment.len() as u32;
            let mut v4 = Vec::new();
            v4.extend_from_slice(&src4);
            v4.extend_from_slice(&dst4);
            v4.extend_from_slice(&[0, 6]);
            v4.extend_from_slice(&(len as u16).to_be_bytes());
            v4.extend_from_slice(&segment);
            prop_assert_eq!(tcp_ipv4(src4.into(), dst4.into(), &segment), reference(&v4));

            let mut v6 = Vec::new();
            v6.extend_from_slice(&src);
            v6.extend_from_slice(&dst);
            v6.extend_from_slice(&len.to_be_bytes());
            v6.extend_from_slice(&[0, 0, 0, 6]);
            v6.extend_from_slice(&segment);
            prop_assert_eq!(tcp_ipv6(src.into(), dst.into(), &segment), reference(&v6));
        }
    }
}
