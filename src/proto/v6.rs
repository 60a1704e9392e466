//! Version 6: the byte layouts TCPCopy 1.x and intercept 1.0 speak.
//!
//! Owns the 14-byte record copy sends (hello and registrations) and the reply message
//! intercept sends inside combined frames (`u16 count`, then `count` messages of 64 bytes, or
//! 192 with 1.x's payload build option). Stream state lives in the stream decoders; this file
//! only turns single records and messages into values and back.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use super::headers::{HeaderBuf, fit_tcp_header};
use super::negotiation::SWITCH_MARKER;
use super::wire::Reader;
use super::{ProtoError, RegKind, Registration, ReplyHeaders};
use crate::packet::{self, HeaderSplit, IpVersion, Ipv4Packet, TcpPacket};

/// Length of a copy → intercept record.
pub(crate) const RECORD_LEN: usize = 14;
/// Length of the `u16 count` that opens a combined frame.
pub(crate) const COUNT_LEN: usize = 2;
/// The largest count our decoder accepts: four times 1.x's compile-time limit of 16, so a
/// rebuilt intercept still works while a stray byte pair is caught as a framing error.
pub(crate) const MAX_DECODE_COUNT: u16 = 64;

const RECORD_ADD: u16 = 1;
const RECORD_DEL: u16 = 2;
/// The IPv4 header area of a message.
const IP_AREA_LEN: usize = 20;
/// The header area of a message: 20 bytes of IPv4 header, then 44 of TCP header.
const HEADER_AREA_LEN: usize = 64;
/// Room for the TCP header: its 20 fixed bytes and 24 of options.
pub(crate) const TCP_AREA_LEN: usize = HEADER_AREA_LEN - IP_AREA_LEN;
/// The payload area of the payload build option.
const PAYLOAD_AREA_LEN: usize = 128;

/// How a version-6 intercept lays out each reply message; a 1.x build option, never
/// negotiated, so both ends must be configured alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum V6Layout {
    /// 64 bytes: IPv4 header, then TCP header zero-padded to 44 bytes (the default build).
    #[default]
    Headers,
    /// 192 bytes: the 64 above, then 128 bytes holding the whole payload when it is at most
    /// 128 bytes long, zeros otherwise (1.x built with its payload option).
    HeadersAndPayload,
}

impl V6Layout {
    /// Bytes per message.
    pub fn message_len(self) -> usize {
        match self {
            V6Layout::Headers => HEADER_AREA_LEN,
            V6Layout::HeadersAndPayload => HEADER_AREA_LEN + PAYLOAD_AREA_LEN,
        }
    }

    /// The most messages 1.x puts in one combined frame, and so the most we send.
    pub fn max_batch(self) -> u16 {
        match self {
            V6Layout::Headers => 16,
            V6Layout::HeadersAndPayload => 6,
        }
    }
}

/// A decoded copy → intercept record, not yet interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) client: SocketAddrV4,
    pub(crate) record_type: u16,
    pub(crate) target: SocketAddrV4,
}

impl Record {
    /// Reads a record from exactly [`RECORD_LEN`] bytes.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, ProtoError> {
        let mut reader = Reader::new(bytes, "v6 record");
        let client_ip = Ipv4Addr::from(reader.u32()?);
        let client_port = reader.u16()?;
        let record_type = reader.u16()?;
        let target_ip = Ipv4Addr::from(reader.u32()?);
        let target_port = reader.u16()?;
        Ok(Record {
            client: SocketAddrV4::new(client_ip, client_port),
            record_type,
            target: SocketAddrV4::new(target_ip, target_port),
        })
    }

    /// A hello: both addresses zero, the type naming a version.
    pub(crate) fn hello(version: u16) -> Self {
        let unspecified = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
        Record {
            client: unspecified,
            record_type: version,
            target: unspecified,
        }
    }

    /// The version a hello offers; an error for a record that is no hello (TCPCopy 1.x's has
    /// both addresses zero and type 6, ours type 7).
    pub(crate) fn hello_version(&self) -> Result<u16, ProtoError> {
        let unspecified = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
        if self.client != unspecified || self.target != unspecified || self.record_type < 6 {
            return Err(ProtoError::BadHello {
                record_type: self.record_type,
            });
        }
        Ok(self.record_type)
    }

    /// Appends the 14 bytes of the record.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.client.ip().octets());
        out.extend_from_slice(&self.client.port().to_be_bytes());
        out.extend_from_slice(&self.record_type.to_be_bytes());
        out.extend_from_slice(&self.target.ip().octets());
        out.extend_from_slice(&self.target.port().to_be_bytes());
    }

    /// The registration this record carries.
    pub(crate) fn registration(&self) -> Result<Registration, ProtoError> {
        let kind = match self.record_type {
            RECORD_ADD => RegKind::Add,
            RECORD_DEL => RegKind::Del,
            record_type => return Err(ProtoError::UnknownRecordType { record_type }),
        };
        Ok(Registration {
            kind,
            client: SocketAddr::V4(self.client),
            target: SocketAddr::V4(self.target),
        })
    }
}

