//! Shared test fixtures and proptest strategies for the packet model (test builds only).
//!
//! The IP packets below were built and checksummed by an independent Python script
//! (struct + a naive RFC 1071 sum); the link headers are written out by hand.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::{
    EthernetHeader, IpVersion, LinkHeader, LoopbackHeader, Segment, SeqNum, Sll2Header, SllHeader,
    TcpFlags, TcpOptions, Timestamps, VlanTag,
};

/// 192.0.2.1:40000 -> 198.51.100.2:80, id 0x1234, DF, ttl 64, seq 0x01020304,
/// ack 0x0a0b0c0d, PSH|ACK, window 502, NOP NOP TS(100, 200), payload [`PAYLOAD`].
pub(crate) const IPV4_PACKET: [u8; 68] = [
    0x45, 0x00, 0x00, 0x44, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x3c, 0x49, //
    0xc0, 0x00, 0x02, 0x01, 0xc6, 0x33, 0x64, 0x02, 0x9c, 0x40, 0x00, 0x50, //
    0x01, 0x02, 0x03, 0x04, 0x0a, 0x0b, 0x0c, 0x0d, 0x80, 0x18, 0x01, 0xf6, //
    0xff, 0x06, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0x00, 0x00, 0x00, 0x64, //
    0x00, 0x00, 0x00, 0xc8, 0x47, 0x45, 0x54, 0x20, 0x2f, 0x20, 0x48, 0x54, //
    0x54, 0x50, 0x2f, 0x31, 0x2e, 0x31, 0x0d, 0x0a,
];

/// The same segment from 2001:db8::1 to 2001:db8::2, hop limit 64, flow label 0.
pub(crate) const IPV6_PACKET: [u8; 88] = [
    0x60, 0x00, 0x00, 0x00, 0x00, 0x30, 0x06, 0x40, 0x20, 0x01, 0x0d, 0xb8, //
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, //
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    0x00, 0x00, 0x00, 0x02, 0x9c, 0x40, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04, //
    0x0a, 0x0b, 0x0c, 0x0d, 0x80, 0x18, 0x01, 0xf6, 0x8f, 0xc9, 0x00, 0x00, //
    0x01, 0x01, 0x08, 0x0a, 0x00, 0x00, 0x00, 0x64, 0x00, 0x00, 0x00, 0xc8, //
    0x47, 0x45, 0x54, 0x20, 0x2f, 0x20, 0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, //
    0x2e, 0x31, 0x0d, 0x0a,
];

pub(crate) const PAYLOAD: &[u8] = b"GET / HTTP/1.1\r\n";

/// The segment both fixture packets carry.
pub(crate) fn fixture_segment(version: IpVersion) -> Segment {
    let (src, dst): (IpAddr, IpAddr) = match version {
        IpVersion::V4 => (
            Ipv4Addr::new(192, 0, 2, 1).into(),
            Ipv4Addr::new(198, 51, 100, 2).into(),
        ),
        IpVersion::V6 => (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).into(),
        ),
    };
    Segment {
        src: SocketAddr::new(src, 40000),
        dst: SocketAddr::new(dst, 80),
        seq: SeqNum(0x0102_0304),
        ack: SeqNum(0x0a0b_0c0d),
        flags: TcpFlags::PSH | TcpFlags::ACK,
        window: 502,
        options: TcpOptions {
            timestamps: Some(Timestamps {
                tsval: 100,
                tsecr: 200,
            }),
            ..TcpOptions::default()
        },
        ip_id: match version {
            IpVersion::V4 => 0x1234,
            IpVersion::V6 => 0,
        },
        ttl: 64,
        payload_len: PAYLOAD.len(),
    }
}

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// A hand-written frame: its link header bytes, the header they parse to, and the packet.
#[derive(Debug, Clone)]
pub(crate) struct FrameFixture {
    pub name: &'static str,
    pub link: LinkHeader,
    pub link_bytes: Vec<u8>,
    pub version: IpVersion,
}

impl FrameFixture {
    pub fn ip(&self) -> &'static [u8] {
        match self.version {
            IpVersion::V4 => &IPV4_PACKET,
            IpVersion::V6 => &IPV6_PACKET,
        }
    }

    pub fn frame(&self) -> Vec<u8> {
        [&self.link_bytes[..], self.ip()].concat()
    }
}

