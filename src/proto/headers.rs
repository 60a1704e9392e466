//! The IP + TCP header block of a reply: split out of a captured packet and made to fit.
//!
//! Owns the rules that turn a captured reply (IPv4 or IPv6, as NFQUEUE or pcap deliver it) into
//! the header block both protocol versions carry: the fixed IP header (IPv4 options dropped,
//! IHL set to 5), then the TCP header, its options cut at an option boundary when they exceed
//! the room the version gives, and the IP length field and IPv4 checksum fixed so the block
//! stays self-consistent (payload length = IP length − headers, as on the wire). The TCP
//! checksum is left as captured: nobody verifies it. Must not read past the input or panic.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::ProtoError;
use super::wire::be_u16_at;

const IPV4_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
const TCP_MIN_HEADER_LEN: usize = 20;
/// The longest TCP header: data offset 15 words (RFC 9293 §3.1).
pub(crate) const TCP_MAX_HEADER_LEN: usize = 60;
/// The longest header block: a fixed IPv6 header plus the longest TCP header.
pub const MAX_HEADERS_LEN: usize = IPV6_HEADER_LEN + TCP_MAX_HEADER_LEN;
const PROTOCOL_TCP: u8 = 6;

/// The pieces of a captured TCP/IP packet, borrowed from it.
pub(crate) struct PacketParts<'a> {
    /// The fixed IP header: 20 bytes (IPv4) or 40 (IPv6).
    ip_fixed: &'a [u8],
    /// Bytes of IPv4 options the IHL declares (present in the capture or not).
    ip_options_len: usize,
    /// The TCP header bytes at hand: at least 20, at most `tcp_len`.
    tcp: &'a [u8],
    /// The TCP header length its data offset declares.
    tcp_len: usize,
    /// The captured payload, within the IP length.
    pub(crate) payload: &'a [u8],
    /// The payload length the IP length field declares.
    pub(crate) payload_len: usize,
}

/// What the IP header says about the rest of the packet.
struct IpFields<'a> {
    fixed: &'a [u8],
    options_len: usize,
    /// Declared bytes after the whole IP header (options included): TCP header + payload.
    transport_len: usize,
}

impl<'a> PacketParts<'a> {
    /// Splits a captured IP packet (no link header) carrying TCP. The whole TCP header must
    /// be present; the payload may be cut short by the capture length.
    pub(crate) fn from_packet(packet: &'a [u8]) -> Result<Self, ProtoError> {
        let ip = parse_ip(packet)?;
        let tcp_start = ip.fixed.len() + ip.options_len;
        let tcp_len = tcp_data_offset_len(packet.get(tcp_start..).unwrap_or_default())?;
        let headers_end = tcp_start + tcp_len;
        let tcp = packet
            .get(tcp_start..headers_end)
            .ok_or(ProtoError::Truncated {
                what: "tcp header",
                needed: headers_end,
                had: packet.len(),
            })?;
        let payload_len = payload_len(&ip, tcp_len)?;
        let payload_end = (headers_end + payload_len).min(packet.len());
        Ok(PacketParts {
            ip_fixed: ip.fixed,
            ip_options_len: ip.options_len,
            tcp,
            tcp_len,
            payload: packet.get(headers_end..payload_end).unwrap_or_default(),
            payload_len,
        })
    }

    /// Splits the 64-byte header area of a version-6 message: a 20-byte IPv4 header (its
    /// IHL may still count options 1.x did not copy), then up to 44 bytes of TCP header.
    pub(crate) fn from_v6_message(
        ip_header: &'a [u8],
        tcp_area: &'a [u8],
    ) -> Result<Self, ProtoError> {
        match ip_header.first().map(|first| first >> 4) {
            Some(4) | None => {}
            Some(version) => return Err(ProtoError::BadIpVersion { version }),
        }
        let ip = parse_ip(ip_header)?;
        let tcp_len = tcp_data_offset_len(tcp_area)?;
        let tcp = tcp_area.get(..tcp_len).unwrap_or(tcp_area);
        Ok(PacketParts {
            ip_fixed: ip.fixed,
            ip_options_len: ip.options_len,
            tcp,
            tcp_len,
            payload: &[],
            payload_len: payload_len(&ip, tcp_len)?,
        })
    }
}