/// Appends the record of an IPv4 registration.
pub(crate) fn encode_registration(
    registration: &Registration,
    out: &mut Vec<u8>,
) -> Result<(), ProtoError> {
    let (SocketAddr::V4(client), SocketAddr::V4(target)) =
        (registration.client, registration.target)
    else {
        return Err(ProtoError::Ipv6NotInVersion6);
    };
    if client.ip().octets()[..2] == SWITCH_MARKER.to_be_bytes() {
        // Reserved addresses no client has; a record starting with them would read as the
        // switch to version 7 (see the negotiation module).
        return Err(ProtoError::ReadsAsVersionSwitch);
    }
    let record_type = match registration.kind {
        RegKind::Add => RECORD_ADD,
        RegKind::Del => RECORD_DEL,
    };
    Record {
        client,
        record_type,
        target,
    }
    .encode(out);
    Ok(())
}

/// Appends one message for the captured IPv4 reply `split`: IP options dropped, TCP options
/// cut to fit 44 bytes, zero padding, and the payload area when `layout` has one. Fails,
/// leaving `out` untouched, for an IPv6 reply.
pub(crate) fn encode_message(
    split: &HeaderSplit<'_>,
    layout: V6Layout,
    out: &mut Vec<u8>,
) -> Result<(), ProtoError> {
    if split.version != IpVersion::V4 {
        return Err(ProtoError::Ipv6NotInVersion6);
    }
    let headers = HeaderBuf::normalize(split, TCP_AREA_LEN);
    let start = out.len();
    out.extend_from_slice(headers.as_bytes());
    out.resize(start + HEADER_AREA_LEN, 0);
    if layout == V6Layout::HeadersAndPayload {
        // 1.x copies the payload only when the whole of it fits the area.
        if split.payload_len <= PAYLOAD_AREA_LEN {
            out.extend_from_slice(split.payload);
        }
        out.resize(start + layout.message_len(), 0);
    }
    Ok(())
}

/// Reads one message of `layout.message_len()` bytes.
pub(crate) fn decode_message(message: &[u8], layout: V6Layout) -> Result<ReplyHeaders, ProtoError> {
    let mut reader = Reader::new(message, "v6 reply message");
    let mut area = [0u8; HEADER_AREA_LEN];
    area.copy_from_slice(reader.take(HEADER_AREA_LEN)?);
    if IpVersion::sniff(&area)? != IpVersion::V4 {
        return Err(ProtoError::Ipv6NotInVersion6);
    }
    undo_1x_copy_limits(&mut area);
    let split = packet::split_ip_headers(&area)?;
    let headers = HeaderBuf::normalize(&split, TCP_AREA_LEN);
    let prefix = match layout {
        V6Layout::HeadersAndPayload if split.payload_len <= PAYLOAD_AREA_LEN => {
            reader.take(split.payload_len)?.to_vec()
        }
        _ => Vec::new(),
    };
    Ok(ReplyHeaders::new(headers, None, prefix))
}