/// Every link type, with and without VLAN tags, over IPv4 and IPv6.
pub(crate) fn frame_fixtures() -> Vec<FrameFixture> {
    let mut fixtures = Vec::new();
    for version in [IpVersion::V4, IpVersion::V6] {
        let (ethertype_bytes, ethertype): ([u8; 2], u16) = match version {
            IpVersion::V4 => ([0x08, 0x00], 0x0800),
            IpVersion::V6 => ([0x86, 0xdd], 0x86dd),
        };
        let [t0, t1] = ethertype_bytes;
        let ethernet = |vlan_tags| {
            LinkHeader::Ethernet(EthernetHeader {
                dst: MAC_B,
                src: MAC_A,
                vlan_tags,
                ethertype,
            })
        };
        let (null_family, loop_family) = match version {
            IpVersion::V4 => (2, 2),
            IpVersion::V6 => (30, 24),
        };
        fixtures.extend([
            FrameFixture {
                name: "ethernet",
                link: ethernet([None, None]),
                link_bytes: vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, t0, t1],
                version,
            },
            FrameFixture {
                name: "ethernet 802.1q",
                link: ethernet([
                    Some(VlanTag {
                        tpid: 0x8100,
                        tci: 0x2064,
                    }),
                    None,
                ]),
                link_bytes: vec![
                    2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x81, 0x00, 0x20, 0x64, t0, t1,
                ],
                version,
            },
            FrameFixture {
                name: "ethernet qinq",
                link: ethernet([
                    Some(VlanTag {
                        tpid: 0x88a8,
                        tci: 0x000a,
                    }),
                    Some(VlanTag {
                        tpid: 0x8100,
                        tci: 0x0064,
                    }),
                ]),
                link_bytes: vec![
                    2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00,
                    0x64, t0, t1,
                ],
                version,
            },
            FrameFixture {
                name: "linux cooked v1",
                link: LinkHeader::LinuxSll(SllHeader {
                    packet_type: 0,
                    arphrd: 1,
                    addr_len: 6,
                    addr: [2, 0, 0, 0, 0, 1, 0, 0],
                    protocol: ethertype,
                }),
                link_bytes: vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, t0, t1],
                version,
            },
            FrameFixture {
                name: "linux cooked v2",
                link: LinkHeader::LinuxSll2(Sll2Header {
                    protocol: ethertype,
                    reserved: 0,
                    interface_index: 2,
                    arphrd: 1,
                    packet_type: 4,
                    addr_len: 6,
                    addr: [2, 0, 0, 0, 0, 1, 0, 0],
                }),
                link_bytes: vec![t0, t1, 0, 0, 0, 0, 0, 2, 0, 1, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0],
                version,
            },
            FrameFixture {
                name: "raw ip",
                link: LinkHeader::RawIp,
                link_bytes: vec![],
                version,
            },
            FrameFixture {
                name: "null, little-endian host",
                link: LinkHeader::Null(LoopbackHeader {
                    family: null_family,
                    big_endian: false,
                }),
                link_bytes: vec![null_family as u8, 0, 0, 0],
                version,
            },
            FrameFixture {
                name: "null, big-endian host",
                link: LinkHeader::Null(LoopbackHeader {
                    family: null_family,
                    big_endian: true,
                }),
                link_bytes: vec![0, 0, 0, null_family as u8],
                version,
            },
            FrameFixture {
                name: "loop",
                link: LinkHeader::Loop(LoopbackHeader {
                    family: loop_family,
                    big_endian: true,
                }),
                link_bytes: vec![0, 0, 0, loop_family as u8],
                version,
            },
        ]);
    }
    fixtures
}

pub(crate) fn arbitrary_options() -> impl Strategy<Value = TcpOptions> {
    (
        any::<Option<u16>>(),
        any::<Option<u8>>(),
        any::<bool>(),
        any::<Option<(u32, u32)>>(),
    )
        .prop_map(|(mss, window_scale, sack_permitted, ts)| TcpOptions {
            mss,
            window_scale,
            sack_permitted,
            timestamps: ts.map(|(tsval, tsecr)| Timestamps { tsval, tsecr }),
        })
}

/// A source and destination address of the same family.
fn arbitrary_addresses() -> impl Strategy<Value = (IpAddr, IpAddr)> {
    prop_oneof![
        any::<(Ipv4Addr, Ipv4Addr)>().prop_map(|(a, b)| (a.into(), b.into())),
        any::<(Ipv6Addr, Ipv6Addr)>().prop_map(|(a, b)| (a.into(), b.into())),
    ]
}

