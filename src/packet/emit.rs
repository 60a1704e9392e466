//! Writing a [`Segment`] and its payload back out as an IP packet or a whole frame.
//!
//! Owns the choices a captured packet does not dictate: no IP options, DF set, traffic
//! class and flow label 0, urgent pointer 0, and checksums always computed in full.
//! Appends to a caller's buffer so buffers can be recycled; never panics, and leaves the
//! buffer as it was on error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Segment;
use super::error::{Layer, PacketError, Result};
use super::ip::IpVersion;
use super::ipv4::{self, Ipv4Packet};
use super::ipv6::{self, Ipv6Packet};
use super::link::LinkHeader;
use super::parse::PROTOCOL_TCP;
use super::tcp::{self, TcpPacket};

/// Appends `segment` with `payload` as a complete IPv4 or IPv6 packet, the version given by
/// the segment's addresses.
///
/// The payload slice is authoritative: `segment.payload_len` is not read. IPv4 packets get
/// DF, `ip_id` and `ttl` from the segment; IPv6 packets take `ttl` as hop limit.
/// Fails if the source and destination families differ, or if the packet would not fit
/// the IP length field.
pub fn emit_ip(segment: &Segment, payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
    match (segment.src.ip(), segment.dst.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => emit_ipv4(src, dst, segment, payload, out),
        (IpAddr::V6(src), IpAddr::V6(dst)) => emit_ipv6(src, dst, segment, payload, out),
        (IpAddr::V4(_), IpAddr::V6(_)) => Err(mixed_families(Layer::Ipv4)),
        (IpAddr::V6(_), IpAddr::V4(_)) => Err(mixed_families(Layer::Ipv6)),
    }
}

/// Appends a whole frame: `link` exactly as parsed, then the IP packet of [`emit_ip`].
///
/// Fails if the link header announces the other IP version than the segment's.
pub fn emit_frame(
    link: &LinkHeader,
    segment: &Segment,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    let version = match segment.src.ip() {
        IpAddr::V4(_) => IpVersion::V4,
        IpAddr::V6(_) => IpVersion::V6,
    };
    if link
        .ip_version()
        .is_some_and(|announced| announced != version)
    {
        return Err(PacketError::Malformed {
            layer: Layer::Link,
            what: "link header announces another ip version than the segment's",
        });
    }
    let start = out.len();
    link.emit(out);
    emit_ip(segment, payload, out).inspect_err(|_| out.truncate(start))
}

fn mixed_families(layer: Layer) -> PacketError {
    PacketError::Malformed {
        layer,
        what: "source and destination address families differ",
    }
}

/// The TCP header and payload length `segment` emits to.
fn tcp_len(segment: &Segment, payload: &[u8]) -> usize {
    tcp::HEADER_LEN + segment.options.wire_len() + payload.len()
}

fn emit_ipv4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    segment: &Segment,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    let len = ipv4::HEADER_LEN + tcp_len(segment, payload);
    let total_len = u16::try_from(len).map_err(|_| PacketError::Oversized {
        layer: Layer::Ipv4,
        len,
        max: ipv4::MAX_PACKET_LEN,
    })?;
    let start = out.len();
    out.resize(start + ipv4::HEADER_LEN, 0);
    let mut ip = Ipv4Packet::new_unchecked(&mut out[start..]);
    ip.set_header_len(ipv4::HEADER_LEN);
    ip.set_dscp_ecn(0);
    ip.set_total_len(total_len);
    ip.set_ident(segment.ip_id);
    ip.set_unfragmented(true);
    ip.set_ttl(segment.ttl);
    ip.set_protocol(PROTOCOL_TCP);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    ip.fill_checksum();
    let tcp_start = append_tcp(segment, payload, out);
    TcpPacket::new_unchecked(&mut out[tcp_start..]).fill_checksum_ipv4(src, dst);
    Ok(())
}

fn emit_ipv6(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    segment: &Segment,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    let len = tcp_len(segment, payload);
    let payload_len = u16::try_from(len).map_err(|_| PacketError::Oversized {
        layer: Layer::Ipv6,
        len: ipv6::HEADER_LEN + len,
        max: ipv6::HEADER_LEN + ipv6::MAX_PAYLOAD_LEN,
    })?;
    let start = out.len();
    out.resize(start + ipv6::HEADER_LEN, 0);
    let mut ip = Ipv6Packet::new_unchecked(&mut out[start..]);
    ip.set_version_class_flow(0, 0);
    ip.set_payload_len(payload_len);
    ip.set_next_header(PROTOCOL_TCP);
    ip.set_hop_limit(segment.ttl);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    let tcp_start = append_tcp(segment, payload, out);
    TcpPacket::new_unchecked(&mut out[tcp_start..]).fill_checksum_ipv6(src, dst);
    Ok(())
}

