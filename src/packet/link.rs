//! Link layers as pcap delivers them: Ethernet (with 802.1Q/802.1ad tags), Linux cooked
//! captures v1 and v2, raw IP, and BSD loopback (DLT_NULL and DLT_LOOP).
//!
//! Owns each header's layout and keeps every field needed to write the frame back
//! byte-exact; hands the network-layer bytes on untouched and only checks that they claim
//! to be IPv4 or IPv6. Field references: <https://www.tcpdump.org/linktypes.html>.

use super::bytes::{read_array, read_u16, read_u32};
use super::error::{Layer, PacketError, Result, ensure_len};
use super::ip::IpVersion;

/// The link layers tcpcopy reads and writes, by their pcap link-type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// LINKTYPE_ETHERNET (1).
    Ethernet,
    /// LINKTYPE_LINUX_SLL (113): Linux cooked capture v1, what the `any` device gives.
    LinuxSll,
    /// LINKTYPE_LINUX_SLL2 (276): Linux cooked capture v2.
    LinuxSll2,
    /// Raw IPv4 or IPv6, the version in the first nibble.
    RawIp,
    /// LINKTYPE_NULL (0): BSD loopback, a 4-byte address family in the capturing host's
    /// byte order.
    Null,
    /// LINKTYPE_LOOP (108): OpenBSD loopback, the same family in network byte order.
    Loop,
}

impl LinkType {
    /// The link type of a pcap DLT or LINKTYPE value: 12, 14 (DLT_RAW on OpenBSD), 101
    /// (LINKTYPE_RAW), 228 (IPv4 only) and 229 (IPv6 only) are all raw IP.
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        match dlt {
            0 => Some(LinkType::Null),
            1 => Some(LinkType::Ethernet),
            12 | 14 | 101 | 228 | 229 => Some(LinkType::RawIp),
            108 => Some(LinkType::Loop),
            113 => Some(LinkType::LinuxSll),
            276 => Some(LinkType::LinuxSll2),
            _ => None,
        }
    }

    /// The LINKTYPE value to write in a pcap file header (raw IP is LINKTYPE_RAW, 101).
    pub fn dlt(self) -> i32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::RawIp => 101,
            LinkType::Loop => 108,
            LinkType::LinuxSll => 113,
            LinkType::LinuxSll2 => 276,
        }
    }
}

/// The most VLAN tags an Ethernet header may carry here: one 802.1Q tag, or an 802.1ad
/// (QinQ) outer tag and an inner one.
pub const MAX_VLAN_TAGS: usize = 2;

/// One 802.1Q/802.1ad tag as it sits on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VlanTag {
    /// 0x8100 (802.1Q), 0x88a8 (802.1ad) or 0x9100 (pre-standard QinQ).
    pub tpid: u16,
    /// Priority, drop-eligible bit and VLAN id.
    pub tci: u16,
}

/// An Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetHeader {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    /// Tags outermost first; unused slots are `None` and follow the used ones.
    pub vlan_tags: [Option<VlanTag>; MAX_VLAN_TAGS],
    /// The ethertype after the tags: IPv4 or IPv6.
    pub ethertype: u16,
}

/// A Linux cooked capture v1 header (16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SllHeader {
    /// 0 to us, 1 broadcast, 2 multicast, 3 to someone else, 4 sent by us.
    pub packet_type: u16,
    /// The ARPHRD_ device type.
    pub arphrd: u16,
    /// The link-layer address length field, as captured (may exceed 8).
    pub addr_len: u16,
    /// The first 8 bytes of the link-layer address, zero-padded.
    pub addr: [u8; 8],
    /// The ethertype: IPv4 or IPv6.
    pub protocol: u16,
}

/// A Linux cooked capture v2 header (20 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sll2Header {
    /// The ethertype: IPv4 or IPv6.
    pub protocol: u16,
    /// Reserved, kept to re-emit the frame exactly.
    pub reserved: u16,
    pub interface_index: u32,
    pub arphrd: u16,
    pub packet_type: u8,
    pub addr_len: u8,
    pub addr: [u8; 8],
}

