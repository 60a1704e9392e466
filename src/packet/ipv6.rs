//! A zero-copy view of an IPv6 header and its payload (RFC 8200 §3), with a walk over the
//! common extension headers (RFC 8200 §4) to the upper-layer protocol.
//!
//! Owns the field layout, the length rules and the extension-header chain; decides nothing
//! about TCP and never allocates. Extension headers are skipped, never interpreted beyond
//! their length and, for a fragment header, whether the packet is whole.

use std::net::Ipv6Addr;

use super::bytes::{read_array, read_u16, read_u32, write_u16, write_u32};
use super::error::{Layer, PacketError, Result, ensure_len};

/// Byte offsets of the fixed header fields.
mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: usize = 8;
    pub const DST_ADDR: usize = 24;
}

/// The length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// The largest payload the 16-bit payload length can describe (jumbograms unsupported).
pub const MAX_PAYLOAD_LEN: usize = 0xffff;

/// Extension headers [`Ipv6Packet::upper_layer`] steps over (RFC 8200 §4.1).
mod next_header {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const DESTINATION_OPTIONS: u8 = 60;
}

/// The length of a fragment header (RFC 8200 §4.5).
const FRAGMENT_HEADER_LEN: usize = 8;

/// Where the upper-layer header starts, after any extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// The protocol number (6 for TCP).
    pub protocol: u8,
    /// Offset of its header from the start of the IPv6 header.
    pub offset: usize,
}

