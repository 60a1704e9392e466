//! The parsing entry points: a captured frame, an IP packet (NFQUEUE), or reply headers
//! without payload (the control protocol) down to a [`Segment`] and its payload.
//!
//! Composes the link, IP and TCP views; owns the rules that span layers (TCP only, no
//! fragments, payload length from the IP length fields). Never copies the payload.

use std::net::{IpAddr, SocketAddr};

use super::error::{Layer, PacketError, Result};
use super::ip::IpVersion;
use super::ipv4::Ipv4Packet;
use super::ipv6::Ipv6Packet;
use super::link::{LinkHeader, LinkType};
use super::tcp::TcpPacket;
use super::{Segment, TcpFlags, TcpOptions};

/// The IP protocol number of TCP.
pub(crate) const PROTOCOL_TCP: u8 = 6;

/// A captured frame, parsed down to the TCP payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub link: LinkHeader,
    pub segment: Segment,
    /// The IP packet, trimmed to its own length (link padding excluded).
    pub ip: &'a [u8],
    /// The TCP payload; `segment.payload_len` bytes.
    pub payload: &'a [u8],
}

/// Parses a frame captured on a `link` interface down to the TCP payload.
///
/// Link padding after the IP packet is ignored; a capture shorter than the IP length is
/// [`PacketError::Truncated`] at the IP layer; a non-TCP packet is
/// `Unsupported { what: "protocol", .. }` at the IP layer.
pub fn parse_frame(link: LinkType, frame: &[u8]) -> Result<Parsed<'_>> {
    let (link, network) = LinkHeader::parse(link, frame)?;
    let version = match link.ip_version() {
        Some(version) => version,
        None => IpVersion::sniff(network)?,
    };
    let packet = parse_packet(version, network, Extent::Whole)?;
    Ok(Parsed {
        link,
        segment: packet.segment,
        ip: packet.ip,
        payload: packet.payload,
    })
}

/// Parses an IP packet (what NFQUEUE hands over), the version read from its first nibble.
/// Returns the segment and its payload.
pub fn parse_ip(packet: &[u8]) -> Result<(Segment, &[u8])> {
    let parsed = parse_packet(IpVersion::sniff(packet)?, packet, Extent::Whole)?;
    Ok((parsed.segment, parsed.payload))
}

/// Parses the IP and TCP headers of a packet whose payload was not kept, as TCPCopy's
/// control protocol carries replies (an IPv4 header and a zero-padded TCP header).
///
/// The headers, TCP options included, must be present; bytes after them are ignored.
/// `payload_len` comes from the IP length fields.
pub fn parse_ip_headers(headers: &[u8]) -> Result<Segment> {
    let parsed = parse_packet(IpVersion::sniff(headers)?, headers, Extent::HeadersOnly)?;
    Ok(parsed.segment)
}

/// Parses a frame captured with a snap length that may have cut its payload short: the
/// segment (`payload_len` from the IP length fields) and the payload bytes at hand (link
/// padding excluded). The headers must be whole.
pub fn parse_frame_prefix(link: LinkType, frame: &[u8]) -> Result<(Segment, &[u8])> {
    let (link, network) = LinkHeader::parse(link, frame)?;
    let version = match link.ip_version() {
        Some(version) => version,
        None => IpVersion::sniff(network)?,
    };
    let packet = parse_packet(version, network, Extent::Prefix)?;
    Ok((packet.segment, packet.payload))
}

/// The header bytes of a TCP/IP packet, borrowed from it: what a reply's headers are made of
/// when they travel on (the control protocol carries them as bytes, not as a [`Segment`]).
///
/// TCP options are not interpreted here, so any option bytes pass through as captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderSplit<'a> {
    pub version: IpVersion,
    /// Sender address and port.
    pub src: SocketAddr,
    /// Receiver address and port.
    pub dst: SocketAddr,
    pub flags: TcpFlags,
    /// The whole IP header: IPv4 options or IPv6 extension headers included.
    pub ip_header: &'a [u8],
    /// The TCP header, options included.
    pub tcp_header: &'a [u8],
    /// The payload bytes at hand: within the IP length, possibly fewer than `payload_len`.
    pub payload: &'a [u8],
    /// The payload length the IP length fields declare.
    pub payload_len: usize,
}

