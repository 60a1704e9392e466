//! A zero-copy view of a TCP header and its payload (RFC 9293 §3.1).
//!
//! Owns the field layout and the header-length rule; options are handed out as raw bytes
//! for [`TcpOptions::parse`](super::TcpOptions::parse). Knows nothing of the IP layer
//! beyond the pseudo-header addresses its checksum needs.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::bytes::{read_u16, read_u32, write_u16, write_u32};
use super::checksum;
use super::error::{Layer, PacketError, Result, ensure_len};
use super::{SeqNum, TcpFlags};

/// Byte offsets of the fixed header fields.
mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

/// The length of a header without options.
pub const HEADER_LEN: usize = 20;

/// A TCP segment over a byte buffer holding exactly the segment (header and payload):
/// the IP layer decides where it ends.
#[derive(Debug, Clone, Copy)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer the caller sized itself; getters panic if it is too short.
    pub(crate) fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps captured bytes: the header, options included, must be present and its data
    /// offset at least 5 words.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = TcpPacket { buffer };
        ensure_len(Layer::Tcp, HEADER_LEN, packet.data().len())?;
        let header_len = packet.header_len();
        if header_len < HEADER_LEN {
            return Err(PacketError::Malformed {
                layer: Layer::Tcp,
                what: "data offset below 5 words",
            });
        }
        ensure_len(Layer::Tcp, header_len, packet.data().len())?;
        Ok(packet)
    }

    fn data(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn src_port(&self) -> u16 {
        read_u16(self.data(), field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        read_u16(self.data(), field::DST_PORT)
    }

    pub fn seq_number(&self) -> SeqNum {
        SeqNum(read_u32(self.data(), field::SEQ))
    }

    pub fn ack_number(&self) -> SeqNum {
        SeqNum(read_u32(self.data(), field::ACK))
    }

    /// Header length in bytes, options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.data()[field::DATA_OFFSET] >> 4) * 4
    }

    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.data()[field::FLAGS])
    }

    /// The raw, unscaled window.
    pub fn window(&self) -> u16 {
        read_u16(self.data(), field::WINDOW)
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.data(), field::CHECKSUM)
    }

    pub fn urgent_pointer(&self) -> u16 {
        read_u16(self.data(), field::URGENT)
    }

    /// The option bytes between the fixed header and the payload.
    pub fn options(&self) -> &[u8] {
        &self.data()[HEADER_LEN..self.header_len()]
    }

    /// Everything after the header.
    pub fn payload(&self) -> &[u8] {
        &self.data()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    fn data_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.data_mut(), field::SRC_PORT, port);
    }

    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.data_mut(), field::DST_PORT, port);
    }

    pub fn set_seq_number(&mut self, seq: SeqNum) {
        write_u32(self.data_mut(), field::SEQ, seq.0);
    }

    pub fn set_ack_number(&mut self, ack: SeqNum) {
        write_u32(self.data_mut(), field::ACK, ack.0);
    }

    /// Sets the data offset from a header length in bytes (a multiple of 4, at most 60);
    /// the reserved bits are cleared.
    pub fn set_header_len(&mut self, len: usize) {
        self.data_mut()[field::DATA_OFFSET] = ((len / 4) as u8) << 4;
    }

    pub fn set_flags(&mut self, flags: TcpFlags) {
        self.data_mut()[field::FLAGS] = flags.0;
    }

    pub fn set_window(&mut self, window: u16) {
        write_u16(self.data_mut(), field::WINDOW, window);
    }

    pub fn set_urgent_pointer(&mut self, pointer: u16) {
        write_u16(self.data_mut(), field::URGENT, pointer);
    }

    /// Computes the checksum over the whole buffer with an IPv4 pseudo-header and stores it.
    pub fn fill_checksum_ipv4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        write_u16(self.data_mut(), field::CHECKSUM, 0);
        let sum = checksum::tcp_ipv4(src, dst, self.data());
        write_u16(self.data_mut(), field::CHECKSUM, sum);
    }

    /// Computes the checksum over the whole buffer with an IPv6 pseudo-header and stores it.
    pub fn fill_checksum_ipv6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        write_u16(self.data_mut(), field::CHECKSUM, 0);
        let sum = checksum::tcp_ipv6(src, dst, self.data());
        write_u16(self.data_mut(), field::CHECKSUM, sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 40000 -> 80, seq 0x01020304, ack 0x0a0b0c0d, PSH|ACK, window 502, one NOP-NOP-EOL
    /// option word, payload "hi".
    const SEGMENT: [u8; 26] = [
        0x9c, 0x40, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04, 0x0a, 0x0b, 0x0c, 0x0d, 0x60, 0x18, 0x01,
        0xf6, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, b'h', b'i',
    ];

    #[test]
    fn deconstruct() {
        let tcp = TcpPacket::new_checked(&SEGMENT[..]).unwrap();
        assert_eq!(tcp.src_port(), 40000);
        assert_eq!(tcp.dst_port(), 80);
        assert_eq!(tcp.seq_number(), SeqNum(0x0102_0304));
        assert_eq!(tcp.ack_number(), SeqNum(0x0a0b_0c0d));
        assert_eq!(tcp.header_len(), 24);
        assert_eq!(tcp.flags(), TcpFlags::PSH | TcpFlags::ACK);
        assert_eq!(tcp.window(), 502);
        assert_eq!(tcp.urgent_pointer(), 0);
        assert_eq!(tcp.options(), &[1, 1, 0, 0]);
        assert_eq!(tcp.payload(), b"hi");
    }

    #[test]
    fn construct() {
        let mut bytes = [0u8; 26];
        let mut tcp = TcpPacket::new_unchecked(&mut bytes[..]);
        tcp.set_src_port(40000);
        tcp.set_dst_port(80);
        tcp.set_seq_number(SeqNum(0x0102_0304));
        tcp.set_ack_number(SeqNum(0x0a0b_0c0d));
        tcp.set_header_len(24);
        tcp.set_flags(TcpFlags::PSH | TcpFlags::ACK);
        tcp.set_window(502);
        tcp.set_urgent_pointer(0);
        bytes[20..].copy_from_slice(&[1, 1, 0, 0, b'h', b'i']);
        assert_eq!(bytes, SEGMENT);

        let (src, dst) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
        TcpPacket::new_unchecked(&mut bytes[..]).fill_checksum_ipv4(src, dst);
        assert_eq!(checksum::tcp_ipv4(src, dst, &bytes), 0);
    }

    #[test]
    fn header_rules() {
        assert_eq!(
            TcpPacket::new_checked(&SEGMENT[..13]).unwrap_err(),
            PacketError::Truncated {
                layer: Layer::Tcp,
                needed: 20,
                got: 13
            }
        );
        assert_eq!(
            TcpPacket::new_checked(&SEGMENT[..22]).unwrap_err(),
            PacketError::Truncated {
                layer: Layer::Tcp,
                needed: 24,
                got: 22
            }
        );
        let mut offset4 = SEGMENT;
        offset4[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&offset4[..]).unwrap_err(),
            PacketError::Malformed {
                layer: Layer::Tcp,
                what: "data offset below 5 words"
            }
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(tcp) = TcpPacket::new_checked(&bytes[..]) {
                prop_assert_eq!(tcp.options().len() + tcp.payload().len() + HEADER_LEN, bytes.len());
            }
        }
    }
}