/// A BSD loopback header: the address family and the byte order it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoopbackHeader {
    /// AF_INET (2) or one of the AF_INET6 values (10 Linux, 24 NetBSD/OpenBSD,
    /// 28 FreeBSD, 30 Darwin).
    pub family: u32,
    pub big_endian: bool,
}

/// A parsed link-layer header, holding everything needed to write it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkHeader {
    Ethernet(EthernetHeader),
    LinuxSll(SllHeader),
    LinuxSll2(Sll2Header),
    RawIp,
    Null(LoopbackHeader),
    Loop(LoopbackHeader),
}

const ETHERNET_HEADER_LEN: usize = 14;
const VLAN_TAG_LEN: usize = 4;
const SLL_HEADER_LEN: usize = 16;
const SLL2_HEADER_LEN: usize = 20;
const LOOPBACK_HEADER_LEN: usize = 4;

const TPID_8021Q: u16 = 0x8100;
const TPID_8021AD: u16 = 0x88a8;
const TPID_QINQ_LEGACY: u16 = 0x9100;

const AF_INET: u32 = 2;
const AF_INET6_VALUES: [u32; 4] = [10, 24, 28, 30];

impl LinkHeader {
    /// Splits a captured frame into its link header and the network-layer bytes.
    ///
    /// The network layer must be announced as IPv4 or IPv6 (raw IP is not checked here);
    /// anything else is [`PacketError::Unsupported`].
    pub fn parse(link: LinkType, frame: &[u8]) -> Result<(LinkHeader, &[u8])> {
        let (header, header_len) = match link {
            LinkType::Ethernet => parse_ethernet(frame)?,
            LinkType::LinuxSll => parse_sll(frame)?,
            LinkType::LinuxSll2 => parse_sll2(frame)?,
            LinkType::RawIp => (LinkHeader::RawIp, 0),
            LinkType::Null => (
                LinkHeader::Null(parse_loopback(frame, false)?),
                LOOPBACK_HEADER_LEN,
            ),
            LinkType::Loop => (
                LinkHeader::Loop(parse_loopback(frame, true)?),
                LOOPBACK_HEADER_LEN,
            ),
        };
        if let Some(protocol) = header.protocol() {
            protocol.ensure_ip()?;
        }
        Ok((header, frame.get(header_len..).unwrap_or_default()))
    }

    /// The link type this header belongs to.
    pub fn link_type(&self) -> LinkType {
        match self {
            LinkHeader::Ethernet(_) => LinkType::Ethernet,
            LinkHeader::LinuxSll(_) => LinkType::LinuxSll,
            LinkHeader::LinuxSll2(_) => LinkType::LinuxSll2,
            LinkHeader::RawIp => LinkType::RawIp,
            LinkHeader::Null(_) => LinkType::Null,
            LinkHeader::Loop(_) => LinkType::Loop,
        }
    }

    /// The IP version the header announces; `None` for raw IP, where the packet says.
    pub fn ip_version(&self) -> Option<IpVersion> {
        self.protocol()?.ip_version()
    }

    /// Appends the header bytes exactly as they were parsed.
    pub fn emit(&self, out: &mut Vec<u8>) {
        match self {
            LinkHeader::Ethernet(eth) => {
                out.extend_from_slice(&eth.dst);
                out.extend_from_slice(&eth.src);
                for tag in eth.vlan_tags.iter().flatten() {
                    out.extend_from_slice(&tag.tpid.to_be_bytes());
                    out.extend_from_slice(&tag.tci.to_be_bytes());
                }
                out.extend_from_slice(&eth.ethertype.to_be_bytes());
            }
            LinkHeader::LinuxSll(sll) => {
                out.extend_from_slice(&sll.packet_type.to_be_bytes());
                out.extend_from_slice(&sll.arphrd.to_be_bytes());
                out.extend_from_slice(&sll.addr_len.to_be_bytes());
                out.extend_from_slice(&sll.addr);
                out.extend_from_slice(&sll.protocol.to_be_bytes());
            }
            LinkHeader::LinuxSll2(sll) => {
                out.extend_from_slice(&sll.protocol.to_be_bytes());
                out.extend_from_slice(&sll.reserved.to_be_bytes());
                out.extend_from_slice(&sll.interface_index.to_be_bytes());
                out.extend_from_slice(&sll.arphrd.to_be_bytes());
                out.extend_from_slice(&[sll.packet_type, sll.addr_len]);
                out.extend_from_slice(&sll.addr);
            }
            LinkHeader::RawIp => {}
            LinkHeader::Null(lo) | LinkHeader::Loop(lo) => {
                let bytes = if lo.big_endian {
                    lo.family.to_be_bytes()
                } else {
                    lo.family.to_le_bytes()
                };
                out.extend_from_slice(&bytes);
            }
        }
    }