/// Splits a packet whose payload may be cut short (a capture with a small snap length, an
/// NFQUEUE copy range, TCPCopy's zero-padded reply headers) into its IP header, TCP header
/// and the payload bytes at hand. The headers must be present; TCP options are not parsed.
pub fn split_ip_headers(bytes: &[u8]) -> Result<HeaderSplit<'_>> {
    let version = IpVersion::sniff(bytes)?;
    let layers = parse_layers(version, bytes, Extent::HeadersOnly)?;
    let headers_end = layers.network.tcp_offset + layers.tcp.header_len();
    let payload_end = layers.network.ip_len.min(bytes.len()).max(headers_end);
    Ok(HeaderSplit {
        version,
        src: SocketAddr::new(layers.network.src, layers.tcp.src_port()),
        dst: SocketAddr::new(layers.network.dst, layers.tcp.dst_port()),
        flags: layers.tcp.flags(),
        ip_header: bytes.get(..layers.network.tcp_offset).unwrap_or_default(),
        tcp_header: bytes
            .get(layers.network.tcp_offset..headers_end)
            .unwrap_or_default(),
        payload: bytes.get(headers_end..payload_end).unwrap_or_default(),
        payload_len: layers.payload_len,
    })
}

/// Whether the bytes hold the whole IP packet or only its headers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Extent {
    Whole,
    HeadersOnly,
    /// The headers and as much of the payload as was captured.
    Prefix,
}

/// The IP-layer facts a segment needs.
struct Network {
    layer: Layer,
    src: IpAddr,
    dst: IpAddr,
    ip_id: u16,
    ttl: u8,
    /// The packet length the IP header claims.
    ip_len: usize,
    /// Where the TCP header starts.
    tcp_offset: usize,
}

/// The IP and TCP layers of a packet, checked against each other.
struct Layers<'a> {
    network: Network,
    /// The IP packet: trimmed to its length when whole, as given when headers only.
    ip: &'a [u8],
    tcp: TcpPacket<&'a [u8]>,
    payload_len: usize,
}

struct ParsedPacket<'a> {
    segment: Segment,
    ip: &'a [u8],
    payload: &'a [u8],
}

fn parse_layers(version: IpVersion, bytes: &[u8], extent: Extent) -> Result<Layers<'_>> {
    let network = match version {
        IpVersion::V4 => parse_ipv4(bytes, extent)?,
        IpVersion::V6 => parse_ipv6(bytes, extent)?,
    };
    // A whole packet was checked to be captured up to `ip_len`; reply headers may come
    // with zero padding instead of payload, so their TCP header may reach past it.
    let end = match extent {
        Extent::Whole => network.ip_len,
        Extent::HeadersOnly => bytes.len(),
        Extent::Prefix => network.ip_len.min(bytes.len()),
    };
    let ip = bytes.get(..end).unwrap_or(bytes);
    let tcp = TcpPacket::new_checked(ip.get(network.tcp_offset..).unwrap_or_default())?;
    let payload_len = network
        .ip_len
        .checked_sub(network.tcp_offset + tcp.header_len())
        .ok_or(PacketError::Malformed {
            layer: network.layer,
            what: "length shorter than the tcp header",
        })?;
    Ok(Layers {
        network,
        ip,
        tcp,
        payload_len,
    })
}

