//! A zero-copy view of an IPv4 header and its payload (RFC 791 §3.1).
//!
//! Owns the field layout and the length rules; decides nothing about TCP and never
//! allocates. Options are skipped over (kept in [`Ipv4Packet::header`]), never interpreted.

use std::net::Ipv4Addr;

use super::bytes::{read_array, read_u16, write_u16};
use super::checksum;
use super::error::{Layer, PacketError, Result, ensure_len};

/// Byte offsets of the fixed header fields.
mod field {
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG_OFFSET: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: usize = 12;
    pub const DST_ADDR: usize = 16;
}

/// The length of a header without options.
pub const HEADER_LEN: usize = 20;
/// The largest packet the 16-bit total length can describe.
pub const MAX_PACKET_LEN: usize = 0xffff;

const FLAG_DONT_FRAGMENT: u16 = 0x4000;
const FLAG_MORE_FRAGMENTS: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// An IPv4 packet over a byte buffer.
///
/// Built by [`new_checked`](Self::new_checked) the getters cannot panic; the buffer may be
/// longer than the packet (Ethernet padding): [`payload`](Self::payload) stops at the
/// total length.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer the caller sized itself; getters panic if it is too short.
    pub(crate) fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps a captured packet: the header must be valid and the buffer must hold the whole
    /// packet (total length), else [`PacketError::Truncated`] says how much was missing.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_checked_header(buffer)?;
        ensure_len(
            Layer::Ipv4,
            packet.total_len(),
            packet.buffer.as_ref().len(),
        )?;
        Ok(packet)
    }

    /// Wraps a header whose payload was not kept (reply headers): the header must be valid
    /// and present, the payload may be missing. [`payload`](Self::payload) then returns
    /// whatever of it the buffer holds.
    pub fn new_checked_header(buffer: T) -> Result<Self> {
        let packet = Ipv4Packet { buffer };
        let data = packet.buffer.as_ref();
        ensure_len(Layer::Ipv4, HEADER_LEN, data.len())?;
        if packet.version() != 4 {
            return Err(PacketError::Unsupported {
                layer: Layer::Ipv4,
                what: "ip version",
                value: u32::from(packet.version()),
            });
        }
        let header_len = packet.header_len();
        if header_len < HEADER_LEN {
            return Err(PacketError::Malformed {
                layer: Layer::Ipv4,
                what: "header length below 20 bytes",
            });
        }
        ensure_len(Layer::Ipv4, header_len, data.len())?;
        if packet.total_len() < header_len {
            return Err(PacketError::Malformed {
                layer: Layer::Ipv4,
                what: "total length shorter than the header",
            });
        }
        Ok(packet)
    }

    fn data(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn version(&self) -> u8 {
        self.data()[field::VER_IHL] >> 4
    }

    /// Header length in bytes, options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.data()[field::VER_IHL] & 0x0f) * 4
    }

    /// DSCP and ECN, the former type-of-service byte.
    pub fn dscp_ecn(&self) -> u8 {
        self.data()[field::DSCP_ECN]
    }

    /// Header plus payload, in bytes.
    pub fn total_len(&self) -> usize {
        usize::from(read_u16(self.data(), field::TOTAL_LEN))
    }

    pub fn ident(&self) -> u16 {
        read_u16(self.data(), field::IDENT)
    }

    pub fn dont_fragment(&self) -> bool {
        read_u16(self.data(), field::FLAGS_FRAG_OFFSET) & FLAG_DONT_FRAGMENT != 0
    }

    pub fn more_fragments(&self) -> bool {
        read_u16(self.data(), field::FLAGS_FRAG_OFFSET) & FLAG_MORE_FRAGMENTS != 0
    }

    /// Fragment offset in 8-byte units.
    pub fn frag_offset(&self) -> u16 {
        read_u16(self.data(), field::FLAGS_FRAG_OFFSET) & FRAG_OFFSET_MASK
    }

    /// True when this packet is a piece of a larger one (RFC 791 §2.3).
    pub fn is_fragment(&self) -> bool {
        self.more_fragments() || self.frag_offset() != 0
    }

    pub fn ttl(&self) -> u8 {
        self.data()[field::TTL]
    }

    /// The payload's protocol number (6 for TCP).
    pub fn protocol(&self) -> u8 {
        self.data()[field::PROTOCOL]
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.data(), field::CHECKSUM)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_array::<4>(self.data(), field::SRC_ADDR))
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_array::<4>(self.data(), field::DST_ADDR))
    }

    /// The header bytes, options included.
    pub fn header(&self) -> &[u8] {
        &self.data()[..self.header_len()]
    }

    /// The payload up to the total length (Ethernet padding excluded), or to the end of
    /// the buffer for a header-only view.
    pub fn payload(&self) -> &[u8] {
        let end = self.total_len().min(self.data().len());
        &self.data()[self.header_len()..end]
    }

    /// True when the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::internet(self.header()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn data_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets version 4 and the header length in bytes (a multiple of 4, at most 60).
    pub fn set_header_len(&mut self, len: usize) {
        self.data_mut()[field::VER_IHL] = 0x40 | ((len / 4) as u8 & 0x0f);
    }

    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.data_mut()[field::DSCP_ECN] = value;
    }

    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.data_mut(), field::TOTAL_LEN, len);
    }

    pub fn set_ident(&mut self, ident: u16) {
        write_u16(self.data_mut(), field::IDENT, ident);
    }

    /// Marks the packet whole (no more fragments, offset 0), with or without DF.
    pub fn set_unfragmented(&mut self, dont_fragment: bool) {
        let flags = if dont_fragment { FLAG_DONT_FRAGMENT } else { 0 };
        write_u16(self.data_mut(), field::FLAGS_FRAG_OFFSET, flags);
    }

    pub fn set_ttl(&mut self, ttl: u8) {
        self.data_mut()[field::TTL] = ttl;
    }

    pub fn set_protocol(&mut self, protocol: u8) {
        self.data_mut()[field::PROTOCOL] = protocol;
    }

    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.data_mut()[field::SRC_ADDR..field::SRC_ADDR + 4].copy_from_slice(&addr.octets());
    }

    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.data_mut()[field::DST_ADDR..field::DST_ADDR + 4].copy_from_slice(&addr.octets());
    }

    /// Computes the header checksum over the current header and stores it.
    pub fn fill_checksum(&mut self) {
        write_u16(self.data_mut(), field::CHECKSUM, 0);
        let sum = checksum::internet(self.header());
        write_u16(self.data_mut(), field::CHECKSUM, sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 192.0.2.1 -> 198.51.100.2, id 0x1234, DF, ttl 64, TCP, 4 payload bytes.
    const PACKET: [u8; 24] = [
        0x45, 0x00, 0x00, 0x18, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 0xc0, 0x00, 0x02,
        0x01, 0xc6, 0x33, 0x64, 0x02, 0xde, 0xad, 0xbe, 0xef,
    ];

    #[test]
    fn deconstruct() {
        let packet = Ipv4Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.total_len(), 24);
        assert_eq!(packet.ident(), 0x1234);
        assert!(packet.dont_fragment());
        assert!(!packet.is_fragment());
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.protocol(), 6);
        assert_eq!(packet.src_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(packet.dst_addr(), Ipv4Addr::new(198, 51, 100, 2));
        assert_eq!(packet.payload(), &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn construct() {
        let mut bytes = [0u8; 24];
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_header_len(20);
        packet.set_dscp_ecn(0);
        packet.set_total_len(24);
        packet.set_ident(0x1234);
        packet.set_unfragmented(true);
        packet.set_ttl(64);
        packet.set_protocol(6);
        packet.set_src_addr(Ipv4Addr::new(192, 0, 2, 1));
        packet.set_dst_addr(Ipv4Addr::new(198, 51, 100, 2));
        packet.fill_checksum();
        assert!(packet.verify_checksum());
        bytes[20..].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let mut expected = PACKET;
        expected[10..12].copy_from_slice(&bytes[10..12]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn padding_is_not_payload() {
        let mut padded = PACKET.to_vec();
        padded.extend_from_slice(&[0; 10]);
        let packet = Ipv4Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.payload(), &PACKET[20..]);
    }

    #[test]
    fn short_capture_is_truncated_with_counts() {
        assert_eq!(
            Ipv4Packet::new_checked(&PACKET[..22]).unwrap_err(),
            PacketError::Truncated {
                layer: Layer::Ipv4,
                needed: 24,
                got: 22
            }
        );
        assert_eq!(
            Ipv4Packet::new_checked(&PACKET[..13]).unwrap_err(),
            PacketError::Truncated {
                layer: Layer::Ipv4,
                needed: 20,
                got: 13
            }
        );
        let header_only = Ipv4Packet::new_checked_header(&PACKET[..20]).unwrap();
        assert_eq!(header_only.payload(), &[] as &[u8]);
    }

    #[test]
    fn bad_header_fields_are_rejected() {
        let mut ihl4 = PACKET;
        ihl4[0] = 0x44;
        assert!(matches!(
            Ipv4Packet::new_checked(&ihl4[..]),
            Err(PacketError::Malformed { .. })
        ));
        let mut short_total = PACKET;
        short_total[3] = 19;
        assert!(matches!(
            Ipv4Packet::new_checked(&short_total[..]),
            Err(PacketError::Malformed { .. })
        ));
        let mut v5 = PACKET;
        v5[0] = 0x55;
        assert_eq!(
            Ipv4Packet::new_checked(&v5[..]).unwrap_err(),
            PacketError::Unsupported {
                layer: Layer::Ipv4,
                what: "ip version",
                value: 5
            }
        );
        let mut options_missing = PACKET;
        options_missing[0] = 0x46;
        assert_eq!(
            Ipv4Packet::new_checked(&options_missing[..20]).unwrap_err(),
            PacketError::Truncated {
                layer: Layer::Ipv4,
                needed: 24,
                got: 20
            }
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            for packet in [Ipv4Packet::new_checked(&bytes[..]), Ipv4Packet::new_checked_header(&bytes[..])]
                .into_iter()
                .flatten()
            {
                prop_assert!(packet.payload().len() <= bytes.len());
                let _ = (packet.src_addr(), packet.dst_addr(), packet.verify_checksum());
            }
        }
    }
}