/// An IPv6 packet over a byte buffer.
///
/// Built by [`new_checked`](Self::new_checked) the getters cannot panic; the buffer may be
/// longer than the packet (Ethernet padding): [`payload`](Self::payload) stops at the
/// payload length.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps a buffer the caller sized itself; getters panic if it is too short.
    pub(crate) fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps a captured packet: the buffer must hold the fixed header and the whole
    /// payload, else [`PacketError::Truncated`] says how much was missing.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_checked_header(buffer)?;
        ensure_len(
            Layer::Ipv6,
            packet.total_len(),
            packet.buffer.as_ref().len(),
        )?;
        Ok(packet)
    }

    /// Wraps a header whose payload was not kept (reply headers): only the fixed header
    /// must be present.
    pub fn new_checked_header(buffer: T) -> Result<Self> {
        let packet = Ipv6Packet { buffer };
        ensure_len(Layer::Ipv6, HEADER_LEN, packet.data().len())?;
        if packet.version() != 6 {
            return Err(PacketError::Unsupported {
                layer: Layer::Ipv6,
                what: "ip version",
                value: u32::from(packet.version()),
            });
        }
        Ok(packet)
    }

    fn data(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn version(&self) -> u8 {
        self.data()[field::VER_TC_FLOW] >> 4
    }

    pub fn traffic_class(&self) -> u8 {
        (read_u32(self.data(), field::VER_TC_FLOW) >> 20) as u8
    }

    pub fn flow_label(&self) -> u32 {
        read_u32(self.data(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// Length of everything after the fixed header, extension headers included.
    pub fn payload_len(&self) -> usize {
        usize::from(read_u16(self.data(), field::PAYLOAD_LEN))
    }

    /// Fixed header plus payload, in bytes.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// The header following the fixed header: an extension header or the upper layer.
    pub fn next_header(&self) -> u8 {
        self.data()[field::NEXT_HEADER]
    }

    pub fn hop_limit(&self) -> u8 {
        self.data()[field::HOP_LIMIT]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read_array::<16>(self.data(), field::SRC_ADDR))
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read_array::<16>(self.data(), field::DST_ADDR))
    }

    /// The payload up to the payload length (Ethernet padding excluded), or to the end of
    /// the buffer for a header-only view.
    pub fn payload(&self) -> &[u8] {
        let end = self.total_len().min(self.data().len());
        &self.data()[HEADER_LEN..end]
    }

    /// Walks hop-by-hop, routing, destination-options and fragment headers to the upper
    /// layer.
    ///
    /// A fragment header is accepted only on an atomic fragment (offset 0, no more
    /// fragments, RFC 6946): any real fragment would hand TCP a partial segment, so it is
    /// [`PacketError::Unsupported`]. An extension header running past the payload length
    /// is malformed; one running past the captured bytes is truncated.
    pub fn upper_layer(&self) -> Result<UpperLayer> {
        let mut protocol = self.next_header();
        let mut offset = HEADER_LEN;
        loop {
            let header_len = match protocol {
                next_header::HOP_BY_HOP
                | next_header::ROUTING
                | next_header::DESTINATION_OPTIONS => {
                    self.ensure_extension(offset + 2)?;
                    (usize::from(self.data()[offset + 1]) + 1) * 8
                }
                next_header::FRAGMENT => {
                    self.ensure_extension(offset + FRAGMENT_HEADER_LEN)?;
                    let offset_and_more = read_u16(self.data(), offset + 2);
                    if offset_and_more & 0xfff9 != 0 {
                        return Err(PacketError::Unsupported {
                            layer: Layer::Ipv6,
                            what: "fragment offset and more-fragments field",
                            value: u32::from(offset_and_more),
                        });
                    }
                    FRAGMENT_HEADER_LEN
                }
                _ => return Ok(UpperLayer { protocol, offset }),
            };
            self.ensure_extension(offset + header_len)?;
            protocol = self.data()[offset];
            offset += header_len;
        }
    }

    /// Checks that an extension header ending at `end` lies inside the packet and the
    /// captured bytes.
    fn ensure_extension(&self, end: usize) -> Result<()> {
        if end > self.total_len() {
            return Err(PacketError::Malformed {
                layer: Layer::Ipv6,
                what: "extension header runs past the payload length",
            });
        }
        ensure_len(Layer::Ipv6, end, self.data().len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn data_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets version 6, the traffic class and the 20-bit flow label.
    pub fn set_version_class_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let word = (6 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        write_u32(self.data_mut(), field::VER_TC_FLOW, word);
    }

    pub fn set_payload_len(&mut self, len: u16) {
        write_u16(self.data_mut(), field::PAYLOAD_LEN, len);
    }

    pub fn set_next_header(&mut self, protocol: u8) {
        self.data_mut()[field::NEXT_HEADER] = protocol;
    }

    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.data_mut()[field::HOP_LIMIT] = hop_limit;
    }

    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.data_mut()[field::SRC_ADDR..field::SRC_ADDR + 16].copy_from_slice(&addr.octets());
    }

    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.data_mut()[field::DST_ADDR..field::DST_ADDR + 16].copy_from_slice(&addr.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 2001:db8::1 -> 2001:db8::2, flow 0x12345, hop limit 64, next header TCP, 4 bytes.
    const PACKET: [u8; 44] = [
        0x60, 0x01, 0x23, 0x45, 0x00, 0x04, 0x06, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0xde,
        0xad, 0xbe, 0xef,
    ];

    fn with_extensions(extensions: &[u8], first: u8) -> Vec<u8> {
        let mut bytes = PACKET.to_vec();
        bytes[6] = first;
        bytes.splice(40..40, extensions.iter().copied());
        let payload_len = (bytes.len() - HEADER_LEN) as u16;
        bytes[4..6].copy_from_slice(&payload_len.to_be_bytes());
        bytes
    }

    #[test]
    fn deconstruct() {
        let packet = Ipv6Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(packet.version(), 6);
        assert_eq!(packet.traffic_class(), 0);
        assert_eq!(packet.flow_label(), 0x12345);
        assert_eq!(packet.payload_len(), 4);
        assert_eq!(packet.hop_limit(), 64);
        assert_eq!(
            packet.src_addr(),
            "2001:db8::1".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            packet.dst_addr(),
            "2001:db8::2".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(packet.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(
            packet.upper_layer().unwrap(),
            UpperLayer {
                protocol: 6,
                offset: 40
            }
        );
    }

    #[test]
    fn construct() {
        let mut bytes = [0u8; 44];
        let mut packet = Ipv6Packet::new_unchecked(&mut bytes[..]);
        packet.set_version_class_flow(0, 0x12345);
        packet.set_payload_len(4);
        packet.set_next_header(6);
        packet.set_hop_limit(64);
        packet.set_src_addr("2001:db8::1".parse().unwrap());
        packet.set_dst_addr("2001:db8::2".parse().unwrap());
        bytes[40..].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(bytes, PACKET);
    }

    #[test]
    fn walks_extension_headers_to_tcp() {
        // Hop-by-hop (8 bytes) -> destination options (16 bytes) -> atomic fragment -> TCP.
        let mut extensions = vec![60, 0, 1, 4, 0, 0, 0, 0];
        extensions.extend_from_slice(&[44, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        extensions.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 1]);
        let bytes = with_extensions(&extensions, 0);
        let packet = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            packet.upper_layer().unwrap(),
            UpperLayer {
                protocol: 6,
                offset: 72
            }
        );
    }

    #[test]
    fn real_fragments_are_unsupported() {
        for offset_and_more in [0x0001u16, 0x0008] {
            let mut fragment = vec![6, 0, 0, 0, 0, 0, 0, 7];
            fragment[2..4].copy_from_slice(&offset_and_more.to_be_bytes());
            let bytes = with_extensions(&fragment, 44);
            let packet = Ipv6Packet::new_checked(&bytes[..]).unwrap();
            assert!(matches!(
                packet.upper_layer(),
                Err(PacketError::Unsupported {
                    layer: Layer::Ipv6,
                    ..
                })
            ));
        }
    }

    #[test]
    fn extension_past_payload_length_is_malformed() {
        // A routing header claiming 16 bytes inside an 8-byte payload.
        let mut bytes = with_extensions(&[6, 1, 0, 0, 0, 0, 0, 0], 43);
        bytes.truncate(48);
        bytes[4..6].copy_from_slice(&8u16.to_be_bytes());
        let packet = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        assert!(matches!(
            packet.upper_layer(),
            Err(PacketError::Malformed { .. })
        ));
    }

    #[test]
    fn short_capture_is_truncated_with_counts() {
        assert_eq!(
            Ipv6Packet::new_checked(&PACKET[..42]).unwrap_err(),
            PacketError::Truncated {
                layer: Layer::Ipv6,
                needed: 44,
                got: 42
            }
        );
        assert_eq!(
            Ipv6Packet::new_checked(&PACKET[..39]).unwrap_err(),
            PacketError::Truncated {
                layer: Layer::Ipv6,
                needed: 40,
                got: 39
            }
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            for packet in [Ipv6Packet::new_checked(&bytes[..]), Ipv6Packet::new_checked_header(&bytes[..])]
                .into_iter()
                .flatten()
            {
                if let Ok(upper) = packet.upper_layer() {
                    prop_assert!(upper.offset <= bytes.len());
                }
                prop_assert!(packet.payload().len() <= bytes.len());
            }
        }
    }
}