/// Reads the IP header at the start of `bytes`: version, IHL, protocol, fragment offset and
/// the declared length of what follows it.
fn parse_ip(bytes: &[u8]) -> Result<IpFields<'_>, ProtoError> {
    let first = *bytes.first().ok_or(ProtoError::Truncated {
        what: "ip header",
        needed: 1,
        had: 0,
    })?;
    let fixed_len = match first >> 4 {
        4 => IPV4_HEADER_LEN,
        6 => IPV6_HEADER_LEN,
        version => return Err(ProtoError::BadIpVersion { version }),
    };
    let fixed = bytes.get(..fixed_len).ok_or(ProtoError::Truncated {
        what: if fixed_len == IPV4_HEADER_LEN {
            "ipv4 header"
        } else {
            "ipv6 header"
        },
        needed: fixed_len,
        had: bytes.len(),
    })?;
    // Both fixed headers are long enough for every offset read below.
    let field = |offset| be_u16_at(fixed, offset).unwrap_or_default();
    if fixed_len == IPV6_HEADER_LEN {
        let next_header = fixed[6];
        if next_header != PROTOCOL_TCP {
            return Err(ProtoError::NotTcp {
                protocol: next_header,
            });
        }
        return Ok(IpFields {
            fixed,
            options_len: 0,
            transport_len: usize::from(field(4)),
        });
    }
    let ihl = first & 0x0f;
    let header_len = usize::from(ihl) * 4;
    if header_len < IPV4_HEADER_LEN {
        return Err(ProtoError::BadIpv4HeaderLength { ihl });
    }
    if fixed[9] != PROTOCOL_TCP {
        return Err(ProtoError::NotTcp { protocol: fixed[9] });
    }
    let fragment_offset = field(6) & 0x1fff;
    if fragment_offset != 0 {
        return Err(ProtoError::Fragment {
            offset: fragment_offset,
        });
    }
    let total_len = usize::from(field(2));
    let transport_len = total_len
        .checked_sub(header_len)
        .ok_or(ProtoError::BadIpLength {
            declared: total_len,
            headers: header_len,
        })?;
    Ok(IpFields {
        fixed,
        options_len: header_len - IPV4_HEADER_LEN,
        transport_len,
    })
}

/// The TCP header length declared by the data offset of the header starting `tcp`.
fn tcp_data_offset_len(tcp: &[u8]) -> Result<usize, ProtoError> {
    let offset_byte = *tcp
        .get(12)
        .filter(|_| tcp.len() >= TCP_MIN_HEADER_LEN)
        .ok_or(ProtoError::Truncated {
            what: "tcp header",
            needed: TCP_MIN_HEADER_LEN,
            had: tcp.len(),
        })?;
    let offset = offset_byte >> 4;
    if offset < 5 {
        return Err(ProtoError::BadTcpDataOffset { offset });
    }
    Ok(usize::from(offset) * 4)
}

/// The payload length the IP header declares, after a TCP header of `tcp_len` bytes.
fn payload_len(ip: &IpFields<'_>, tcp_len: usize) -> Result<usize, ProtoError> {
    ip.transport_len
        .checked_sub(tcp_len)
        .ok_or(ProtoError::BadIpLength {
            declared: ip.transport_len,
            headers: tcp_len,
        })
}

/// A normalized header block: fixed IP header + TCP header, lengths consistent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderBuf {
    bytes: [u8; MAX_HEADERS_LEN],
    ip_len: u8,
    len: u8,
}

impl HeaderBuf {
    /// Builds the block from `parts`, keeping at most `tcp_limit` bytes of TCP header.
    pub(crate) fn normalize(parts: &PacketParts<'_>, tcp_limit: usize) -> Self {
        let ip_len = parts.ip_fixed.len();
        let mut block = HeaderBuf {
            bytes: [0; MAX_HEADERS_LEN],
            ip_len: ip_len as u8,
            len: 0,
        };
        block.bytes[..ip_len].copy_from_slice(parts.ip_fixed);
        let tcp_len = fit_tcp_header(parts, tcp_limit, &mut block.bytes[ip_len..]);
        block.len = (ip_len + tcp_len) as u8;

        let tcp_removed = parts.tcp_len - tcp_len;
        let ip = &mut block.bytes[..ip_len];
        if ip_len == IPV6_HEADER_LEN {
            subtract_from_u16(&mut ip[4..6], tcp_removed);
        } else {
            let removed = parts.ip_options_len + tcp_removed;
            ip[0] = 0x45;
            if removed > 0 {
                subtract_from_u16(&mut ip[2..4], removed);
                ip[10..12].fill(0);
                let checksum = internet_checksum(ip);
                ip[10..12].copy_from_slice(&checksum.to_be_bytes());
            }
        }
        block
    }