fn parse_packet(version: IpVersion, bytes: &[u8], extent: Extent) -> Result<ParsedPacket<'_>> {
    let Layers {
        network,
        ip,
        tcp,
        payload_len,
    } = parse_layers(version, bytes, extent)?;
    let payload = match extent {
        Extent::Whole | Extent::Prefix => ip
            .get(network.tcp_offset + tcp.header_len()..)
            .unwrap_or_default(),
        Extent::HeadersOnly => &[],
    };
    let segment = Segment {
        src: SocketAddr::new(network.src, tcp.src_port()),
        dst: SocketAddr::new(network.dst, tcp.dst_port()),
        seq: tcp.seq_number(),
        ack: tcp.ack_number(),
        flags: tcp.flags(),
        window: tcp.window(),
        options: TcpOptions::parse(tcp.options())?,
        ip_id: network.ip_id,
        ttl: network.ttl,
        payload_len,
    };
    Ok(ParsedPacket {
        segment,
        ip,
        payload,
    })
}

fn parse_ipv4(bytes: &[u8], extent: Extent) -> Result<Network> {
    let ip = match extent {
        Extent::Whole => Ipv4Packet::new_checked(bytes)?,
        Extent::HeadersOnly | Extent::Prefix => Ipv4Packet::new_checked_header(bytes)?,
    };
    // A fragment carries part of a segment: replaying it as a whole one would desync the
    // session (RFC 791 §2.3).
    if ip.is_fragment() {
        return Err(PacketError::Unsupported {
            layer: Layer::Ipv4,
            what: "fragment at offset",
            value: u32::from(ip.frag_offset()) * 8,
        });
    }
    ensure_tcp(Layer::Ipv4, ip.protocol())?;
    Ok(Network {
        layer: Layer::Ipv4,
        src: ip.src_addr().into(),
        dst: ip.dst_addr().into(),
        ip_id: ip.ident(),
        ttl: ip.ttl(),
        ip_len: ip.total_len(),
        tcp_offset: ip.header_len(),
    })
}

fn parse_ipv6(bytes: &[u8], extent: Extent) -> Result<Network> {
    let ip = match extent {
        Extent::Whole => Ipv6Packet::new_checked(bytes)?,
        Extent::HeadersOnly | Extent::Prefix => Ipv6Packet::new_checked_header(bytes)?,
    };
    let upper = ip.upper_layer()?;
    ensure_tcp(Layer::Ipv6, upper.protocol)?;
    Ok(Network {
        layer: Layer::Ipv6,
        src: ip.src_addr().into(),
        dst: ip.dst_addr().into(),
        ip_id: 0,
        ttl: ip.hop_limit(),
        ip_len: ip.total_len(),
        tcp_offset: upper.offset,
    })
}