    /// What the header says the network layer is, if it says anything.
    fn protocol(&self) -> Option<Protocol> {
        match self {
            LinkHeader::Ethernet(eth) => Some(Protocol::Ethertype(eth.ethertype)),
            LinkHeader::LinuxSll(sll) => Some(Protocol::Ethertype(sll.protocol)),
            LinkHeader::LinuxSll2(sll) => Some(Protocol::Ethertype(sll.protocol)),
            LinkHeader::RawIp => None,
            LinkHeader::Null(lo) | LinkHeader::Loop(lo) => Some(Protocol::AddressFamily(lo.family)),
        }
    }
}

/// The two ways link headers name the network layer.
#[derive(Clone, Copy)]
enum Protocol {
    Ethertype(u16),
    AddressFamily(u32),
}

impl Protocol {
    /// The IP version this protocol value names, if any.
    fn ip_version(self) -> Option<IpVersion> {
        match self {
            Protocol::Ethertype(ethertype) => IpVersion::from_ethertype(ethertype),
            Protocol::AddressFamily(AF_INET) => Some(IpVersion::V4),
            Protocol::AddressFamily(family) if AF_INET6_VALUES.contains(&family) => {
                Some(IpVersion::V6)
            }
            Protocol::AddressFamily(_) => None,
        }
    }

    /// Fails with [`PacketError::Unsupported`] unless the value names IPv4 or IPv6.
    fn ensure_ip(self) -> Result<()> {
        if self.ip_version().is_some() {
            return Ok(());
        }
        let (what, value) = match self {
            Protocol::Ethertype(ethertype) => ("ethertype", u32::from(ethertype)),
            Protocol::AddressFamily(family) => ("address family", family),
        };
        Err(PacketError::Unsupported {
            layer: Layer::Link,
            what,
            value,
        })
    }
}

fn is_vlan_tpid(ethertype: u16) -> bool {
    matches!(ethertype, TPID_8021Q | TPID_8021AD | TPID_QINQ_LEGACY)
}

fn parse_ethernet(frame: &[u8]) -> Result<(LinkHeader, usize)> {
    ensure_len(Layer::Link, ETHERNET_HEADER_LEN, frame.len())?;
    let mut vlan_tags = [None; MAX_VLAN_TAGS];
    let mut type_at = ETHERNET_HEADER_LEN - 2;
    let mut ethertype = read_u16(frame, type_at);
    let mut depth = 0;
    while is_vlan_tpid(ethertype) {
        let slot = vlan_tags.get_mut(depth).ok_or(PacketError::Unsupported {
            layer: Layer::Link,
            what: "vlan tag depth",
            value: depth as u32 + 1,
        })?;
        ensure_len(Layer::Link, type_at + VLAN_TAG_LEN + 2, frame.len())?;
        *slot = Some(VlanTag {
            tpid: ethertype,
            tci: read_u16(frame, type_at + 2),
        });
        depth += 1;
        type_at += VLAN_TAG_LEN;
        ethertype = read_u16(frame, type_at);
    }
    let header = EthernetHeader {
        dst: read_array(frame, 0),
        src: read_array(frame, 6),
        vlan_tags,
        ethertype,
    };
    Ok((LinkHeader::Ethernet(header), type_at + 2))
}

