//! The IP + TCP header block of a reply, made to fit the control protocol.
//!
//! Owns the rules that turn a reply's headers (split by the packet model, see
//! [`packet::split_ip_headers`]) into the header block both protocol versions carry: the fixed
//! IP header (IPv4 options and IPv6 extension headers dropped), then the TCP header, its
//! options cut at an option boundary when they exceed the room the version gives, and the IP
//! length field and IPv4 checksum fixed so the block stays self-consistent (payload length =
//! IP length − headers, as on the wire). The TCP checksum is left as captured: nobody verifies
//! it. Parses nothing itself: bytes are read through `packet`.

use std::fmt;
use std::net::SocketAddr;

use super::ProtoError;
use crate::packet::{self, HeaderSplit, IpVersion, Ipv4Packet, Ipv6Packet};

const IPV4_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
const TCP_MIN_HEADER_LEN: usize = 20;
/// The longest TCP header: data offset 15 words (RFC 9293 §3.1).
pub(crate) const TCP_MAX_HEADER_LEN: usize = 60;
/// The longest header block: a fixed IPv6 header plus the longest TCP header.
pub const MAX_HEADERS_LEN: usize = IPV6_HEADER_LEN + TCP_MAX_HEADER_LEN;
const PROTOCOL_TCP: u8 = 6;

/// A normalized header block: fixed IP header + TCP header, lengths consistent, with the
/// facts the packet model read from it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderBuf {
    bytes: [u8; MAX_HEADERS_LEN],
    ip_len: u8,
    len: u8,
    source: SocketAddr,
    destination: SocketAddr,
    payload_len: usize,
}

impl HeaderBuf {
    /// Builds the block from the headers of `split`, keeping at most `tcp_limit` bytes of
    /// TCP header.
    pub(crate) fn normalize(split: &HeaderSplit<'_>, tcp_limit: usize) -> Self {
        let ip_len = match split.version {
            IpVersion::V4 => IPV4_HEADER_LEN,
            IpVersion::V6 => IPV6_HEADER_LEN,
        };
        let mut block = HeaderBuf {
            bytes: [0; MAX_HEADERS_LEN],
            ip_len: ip_len as u8,
            len: 0,
            source: split.src,
            destination: split.dst,
            payload_len: split.payload_len,
        };
        block.bytes[..ip_len].copy_from_slice(&split.ip_header[..ip_len]);
        let tcp = split.tcp_header;
        let tcp_len = fit_tcp_header(tcp, tcp.len(), tcp_limit, &mut block.bytes[ip_len..]);
        block.len = (ip_len + tcp_len) as u8;

        let removed = (split.ip_header.len() - ip_len) + (split.tcp_header.len() - tcp_len);
        let ip = &mut block.bytes[..ip_len];
        match split.version {
            IpVersion::V6 => {
                let mut header = Ipv6Packet::new_unchecked(ip);
                let lowered = header.payload_len().saturating_sub(removed);
                header.set_payload_len(lowered as u16);
                header.set_next_header(PROTOCOL_TCP);
            }
            IpVersion::V4 => {
                let mut header = Ipv4Packet::new_unchecked(ip);
                header.set_header_len(IPV4_HEADER_LEN);
                if removed > 0 {
                    let lowered = header.total_len().saturating_sub(removed);
                    header.set_total_len(lowered as u16);
                    header.fill_checksum();
                }
            }
        }
        block
    }

    /// Validates a block received from a peer: exactly a fixed IP header (no IPv4 options,
    /// no IPv6 extension headers) and a whole TCP header. Returns it with the payload length
    /// its IP header declares.
    pub(crate) fn from_block(block: &[u8]) -> Result<(Self, usize), ProtoError> {
        let split = packet::split_ip_headers(block)?;
        let fixed = match split.version {
            IpVersion::V4 => IPV4_HEADER_LEN,
            IpVersion::V6 => IPV6_HEADER_LEN,
        };
        if split.ip_header.len() != fixed {
            return Err(ProtoError::IpOptionsInBlock {
                ip_header_len: split.ip_header.len(),
            });
        }
        let expected = split.ip_header.len() + split.tcp_header.len();
        if block.len() != expected {
            return Err(ProtoError::BadHeadersLength {
                len: block.len(),
                expected,
            });
        }
        Ok((
            Self::normalize(&split, TCP_MAX_HEADER_LEN),
            split.payload_len,
        ))
    }

    /// The whole block.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The fixed IP header.
    pub(crate) fn ip_header(&self) -> &[u8] {
        &self.bytes[..usize::from(self.ip_len)]
    }

    /// The TCP header, options included.
    pub(crate) fn tcp_header(&self) -> &[u8] {
        &self.bytes[usize::from(self.ip_len)..usize::from(self.len)]
    }

    /// The payload length the IP length field declares.
    pub(crate) fn payload_len(&self) -> usize {
        self.payload_len
    }

    /// The sender of the reply (the target).
    pub(crate) fn source(&self) -> SocketAddr {
        self.source
    }

    /// The addressee of the reply (the client as copy replays it).
    pub(crate) fn destination(&self) -> SocketAddr {
        self.destination
    }
}