fn ensure_tcp(layer: Layer, protocol: u8) -> Result<()> {
    if protocol == PROTOCOL_TCP {
        Ok(())
    } else {
        Err(PacketError::Unsupported {
            layer,
            what: "protocol",
            value: u32::from(protocol),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::emit_ip;
    use crate::packet::testing::{
        IPV4_PACKET, IPV6_PACKET, PAYLOAD, fixture_segment, frame_fixtures,
    };
    use proptest::prelude::*;

    #[test]
    fn deconstruct_every_link_type() {
        for fixture in frame_fixtures() {
            let frame = fixture.frame();
            let parsed = parse_frame(fixture.link.link_type(), &frame)
                .unwrap_or_else(|err| panic!("{}: {err}", fixture.name));
            assert_eq!(parsed.link, fixture.link, "{}", fixture.name);
            assert_eq!(
                parsed.segment,
                fixture_segment(fixture.version),
                "{}",
                fixture.name
            );
            assert_eq!(parsed.ip, fixture.ip(), "{}", fixture.name);
            assert_eq!(parsed.payload, PAYLOAD, "{}", fixture.name);
        }
    }

    #[test]
    fn a_prefix_capture_keeps_the_bytes_at_hand_and_the_declared_length() {
        for fixture in frame_fixtures() {
            let frame = fixture.frame();
            let whole = parse_frame(fixture.link.link_type(), &frame).unwrap();
            let (segment, payload) = parse_frame_prefix(fixture.link.link_type(), &frame).unwrap();
            assert_eq!(
                (&segment, payload),
                (&whole.segment, whole.payload),
                "{}",
                fixture.name
            );
            let headers_end = frame.len() - PAYLOAD.len();
            for cut in headers_end..frame.len() {
                let (segment, payload) =
                    parse_frame_prefix(fixture.link.link_type(), &frame[..cut]).unwrap();
                assert_eq!(segment.payload_len, PAYLOAD.len(), "{}", fixture.name);
                assert_eq!(payload, &PAYLOAD[..cut - headers_end], "{}", fixture.name);
            }
            assert!(
                parse_frame_prefix(fixture.link.link_type(), &frame[..headers_end - 1]).is_err()
            );
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for fixture in frame_fixtures() {
            let frame = fixture.frame();
            for len in 0..frame.len() {
                assert!(
                    parse_frame(fixture.link.link_type(), &frame[..len]).is_err(),
                    "{} cut to {len} bytes parsed",
                    fixture.name
                );
            }
        }
    }

    #[test]
    fn ethernet_padding_is_trimmed() {
        let mut segment = fixture_segment(IpVersion::V4);
        segment.options = TcpOptions::default();
        let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        emit_ip(&segment, &[], &mut frame).unwrap();
        assert_eq!(frame.len(), 14 + 40);
        frame.resize(60, 0);
        let parsed = parse_frame(LinkType::Ethernet, &frame).unwrap();
        assert_eq!(parsed.ip, &frame[14..54]);
        assert_eq!(parsed.payload, &[] as &[u8]);
        assert_eq!(parsed.segment.payload_len, 0);
    }

    #[test]
    fn short_capture_is_truncated_at_the_ip_layer() {
        let frame = [&[0u8, 0, 0, 2][..], &IPV4_PACKET[..60]].concat();
        assert_eq!(
            parse_frame(LinkType::Null, &frame).unwrap_err(),
            PacketError::Truncated {
                layer: Layer::Ipv4,
                needed: 68,
                got: 60
            }
        );
        assert_eq!(
            parse_ip(&IPV6_PACKET[..80]).unwrap_err(),
            PacketError::Truncated {
                layer: Layer::Ipv6,
                needed: 88,
                got: 80
            }
        );
    }

    #[test]
    fn non_tcp_and_non_ip_are_unsupported() {
        let mut udp = IPV4_PACKET;
        udp[9] = 17;
        assert_eq!(
            parse_ip(&udp).unwrap_err(),
            PacketError::Unsupported {
                layer: Layer::Ipv4,
                what: "protocol",
                value: 17
            }
        );
        let mut icmp6 = IPV6_PACKET;
        icmp6[6] = 58;
        assert_eq!(
            parse_ip(&icmp6).unwrap_err(),
            PacketError::Unsupported {
                layer: Layer::Ipv6,
                what: "protocol",
                value: 58
            }
        );
        let arp = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1];
        assert_eq!(
            parse_frame(LinkType::Ethernet, &arp).unwrap_err(),
            PacketError::Unsupported {
                layer: Layer::Link,
                what: "ethertype",
                value: 0x0806
            }
        );
    }

    #[test]
    fn ipv4_fragments_are_unsupported() {
        for flags_and_offset in [[0x20, 0x00], [0x00, 0x10]] {
            let mut fragment = IPV4_PACKET;
            fragment[6..8].copy_from_slice(&flags_and_offset);
            assert!(matches!(
                parse_ip(&fragment),
                Err(PacketError::Unsupported {
                    layer: Layer::Ipv4,
                    what: "fragment at offset",
                    ..
                })
            ));
        }
    }

    #[test]
    fn parse_ip_returns_segment_and_payload() {
        for (packet, version) in [
            (&IPV4_PACKET[..], IpVersion::V4),
            (&IPV6_PACKET[..], IpVersion::V6),
        ] {
            let (segment, payload) = parse_ip(packet).unwrap();
            assert_eq!(segment, fixture_segment(version));
            assert_eq!(payload, PAYLOAD);
        }
    }

    #[test]
    fn reply_headers_without_payload() {
        // TCPCopy's control message: the 20-byte IPv4 header and the TCP header
        // zero-padded to 44 bytes; the payload stays behind.
        let mut headers = IPV4_PACKET[..52].to_vec();
        headers.resize(20 + 44, 0);
        let segment = parse_ip_headers(&headers).unwrap();
        assert_eq!(segment, fixture_segment(IpVersion::V4));
        assert_eq!(segment.payload_len, PAYLOAD.len());

        let segment = parse_ip_headers(&IPV6_PACKET[..72]).unwrap();
        assert_eq!(segment, fixture_segment(IpVersion::V6));

        assert_eq!(
            parse_ip_headers(&IPV4_PACKET[..40]).unwrap_err(),
            PacketError::Truncated {
                layer: Layer::Tcp,
                needed: 32,
                got: 20
            }
        );
        let mut short_total = headers.clone();
        short_total[2..4].copy_from_slice(&40u16.to_be_bytes());
        assert_eq!(
            parse_ip_headers(&short_total).unwrap_err(),
            PacketError::Malformed {
                layer: Layer::Ipv4,
                what: "length shorter than the tcp header"
            }
        );
    }

    #[test]
    fn split_headers_of_a_cut_or_padded_packet() {
        let whole = split_ip_headers(&IPV4_PACKET).unwrap();
        let segment = fixture_segment(IpVersion::V4);
        assert_eq!(
            (whole.src, whole.dst, whole.flags),
            (segment.src, segment.dst, segment.flags)
        );
        assert_eq!(whole.ip_header, &IPV4_PACKET[..20]);
        assert_eq!(whole.tcp_header, &IPV4_PACKET[20..52]);
        assert_eq!((whole.payload, whole.payload_len), (PAYLOAD, PAYLOAD.len()));

        let cut = split_ip_headers(&IPV4_PACKET[..54]).unwrap();
        assert_eq!(
            (cut.payload, cut.payload_len),
            (&PAYLOAD[..2], PAYLOAD.len())
        );

        let mut padded = IPV4_PACKET.to_vec();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(split_ip_headers(&padded).unwrap().payload, PAYLOAD);

        let v6 = split_ip_headers(&IPV6_PACKET).unwrap();
        assert_eq!((v6.version, v6.ip_header.len()), (IpVersion::V6, 40));
        assert_eq!(
            split_ip_headers(&IPV4_PACKET[..40]).err(),
            parse_ip_headers(&IPV4_PACKET[..40]).err()
        );
    }

    const LINK_TYPES: [LinkType; 6] = [
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::RawIp,
        LinkType::Null,
        LinkType::Loop,
    ];

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            for link in LINK_TYPES {
                if let Ok(parsed) = parse_frame(link, &bytes) {
                    prop_assert_eq!(parsed.payload.len(), parsed.segment.payload_len);
                }
            }
            let _ = parse_ip(&bytes);
            let _ = parse_ip_headers(&bytes);
            if let Ok(split) = split_ip_headers(&bytes) {
                prop_assert!(split.payload.len() <= split.payload_len);
            }
        }

        /// Random bytes rarely get past the link layer; corrupting valid frames reaches
        /// every layer's checks.
        #[test]
        fn corrupted_frames_never_panic(
            fixture in prop::sample::select(frame_fixtures()),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let link = fixture.link.link_type();
            let mut frame = fixture.frame();
            for (at, value) in edits {
                let at = at.index(frame.len());
                frame[at] = value;
            }
            frame.truncate(cut.index(frame.len() + 1));
            if let Ok(parsed) = parse_frame(link, &frame) {
                prop_assert_eq!(parsed.payload.len(), parsed.segment.payload_len);
                prop_assert!(parsed.ip.len() <= frame.len());
            }
            let _ = parse_ip_headers(&frame);
        }
    }
}
