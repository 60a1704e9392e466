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
use super::{Segment, TcpOptions};

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

/// Whether the bytes hold the whole IP packet or only its headers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Extent {
    Whole,
    HeadersOnly,
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

struct ParsedPacket<'a> {
    segment: Segment,
    ip: &'a [u8],
    payload: &'a [u8],
}

fn parse_packet(version: IpVersion, bytes: &[u8], extent: Extent) -> Result<ParsedPacket<'_>> {
    let network = match version {
        IpVersion::V4 => parse_ipv4(bytes, extent)?,
        IpVersion::V6 => parse_ipv6(bytes, extent)?,
    };
    // A whole packet was checked to be captured up to `ip_len`; reply headers may come
    // with zero padding instead of payload, so their TCP header may reach past it.
    let end = match extent {
        Extent::Whole => network.ip_len,
        Extent::HeadersOnly => bytes.len(),
    };
    let ip = bytes.get(..end).unwrap_or(bytes);
    let tcp_bytes = ip.get(network.tcp_offset..).unwrap_or_default();
    let tcp = TcpPacket::new_checked(tcp_bytes)?;
    let payload_len = network
        .ip_len
        .checked_sub(network.tcp_offset + tcp.header_len())
        .ok_or(PacketError::Malformed {
            layer: network.layer,
            what: "length shorter than the tcp header",
        })?;
    let payload = match extent {
        Extent::Whole => tcp_bytes.get(tcp.header_len()..).unwrap_or_default(),
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
        Extent::HeadersOnly => Ipv4Packet::new_checked_header(bytes)?,
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
        Extent::HeadersOnly => Ipv6Packet::new_checked_header(bytes)?,
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