    /// Validates a block received from a peer: exactly a fixed IP header (no IPv4 options)
    /// and a whole TCP header. Returns it with the payload length its IP header declares.
    pub(crate) fn from_block(block: &[u8]) -> Result<(Self, usize), ProtoError> {
        let parts = PacketParts::from_packet(block)?;
        if parts.ip_options_len != 0 {
            let ihl = (parts.ip_options_len + IPV4_HEADER_LEN) / 4;
            return Err(ProtoError::BadIpv4HeaderLength { ihl: ihl as u8 });
        }
        let expected = parts.ip_fixed.len() + parts.tcp_len;
        if block.len() != expected {
            return Err(ProtoError::BadHeadersLength {
                len: block.len(),
                expected,
            });
        }
        Ok((
            Self::normalize(&parts, TCP_MAX_HEADER_LEN),
            parts.payload_len,
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
        let ip = self.ip_header();
        let tcp_len = self.tcp_header().len();
        let transport = if ip.len() == IPV6_HEADER_LEN {
            usize::from(be_u16_at(ip, 4).unwrap_or_default())
        } else {
            usize::from(be_u16_at(ip, 2).unwrap_or_default()).saturating_sub(IPV4_HEADER_LEN)
        };
        transport.saturating_sub(tcp_len)
    }

    /// The sender of the reply (the target).
    pub(crate) fn source(&self) -> SocketAddr {
        self.socket_addr(true)
    }

    /// The addressee of the reply (the client as copy replays it).
    pub(crate) fn destination(&self) -> SocketAddr {
        self.socket_addr(false)
    }

    fn socket_addr(&self, source: bool) -> SocketAddr {
        let ip_len = usize::from(self.ip_len);
        let port_offset = ip_len + if source { 0 } else { 2 };
        let port = be_u16_at(&self.bytes, port_offset).unwrap_or_default();
        let ip = if ip_len == IPV6_HEADER_LEN {
            let start = if source { 8 } else { 24 };
            let mut octets = [0; 16];
            octets.copy_from_slice(&self.bytes[start..start + 16]);
            IpAddr::V6(Ipv6Addr::from(octets))
        } else {
            let start = if source { 12 } else { 16 };
            let mut octets = [0; 4];
            octets.copy_from_slice(&self.bytes[start..start + 4]);
            IpAddr::V4(Ipv4Addr::from(octets))
        };
        SocketAddr::new(ip, port)
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

/// Copies the TCP header of `parts` into `out`, at most `limit` bytes of it, and returns the
/// length kept. When options must be cut, whole options are kept in their captured order up
/// to the limit, the rest is zero (End of Option List, RFC 9293 §3.2) up to a 4-byte
/// boundary, and the data offset is lowered to match.
fn fit_tcp_header(parts: &PacketParts<'_>, limit: usize, out: &mut [u8]) -> usize {
    let at_hand = parts.tcp.get(..limit).unwrap_or(parts.tcp);
    if at_hand.len() == parts.tcp_len {
        out[..at_hand.len()].copy_from_slice(at_hand);
        return at_hand.len();
    }
    let options = at_hand.get(TCP_MIN_HEADER_LEN..).unwrap_or_default();
    let kept_options = whole_options_len(options);
    let kept = TCP_MIN_HEADER_LEN + kept_options;
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

/// Lowers the big-endian `u16` in `field` by `amount` (saturating at zero).
fn subtract_from_u16(field: &mut [u8], amount: usize) {
    if let Some(value) = be_u16_at(field, 0) {
        let lowered = usize::from(value).saturating_sub(amount) as u16;
        field.copy_from_slice(&lowered.to_be_bytes());
    }
}

/// The Internet checksum (RFC 1071) of `bytes`.
pub(crate) fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let checksum = internet_checksum(&out);
        out[10..12].copy_from_slice(&checksum.to_be_bytes());
        out.extend_from_slice(&packet[20..]);
        out
    }

    #[test]
    fn a_clean_packet_passes_through_unchanged() {
        assert!(ipv4_checksum_is_valid(&SYN_ACK[..20]));
        let parts = PacketParts::from_packet(&SYN_ACK).unwrap();
        assert_eq!(parts.payload_len, 0);
        let block = HeaderBuf::normalize(&parts, TCP_MAX_HEADER_LEN);
        assert_eq!(block.as_bytes(), &SYN_ACK[..]);
        assert_eq!(block.source(), target());
        assert_eq!(block.destination(), client());
    }

    #[test]
    fn ipv4_options_are_dropped_with_length_and_checksum_fixed() {
        let plain = tcp_packet(target(), client(), &[], b"hello");
        let packet = with_ip_options(&plain, &[1, 1, 1, 0, 7, 3, 4, 0]);
        let parts = PacketParts::from_packet(&packet).unwrap();
        assert_eq!(parts.payload, b"hello");
        let block = HeaderBuf::normalize(&parts, TCP_MAX_HEADER_LEN);
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
        let parts = PacketParts::from_packet(&packet).unwrap();
        let block = HeaderBuf::normalize(&parts, 44);
        let tcp = block.tcp_header();
        // The timestamps and the two NOPs after them fit in 24 bytes; the SACK does not.
        assert_eq!(tcp.len(), 36);
        assert_eq!(tcp[12] >> 4, 9);
        assert_eq!(&tcp[20..34], &options[..14]);
        assert_eq!(&tcp[34..], &[0, 0]);
        assert_eq!(
            block.payload_len(),
            4,
            "ip length lowered by the options cut"
        );
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
    fn ipv6_packets_split_and_name_their_ends() {
        let source: SocketAddr = "[2001:db8::3]:8080".parse().unwrap();
        let destination: SocketAddr = "[2001:db8::9:1]:52302".parse().unwrap();
        let packet = tcp_packet(source, destination, &[2, 4, 5, 0xa0], b"abc");
        let parts = PacketParts::from_packet(&packet).unwrap();
        let block = HeaderBuf::normalize(&parts, TCP_MAX_HEADER_LEN);
        assert_eq!(block.ip_header().len(), 40);
        assert_eq!(block.tcp_header().len(), 24);
        assert_eq!(block.payload_len(), 3);
        assert_eq!((block.source(), block.destination()), (source, destination));
    }

    #[test]
    fn unusable_packets_are_typed_errors() {
        let packet = tcp_packet(target(), client(), &[], b"xy");
        let mut not_tcp = packet.clone();
        not_tcp[9] = 17;
        let mut fragment = packet.clone();
        fragment[7] = 0x10;
        let mut bad_offset = packet.clone();
        bad_offset[32] = 0x40;
        let mut short_total = packet.clone();
        short_total[2..4].copy_from_slice(&30u16.to_be_bytes());
        let mut ipv6_extension = tcp_packet(
            "[::1]:1".parse().unwrap(),
            "[::2]:2".parse().unwrap(),
            &[],
            &[],
        );
        ipv6_extension[6] = 0;
        let cases: [(&[u8], ProtoError); 8] = [
            (
                &[],
                ProtoError::Truncated {
                    what: "ip header",
                    needed: 1,
                    had: 0,
                },
            ),
            (
                &packet[..19],
                ProtoError::Truncated {
                    what: "ipv4 header",
                    needed: 20,
                    had: 19,
                },
            ),
            (
                &packet[..30],
                ProtoError::Truncated {
                    what: "tcp header",
                    needed: 20,
                    had: 10,
                },
            ),
            (&[0x55; 40], ProtoError::BadIpVersion { version: 5 }),
            (&not_tcp, ProtoError::NotTcp { protocol: 17 }),
            (&fragment, ProtoError::Fragment { offset: 16 }),
            (&bad_offset, ProtoError::BadTcpDataOffset { offset: 4 }),
            (
                &short_total,
                ProtoError::BadIpLength {
                    declared: 10,
                    headers: 20,
                },
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(PacketParts::from_packet(bytes).err(), Some(expected));
        }
        assert_eq!(
            PacketParts::from_packet(&ipv6_extension).err(),
            Some(ProtoError::NotTcp { protocol: 0 })
        );
    }

    #[test]
    fn a_block_with_ip_options_or_extra_bytes_is_rejected() {
        let plain = tcp_packet(target(), client(), &[], &[]);
        let optioned = with_ip_options(&plain, &[1, 1, 1, 1]);
        assert_eq!(
            HeaderBuf::from_block(&optioned).err(),
            Some(ProtoError::BadIpv4HeaderLength { ihl: 6 })
        );
        let with_payload = tcp_packet(target(), client(), &[], b"x");
        assert_eq!(
            HeaderBuf::from_block(&with_payload).err(),
            Some(ProtoError::BadHeadersLength {
                len: 41,
                expected: 40
            })
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
            let parts = PacketParts::from_packet(&packet).unwrap();
            for limit in [44, TCP_MAX_HEADER_LEN] {
                let block = HeaderBuf::normalize(&parts, limit);
                prop_assert!(block.tcp_header().len() <= limit);
                let (again, payload_len) = HeaderBuf::from_block(block.as_bytes()).unwrap();
                prop_assert_eq!(again, block);
                prop_assert_eq!(payload_len, parts.payload_len);
                prop_assert_eq!(block.payload_len(), parts.payload_len);
                prop_assert_eq!(&block.tcp_header()[..12], &parts.tcp[..12]);
                if block.ip_header().len() == 20 {
                    prop_assert!(ipv4_checksum_is_valid(block.ip_header()));
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(parts) = PacketParts::from_packet(&bytes) {
                let block = HeaderBuf::normalize(&parts, 44);
                prop_assert!(block.as_bytes().len() <= MAX_HEADERS_LEN);
            }
            let _ = HeaderBuf::from_block(&bytes);
            let (ip, tcp) = bytes.split_at(bytes.len().min(20));
            let _ = PacketParts::from_v6_message(ip, tcp);
        }
    }
}