/// 1.x copies the first 20 bytes of the IPv4 header even when its IHL counts options, and
/// the first 44 bytes of the TCP header: makes such a message area what we would have sent
/// (IHL 5, TCP options cut at an option boundary, IP length and checksum lowered to match),
/// so the packet model reads it like any other. An area without either is left alone.
fn undo_1x_copy_limits(area: &mut [u8; HEADER_AREA_LEN]) {
    let (ip, tcp) = area.split_at_mut(IP_AREA_LEN);
    let mut header = Ipv4Packet::new_unchecked(ip);
    let ip_options = header.header_len().saturating_sub(IP_AREA_LEN);
    let tcp_declared = TcpPacket::new_unchecked(&*tcp).header_len();
    let mut fitted = [0u8; TCP_AREA_LEN];
    let tcp_cut = if tcp_declared > TCP_AREA_LEN {
        tcp_declared - fit_tcp_header(tcp, tcp_declared, TCP_AREA_LEN, &mut fitted)
    } else {
        0
    };
    if ip_options == 0 && tcp_cut == 0 {
        return;
    }
    if tcp_cut > 0 {
        tcp.copy_from_slice(&fitted);
    }
    header.set_header_len(IP_AREA_LEN);
    let lowered = header.total_len().saturating_sub(ip_options + tcp_cut);
    header.set_total_len(lowered as u16);
    header.fill_checksum();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::fixtures::{
        CLIENT_ADD, SYN_ACK, client, combined_syn_ack, target, tcp_packet,
    };

    fn split(packet: &[u8]) -> HeaderSplit<'_> {
        packet::split_ip_headers(packet).unwrap()
    }

    #[test]
    fn registrations_encode_as_14_byte_records() {
        let mut out = Vec::new();
        encode_registration(&Registration::add(client(), target()), &mut out).unwrap();
        assert_eq!(out, CLIENT_ADD);
        out.clear();
        encode_registration(&Registration::del(client(), target()), &mut out).unwrap();
        assert_eq!(&out[6..8], &[0, 2]);
        assert_eq!(
            Record::decode(&out).unwrap().registration(),
            Ok(Registration::del(client(), target()))
        );
    }

    #[test]
    fn ipv6_registrations_do_not_fit_and_leave_out_untouched() {
        let mut out = vec![7];
        let v6_client = "[2001:db8::1]:1000".parse().unwrap();
        assert_eq!(
            encode_registration(&Registration::add(v6_client, target()), &mut out),
            Err(ProtoError::Ipv6NotInVersion6)
        );
        assert_eq!(out, [7]);
    }

    /// Found by `copy_streams_decode_alike_in_any_chunking`: such a record, sent before the
    /// switch, was read as a switch marker with a bad magic.
    #[test]
    fn a_client_that_would_read_as_the_version_switch_is_not_encoded() {
        let mut out = vec![7];
        let reserved = "255.255.0.1:1000".parse().unwrap();
        assert_eq!(
            encode_registration(&Registration::add(reserved, target()), &mut out),
            Err(ProtoError::ReadsAsVersionSwitch)
        );
        assert_eq!(out, [7]);
    }

    #[test]
    fn an_unknown_record_type_is_an_error() {
        let mut bytes = CLIENT_ADD;
        bytes[7] = 9;
        assert_eq!(
            Record::decode(&bytes).unwrap().registration(),
            Err(ProtoError::UnknownRecordType { record_type: 9 })
        );
        assert_eq!(
            Record::decode(&bytes[..13]).err(),
            Some(ProtoError::Truncated {
                what: "v6 record",
                needed: 14,
                had: 13
            })
        );
    }

    #[test]
    fn the_syn_ack_message_is_headers_then_padding() {
        let mut out = Vec::new();
        encode_message(&split(&SYN_ACK), V6Layout::Headers, &mut out).unwrap();
        assert_eq!(out, combined_syn_ack()[2..]);
        let reply = decode_message(&out, V6Layout::Headers).unwrap();
        assert_eq!(reply.headers(), &SYN_ACK[..]);
        assert_eq!(reply.timestamp_us(), None);
        assert!(reply.payload_prefix().is_empty());
    }

    #[test]
    fn the_payload_layout_carries_payloads_of_at_most_128_bytes() {
        let short = tcp_packet(target(), client(), &[], b"HTTP/1.1 200 OK\r\n");
        let mut out = Vec::new();
        encode_message(&split(&short), V6Layout::HeadersAndPayload, &mut out).unwrap();
        assert_eq!(out.len(), 192);
        assert_eq!(&out[64..81], b"HTTP/1.1 200 OK\r\n");
        let reply = decode_message(&out, V6Layout::HeadersAndPayload).unwrap();
        assert_eq!(reply.payload_prefix(), b"HTTP/1.1 200 OK\r\n");

        let long = tcp_packet(target(), client(), &[], &[b'x'; 129]);
        out.clear();
        encode_message(&split(&long), V6Layout::HeadersAndPayload, &mut out).unwrap();
        assert_eq!(&out[64..], &[0; 128][..]);
        let reply = decode_message(&out, V6Layout::HeadersAndPayload).unwrap();
        assert_eq!(
            (reply.payload_len(), reply.payload_prefix()),
            (129, &[][..])
        );
    }

    #[test]
    fn ipv6_replies_do_not_fit() {
        let packet = tcp_packet(
            "[::1]:80".parse().unwrap(),
            "[::2]:9".parse().unwrap(),
            &[],
            &[],
        );
        let mut out = Vec::new();
        assert_eq!(
            encode_message(&split(&packet), V6Layout::Headers, &mut out),
            Err(ProtoError::Ipv6NotInVersion6)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn messages_from_1x_with_uncopied_options_are_normalized() {
        // 1.x copies 20 bytes of IPv4 header even when the IHL counts options, and only
        // the first 44 bytes of a 60-byte TCP header.
        let mut message = SYN_ACK[..20].to_vec();
        message[0] = 0x46;
        message[2..4].copy_from_slice(&(24u16 + 60 + 5).to_be_bytes());
        let mut tcp = SYN_ACK[20..40].to_vec();
        tcp[12] = 0xf0 | (tcp[12] & 0x0f);
        tcp.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        tcp.extend_from_slice(&[5, 26]);
        tcp.extend_from_slice(&[0; 10]);
        message.extend_from_slice(&tcp);
        assert_eq!(message.len(), 64);

        let reply = decode_message(&message, V6Layout::Headers).unwrap();
        assert_eq!(reply.ip_header()[0], 0x45);
        assert_eq!(reply.tcp_header().len(), 32);
        assert_eq!(
            &reply.tcp_header()[20..],
            &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]
        );
        assert_eq!(reply.payload_len(), 5);
        assert_eq!(reply.source(), target());
    }

    #[test]
    fn a_message_that_is_not_ipv4_is_rejected() {
        let mut message = combined_syn_ack()[2..].to_vec();
        message[0] = 0x65;
        assert_eq!(
            decode_message(&message, V6Layout::Headers).err(),
            Some(ProtoError::Ipv6NotInVersion6)
        );
    }
}