fn parse_sll(frame: &[u8]) -> Result<(LinkHeader, usize)> {
    ensure_len(Layer::Link, SLL_HEADER_LEN, frame.len())?;
    let header = SllHeader {
        packet_type: read_u16(frame, 0),
        arphrd: read_u16(frame, 2),
        addr_len: read_u16(frame, 4),
        addr: read_array(frame, 6),
        protocol: read_u16(frame, 14),
    };
    Ok((LinkHeader::LinuxSll(header), SLL_HEADER_LEN))
}

fn parse_sll2(frame: &[u8]) -> Result<(LinkHeader, usize)> {
    ensure_len(Layer::Link, SLL2_HEADER_LEN, frame.len())?;
    let header = Sll2Header {
        protocol: read_u16(frame, 0),
        reserved: read_u16(frame, 2),
        interface_index: read_u32(frame, 4),
        arphrd: read_u16(frame, 8),
        packet_type: frame[10],
        addr_len: frame[11],
        addr: read_array(frame, 12),
    };
    Ok((LinkHeader::LinuxSll2(header), SLL2_HEADER_LEN))
}

/// Reads the 4-byte family. DLT_LOOP is big-endian; DLT_NULL is in the capturing host's
/// order, so a value whose low 16 bits are zero is taken as written by a big-endian host
/// (every family number fits in 16 bits).
fn parse_loopback(frame: &[u8], big_endian: bool) -> Result<LoopbackHeader> {
    ensure_len(Layer::Link, LOOPBACK_HEADER_LEN, frame.len())?;
    let bytes: [u8; 4] = read_array(frame, 0);
    let header = if big_endian || u32::from_le_bytes(bytes) > 0xffff {
        LoopbackHeader {
            family: u32::from_be_bytes(bytes),
            big_endian: true,
        }
    } else {
        LoopbackHeader {
            family: u32::from_le_bytes(bytes),
            big_endian: false,
        }
    };
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [LinkType; 6] = [
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::RawIp,
        LinkType::Null,
        LinkType::Loop,
    ];

    #[test]
    fn dlt_values_round_trip() {
        for link in ALL {
            assert_eq!(LinkType::from_dlt(link.dlt()), Some(link));
        }
        for raw in [12, 14, 101, 228, 229] {
            assert_eq!(LinkType::from_dlt(raw), Some(LinkType::RawIp));
        }
        assert_eq!(LinkType::from_dlt(105), None);
    }

    #[test]
    fn three_vlan_tags_are_unsupported() {
        let mut frame = vec![0; 12];
        for _ in 0..3 {
            frame.extend_from_slice(&[0x81, 0x00, 0x00, 0x01]);
        }
        frame.extend_from_slice(&[0x08, 0x00]);
        assert_eq!(
            LinkHeader::parse(LinkType::Ethernet, &frame).unwrap_err(),
            PacketError::Unsupported {
                layer: Layer::Link,
                what: "vlan tag depth",
                value: 3
            }
        );
    }

    #[test]
    fn truncated_vlan_tag_reports_counts() {
        let frame = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x81, 0x00, 0x00, 0x01];
        assert_eq!(
            LinkHeader::parse(LinkType::Ethernet, &frame).unwrap_err(),
            PacketError::Truncated {
                layer: Layer::Link,
                needed: 18,
                got: 16
            }
        );
    }

    #[test]
    fn loopback_families() {
        let (header, rest) = LinkHeader::parse(LinkType::Null, &[0x1c, 0, 0, 0, 0x60]).unwrap();
        assert_eq!(header.ip_version(), Some(IpVersion::V6));
        assert_eq!(rest, [0x60]);
        assert_eq!(
            LinkHeader::parse(LinkType::Loop, &[0, 0, 0, 7]).unwrap_err(),
            PacketError::Unsupported {
                layer: Layer::Link,
                what: "address family",
                value: 7
            }
        );
    }

    #[test]
    fn raw_ip_announces_no_version() {
        let (header, rest) = LinkHeader::parse(LinkType::RawIp, &[0x45]).unwrap();
        assert_eq!(header, LinkHeader::RawIp);
        assert_eq!(header.ip_version(), None);
        assert_eq!(rest, [0x45]);
    }
}