/// Appends the TCP header, options and payload with a zero checksum; returns where the
/// header starts.
fn append_tcp(segment: &Segment, payload: &[u8], out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.resize(start + tcp::HEADER_LEN, 0);
    segment.options.emit(out);
    let header_len = out.len() - start;
    out.extend_from_slice(payload);
    let mut tcp = TcpPacket::new_unchecked(&mut out[start..]);
    tcp.set_src_port(segment.src.port());
    tcp.set_dst_port(segment.dst.port());
    tcp.set_seq_number(segment.seq);
    tcp.set_ack_number(segment.ack);
    tcp.set_header_len(header_len);
    tcp.set_flags(segment.flags);
    tcp.set_window(segment.window);
    tcp.set_urgent_pointer(0);
    start
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::testing::{
        PAYLOAD, arbitrary_link, arbitrary_segment, checksums_verify, fixture_segment,
        frame_fixtures,
    };
    use crate::packet::{LinkType, parse_frame};
    use proptest::prelude::*;
    use std::net::SocketAddr;

    #[test]
    fn construct_every_link_type() {
        for fixture in frame_fixtures() {
            let mut out = Vec::new();
            emit_frame(
                &fixture.link,
                &fixture_segment(fixture.version),
                PAYLOAD,
                &mut out,
            )
            .unwrap();
            assert_eq!(out, fixture.frame(), "{}", fixture.name);
        }
    }

    #[test]
    fn appends_after_existing_bytes() {
        let mut out = vec![0xaa; 3];
        emit_ip(&fixture_segment(IpVersion::V4), PAYLOAD, &mut out).unwrap();
        assert_eq!(out[..3], [0xaa; 3]);
        assert!(checksums_verify(&out[3..]));
    }

    #[test]
    fn mixed_families_are_an_error_and_write_nothing() {
        let mut segment = fixture_segment(IpVersion::V4);
        segment.dst = fixture_segment(IpVersion::V6).dst;
        let mut out = vec![1, 2];
        assert_eq!(
            emit_ip(&segment, PAYLOAD, &mut out).unwrap_err(),
            mixed_families(Layer::Ipv4)
        );
        assert_eq!(
            emit_frame(&LinkHeader::RawIp, &segment, PAYLOAD, &mut out).unwrap_err(),
            mixed_families(Layer::Ipv4)
        );
        assert_eq!(out, [1, 2]);
    }

    #[test]
    fn link_of_the_other_version_is_an_error() {
        let ipv6_link = frame_fixtures()
            .into_iter()
            .find(|f| f.version == IpVersion::V6 && f.link.link_type() == LinkType::Ethernet)
            .map(|f| f.link)
            .unwrap();
        let mut out = Vec::new();
        assert!(matches!(
            emit_frame(
                &ipv6_link,
                &fixture_segment(IpVersion::V4),
                PAYLOAD,
                &mut out
            ),
            Err(PacketError::Malformed {
                layer: Layer::Link,
                ..
            })
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn oversized_packets_are_an_error() {
        let payload = vec![0; 65_535];
        let mut out = Vec::new();
        let v4 = fixture_segment(IpVersion::V4);
        assert_eq!(
            emit_ip(&v4, &payload, &mut out).unwrap_err(),
            PacketError::Oversized {
                layer: Layer::Ipv4,
                len: 20 + 32 + 65_535,
                max: 65_535
            }
        );
        let v6 = fixture_segment(IpVersion::V6);
        assert!(matches!(
            emit_ip(&v6, &payload, &mut out),
            Err(PacketError::Oversized {
                layer: Layer::Ipv6,
                ..
            })
        ));
        assert!(out.is_empty());
        // The largest IPv4 packet still fits.
        emit_ip(&v4, &payload[..65_535 - 52], &mut out).unwrap();
        assert_eq!(out.len(), 65_535);
    }

    fn segment_and_link() -> impl Strategy<Value = (Segment, Vec<u8>, LinkHeader)> {
        arbitrary_segment(1600).prop_flat_map(|(segment, payload)| {
            let version = match segment.src {
                SocketAddr::V4(_) => IpVersion::V4,
                SocketAddr::V6(_) => IpVersion::V6,
            };
            (Just(segment), Just(payload), arbitrary_link(version))
        })
    }

    proptest! {
        #[test]
        fn emit_then_parse_round_trips(
            (segment, payload, link) in segment_and_link(),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut frame = Vec::new();
            emit_frame(&link, &segment, &payload, &mut frame).unwrap();
            let parsed = parse_frame(link.link_type(), &frame).unwrap();
            prop_assert_eq!(parsed.link, link);
            prop_assert_eq!(&parsed.segment, &segment);
            prop_assert_eq!(parsed.payload, &payload[..]);
            prop_assert!(checksums_verify(parsed.ip));

            let mut packet = Vec::new();
            emit_ip(&segment, &payload, &mut packet).unwrap();
            prop_assert_eq!(&packet[..], parsed.ip);

            let truncated = &frame[..cut.index(frame.len())];
            prop_assert!(parse_frame(link.link_type(), truncated).is_err());
        }
    }
}