impl fmt::Debug for HeaderBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.as_bytes() {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// Copies the TCP header of `declared_len` bytes starting `tcp` into `out`, at most `limit`
/// bytes of it, and returns the length kept; `tcp` holds at least `limit` bytes of it, or all
/// of it. When options must be cut, whole options are kept in their captured order up to the
/// limit, the rest is zero (End of Option List, RFC 9293 §3.2) up to a 4-byte boundary, and
/// the data offset is lowered to match.
pub(crate) fn fit_tcp_header(
    tcp: &[u8],
    declared_len: usize,
    limit: usize,
    out: &mut [u8],
) -> usize {
    if declared_len <= limit {
        out[..declared_len].copy_from_slice(&tcp[..declared_len]);
        return declared_len;
    }
    let at_hand = &tcp[..limit];
    let options = at_hand.get(TCP_MIN_HEADER_LEN..).unwrap_or_default();
    let kept = TCP_MIN_HEADER_LEN + whole_options_len(options);
    out[..kept].copy_from_slice(&at_hand[..kept]);
    let padded = kept.next_multiple_of(4);
    out[kept..padded].fill(0);
    out[12] = ((padded / 4) as u8) << 4 | (out[12] & 0x0f);
    padded
}

/// How many leading bytes of `options` are whole options (RFC 9293 §3.2: kinds 0 and 1 are
/// one byte, every other kind carries its length in its second byte).
fn whole_options_len(options: &[u8]) -> usize {
    let mut at = 0;
    while let Some(&kind) = options.get(at) {
        let len = match kind {
            0 => return at,
            1 => 1,
            _ => match options.get(at + 1) {
                Some(&len) if len >= 2 => usize::from(len),
                _ => return at,
            },
        };
        if at + len > options.len() {
            return at;
        }
        at += len;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{Layer, PacketError};
    use crate::proto::fixtures::{SYN_ACK, client, target, tcp_packet};
    use proptest::prelude::*;

    fn ipv4_checksum_is_valid(header: &[u8]) -> bool {
        let parsed = etherparse::Ipv4HeaderSlice::from_slice(header).unwrap();
        parsed.header_checksum() == parsed.to_header().calc_header_checksum()
    }

    /// `packet` with `options` (a multiple of 4 bytes) inserted after its IPv4 header.
    fn with_ip_options(packet: &[u8], options: &[u8]) -> Vec<u8> {
        let mut out = packet[..20].to_vec();
        out[0] = 0x40 | ((20 + options.len()) / 4) as u8;
        let total = u16::from_be_bytes([out[2], out[3]]) + options.len() as u16;
        out[2..4].copy_from_slice(&total.to_be_bytes());
        out[10..12].fill(0);
        out.extend_from_slice(options);
        let checksum = packet::checksum::internet(&out);
        out[10..12].copy_from_slice(&checksum.to_be_bytes());
        out.extend_from_slice(&packet[20..]);
        out
    }

    fn normalize(packet: &[u8], limit: usize) -> HeaderBuf {
        HeaderBuf::normalize(&packet::split_ip_headers(packet).unwrap(), limit)
    }

    #[test]
    fn a_clean_packet_passes_through_unchanged() {
        assert!(ipv4_checksum_is_valid(&SYN_ACK[..20]));
        let block = normalize(&SYN_ACK, TCP_MAX_HEADER_LEN);
        assert_eq!(block.as_bytes(), &SYN_ACK[..]);
        assert_eq!(block.payload_len(), 0);
        assert_eq!(block.source(), target());
        assert_eq!(block.destination(), client());
    }

    #[test]
    fn ipv4_options_are_dropped_with_length_and_checksum_fixed() {
        let plain = tcp_packet(target(), client(), &[], b"hello");
        let packet = with_ip_options(&plain, &[1, 1, 1, 0, 7, 3, 4, 0]);
        let block = normalize(&packet, TCP_MAX_HEADER_LEN);
        assert_eq!(block.as_bytes(), &plain[..40]);
        assert!(ipv4_checksum_is_valid(block.ip_header()));
        assert_eq!(block.payload_len(), 5);
    }

    #[test]
    fn tcp_options_are_cut_at_an_option_boundary() {
        // NOP NOP timestamps (12 bytes), then NOP NOP SACK with two blocks (20 bytes).
        let mut options = vec![1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8];
        options.extend_from_slice(&[1, 1, 5, 18]);
        options.extend_from_slice(&[9; 16]);
        let packet = tcp_packet(target(), client(), &options, b"data");
        let block = normalize(&packet, 44);
        let tcp = block.tcp_header();
        // The timestamps and the two NOPs after them fit in 24 bytes; the SACK does not.
        assert_eq!(tcp.len(), 36);
        assert_eq!(tcp[12] >> 4, 9);
        assert_eq!(&tcp[20..34], &options[..14]);
        assert_eq!(&tcp[34..], &[0, 0]);
        let (again, payload_len) = HeaderBuf::from_block(block.as_bytes()).unwrap();
        assert_eq!(payload_len, 4, "ip length lowered by the options cut");
        assert_eq!(again, block);
        assert!(ipv4_checksum_is_valid(block.ip_header()));
    }

    #[test]
    fn a_malformed_option_length_ends_the_kept_options() {
        assert_eq!(whole_options_len(&[1, 2, 4, 5, 180, 8, 1, 0]), 5);
        assert_eq!(whole_options_len(&[1, 1, 0, 2, 4]), 2);
        assert_eq!(whole_options_len(&[2, 4, 5]), 0);
        assert_eq!(whole_options_len(&[1, 1]), 2);
    }

    #[test]
    fn ipv6_packets_keep_their_fixed_header_and_name_their_ends() {
        let source: SocketAddr = "[2001:db8::3]:8080".parse().unwrap();
        let destination: SocketAddr = "[2001:db8::9:1]:52302".parse().unwrap();
        let packet = tcp_packet(source, destination, &[2, 4, 5, 0xa0], b"abc");
        let block = normalize(&packet, TCP_MAX_HEADER_LEN);
        assert_eq!(block.ip_header().len(), 40);
        assert_eq!(block.tcp_header().len(), 24);
        assert_eq!(block.payload_len(), 3);
        assert_eq!((block.source(), block.destination()), (source, destination));
    }

    #[test]
    fn ipv6_extension_headers_are_dropped_like_ipv4_options() {
        let source: SocketAddr = "[2001:db8::3]:8080".parse().unwrap();
        let destination: SocketAddr = "[2001:db8::9:1]:52302".parse().unwrap();
        let plain = tcp_packet(source, destination, &[], b"abc");
        // A destination-options header of 8 bytes (PadN) between the fixed header and TCP.
        let mut packet = plain[..40].to_vec();
        packet[6] = 60;
        let payload_len = u16::from_be_bytes([packet[4], packet[5]]) + 8;
        packet[4..6].copy_from_slice(&payload_len.to_be_bytes());
        packet.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
        packet.extend_from_slice(&plain[40..]);
        let block = normalize(&packet, TCP_MAX_HEADER_LEN);
        assert_eq!(block.as_bytes(), &plain[..60]);
        assert_eq!(block.payload_len(), 3);
    }

    #[test]
    fn a_block_with_ip_options_or_extra_bytes_is_rejected() {
        let plain = tcp_packet(target(), client(), &[], &[]);
        let optioned = with_ip_options(&plain, &[1, 1, 1, 1]);
        assert_eq!(
            HeaderBuf::from_block(&optioned).err(),
            Some(ProtoError::IpOptionsInBlock { ip_header_len: 24 })
        );
        let with_payload = tcp_packet(target(), client(), &[], b"x");
        assert_eq!(
            HeaderBuf::from_block(&with_payload).err(),
            Some(ProtoError::BadHeadersLength {
                len: 41,
                expected: 40
            })
        );
        assert_eq!(
            HeaderBuf::from_block(&plain[..30]).err(),
            Some(ProtoError::Packet(PacketError::Truncated {
                layer: Layer::Tcp,
                needed: 20,
                got: 10
            }))
        );
    }

    fn arbitrary_packet() -> impl Strategy<Value = Vec<u8>> {
        let v4 = (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u16>(),
            any::<u16>(),
        )
            .prop_map(|(a, b, p, q)| (SocketAddr::from((a, p)), SocketAddr::from((b, q))));
        let v6 = (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<u16>(),
            any::<u16>(),
        )
            .prop_map(|(a, b, p, q)| (SocketAddr::from((a, p)), SocketAddr::from((b, q))));
        (
            prop_oneof![v4, v6],
            proptest::collection::vec(any::<u8>(), 0..=40),
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::collection::vec(any::<u8>(), 0..=10).prop_map(|mut o| {
                o.resize(o.len().next_multiple_of(4), 0);
                o
            }),
        )
            .prop_map(
                |((source, destination), tcp_options, payload, ip_options)| {
                    let packet = tcp_packet(source, destination, &tcp_options, &payload);
                    if source.is_ipv4() && !ip_options.is_empty() {
                        with_ip_options(&packet, &ip_options)
                    } else {
                        packet
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn normalized_blocks_are_self_consistent(packet in arbitrary_packet()) {
            let split = packet::split_ip_headers(&packet).unwrap();
            for limit in [44, TCP_MAX_HEADER_LEN] {
                let block = HeaderBuf::normalize(&split, limit);
                prop_assert!(block.tcp_header().len() <= limit);
                let (again, payload_len) = HeaderBuf::from_block(block.as_bytes()).unwrap();
                prop_assert_eq!(again, block);
                prop_assert_eq!(payload_len, split.payload_len);
                prop_assert_eq!(block.payload_len(), split.payload_len);
                prop_assert_eq!(&block.tcp_header()[..12], &split.tcp_header[..12]);
                if block.ip_header().len() == 20 {
                    prop_assert!(ipv4_checksum_is_valid(block.ip_header()));
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(split) = packet::split_ip_headers(&bytes) {
                let block = HeaderBuf::normalize(&split, 44);
                prop_assert!(block.as_bytes().len() <= MAX_HEADERS_LEN);
            }
            let _ = HeaderBuf::from_block(&bytes);
        }
    }
}