/// Any segment with a payload of up to `max_payload` bytes; IPv6 segments have ip_id 0,
/// as the parser reports them.
pub(crate) fn arbitrary_segment(max_payload: usize) -> impl Strategy<Value = (Segment, Vec<u8>)> {
    (
        arbitrary_addresses(),
        any::<(u16, u16, u32, u32, u8, u16, u16, u8)>(),
        arbitrary_options(),
        proptest::collection::vec(any::<u8>(), 0..=max_payload),
    )
        .prop_map(
            |(
                (src, dst),
                (sport, dport, seq, ack, flags, window, ip_id, ttl),
                options,
                payload,
            )| {
                let segment = Segment {
                    src: SocketAddr::new(src, sport),
                    dst: SocketAddr::new(dst, dport),
                    seq: SeqNum(seq),
                    ack: SeqNum(ack),
                    flags: TcpFlags(flags),
                    window,
                    options,
                    ip_id: if src.is_ipv4() { ip_id } else { 0 },
                    ttl,
                    payload_len: payload.len(),
                };
                (segment, payload)
            },
        )
}

/// Any link header able to carry `version`.
pub(crate) fn arbitrary_link(version: IpVersion) -> impl Strategy<Value = LinkHeader> {
    let ethertype = version.ethertype();
    let families: &'static [u32] = match version {
        IpVersion::V4 => &[2],
        IpVersion::V6 => &[10, 24, 28, 30],
    };
    let tag = (
        prop::sample::select(&[0x8100u16, 0x88a8, 0x9100][..]),
        any::<u16>(),
    )
        .prop_map(|(tpid, tci)| VlanTag { tpid, tci });
    let ethernet = (
        any::<([u8; 6], [u8; 6])>(),
        proptest::collection::vec(tag, 0..=2),
    )
        .prop_map(move |((dst, src), tags)| {
            let mut vlan_tags = [None; 2];
            for (slot, tag) in vlan_tags.iter_mut().zip(tags) {
                *slot = Some(tag);
            }
            LinkHeader::Ethernet(EthernetHeader {
                dst,
                src,
                vlan_tags,
                ethertype,
            })
        });
    let sll =
        any::<(u16, u16, u16, [u8; 8])>().prop_map(move |(packet_type, arphrd, addr_len, addr)| {
            LinkHeader::LinuxSll(SllHeader {
                packet_type,
                arphrd,
                addr_len,
                addr,
                protocol: ethertype,
            })
        });
    let sll2 = any::<(u16, u32, u16, u8, u8, [u8; 8])>().prop_map(
        move |(reserved, interface_index, arphrd, packet_type, addr_len, addr)| {
            LinkHeader::LinuxSll2(Sll2Header {
                protocol: ethertype,
                reserved,
                interface_index,
                arphrd,
                packet_type,
                addr_len,
                addr,
            })
        },
    );
    let null = (prop::sample::select(families), any::<bool>())
        .prop_map(|(family, big_endian)| LinkHeader::Null(LoopbackHeader { family, big_endian }));
    let lo = prop::sample::select(families).prop_map(|family| {
        LinkHeader::Loop(LoopbackHeader {
            family,
            big_endian: true,
        })
    });
    prop_oneof![ethernet, sll, sll2, Just(LinkHeader::RawIp), null, lo]
}

/// True when an emitted IP packet (no extension headers) has a correct IPv4 header
/// checksum and a TCP checksum that folds to 0 over the pseudo-header and segment.
pub(crate) fn checksums_verify(packet: &[u8]) -> bool {
    use super::checksum;
    use super::{Ipv4Packet, Ipv6Packet};
    match IpVersion::sniff(packet) {
        Ok(IpVersion::V4) => Ipv4Packet::new_checked(packet).is_ok_and(|ip| {
            ip.verify_checksum()
                && checksum::tcp_ipv4(ip.src_addr(), ip.dst_addr(), ip.payload()) == 0
        }),
        Ok(IpVersion::V6) => Ipv6Packet::new_checked(packet)
            .is_ok_and(|ip| checksum::tcp_ipv6(ip.src_addr(), ip.dst_addr(), ip.payload()) == 0),
        Err(_) => false,
    }
}
