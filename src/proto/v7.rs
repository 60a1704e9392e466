//! Version 7: our tagged, length-prefixed frames.
//!
//! Owns the frame envelope (`u16 type | u16 body length | body`) and the bodies of
//! registrations, replies, flow-taken and instance frames. Extensibility: a receiver skips
//! a frame whose type it does not know, and ignores body bytes after the fields it knows, so
//! later versions may add frame types and append fields without breaking us.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::headers::{HeaderBuf, TCP_MAX_HEADER_LEN};
use super::reply::payload_prefix;
use super::wire::{Reader, be_u16_at};
use super::{MAX_PAYLOAD_PREFIX, ProtoError, RegKind, Registration, ReplyHeaders};
use crate::packet::{Flow, HeaderSplit};

/// Length of the frame envelope: type and body length.
pub(crate) const FRAME_HEADER_LEN: usize = 4;
/// copy → intercept: add or remove a route.
pub(crate) const FRAME_REGISTRATION: u16 = 1;
/// intercept → copy: the headers of one reply.
pub(crate) const FRAME_REPLY: u16 = 2;
// Type 3 is reserved: an early draft's counters frame, never sent (a receiver skips it).
/// intercept → copy: a flow another copy process has registered; the sender's session on it
/// must move to another port (its SYN is indistinguishable from the other's at the target).
pub(crate) const FRAME_FLOW_TAKEN: u16 = 4;
/// copy → intercept: the copy process this connection belongs to, a random id per process,
/// sent right after the switch marker.
pub(crate) const FRAME_INSTANCE: u16 = 5;

const KIND_ADD: u8 = 1;
const KIND_DEL: u8 = 2;
const FAMILY_IPV4: u8 = 4;
const FAMILY_IPV6: u8 = 6;

/// A whole frame found at the start of a buffer.
pub(crate) struct Frame<'a> {
    pub(crate) frame_type: u16,
    pub(crate) body: &'a [u8],
}

impl<'a> Frame<'a> {
    /// The frame at the start of `bytes` and its length on the wire, or `None` until all of
    /// it has arrived.
    pub(crate) fn split(bytes: &'a [u8]) -> Option<(Self, usize)> {
        Self::split_within(bytes, usize::from(u16::MAX))
            .ok()
            .flatten()
    }

    /// [`Frame::split`] for a receiver that takes bodies of at most `max_body` bytes: a
    /// longer one is an error as soon as its length field has arrived, so the receiver never
    /// buffers more than one frame of that size.
    pub(crate) fn split_within(
        bytes: &'a [u8],
        max_body: usize,
    ) -> Result<Option<(Self, usize)>, ProtoError> {
        let (Some(frame_type), Some(body_len)) = (be_u16_at(bytes, 0), be_u16_at(bytes, 2)) else {
            return Ok(None);
        };
        let body_len = usize::from(body_len);
        if body_len > max_body {
            return Err(ProtoError::FrameTooLarge {
                len: body_len,
                max: max_body,
            });
        }
        let total = FRAME_HEADER_LEN + body_len;
        Ok(bytes
            .get(FRAME_HEADER_LEN..total)
            .map(|body| (Frame { frame_type, body }, total)))
    }
}

/// Appends a frame of `frame_type` whose body `write_body` appends. Fails, leaving `out` as
/// it was, when the body exceeds 65535 bytes.
pub(crate) fn write_frame(
    frame_type: u16,
    out: &mut Vec<u8>,
    write_body: impl FnOnce(&mut Vec<u8>),
) -> Result<(), ProtoError> {
    let start = out.len();
    out.extend_from_slice(&frame_type.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    write_body(out);
    let body_len = out.len() - start - FRAME_HEADER_LEN;
    let Ok(length_field) = u16::try_from(body_len) else {
        out.truncate(start);
        return Err(ProtoError::FrameTooLarge {
            len: body_len,
            max: usize::from(u16::MAX),
        });
    };
    out[start + 2..start + FRAME_HEADER_LEN].copy_from_slice(&length_field.to_be_bytes());
    Ok(())
}

/// Appends a registration frame:
/// `kind u8 | family u8 | client port u16 | target port u16 | client ip | target ip`.
pub(crate) fn encode_registration(
    registration: &Registration,
    out: &mut Vec<u8>,
) -> Result<(), ProtoError> {
    let kind = match registration.kind {
        RegKind::Add => KIND_ADD,
        RegKind::Del => KIND_DEL,
    };
    let flow = Flow {
        client: registration.client,
        target: registration.target,
    };
    let family = family_of(&flow)?;
    write_frame(FRAME_REGISTRATION, out, |body| {
        body.push(kind);
        write_flow(family, &flow, body);
    })
}

/// Reads a registration body.
pub(crate) fn decode_registration(body: &[u8]) -> Result<Registration, ProtoError> {
    let mut reader = Reader::new(body, "v7 registration");
    let kind = match reader.u8()? {
        KIND_ADD => RegKind::Add,
        KIND_DEL => RegKind::Del,
        kind => return Err(ProtoError::BadRegistrationKind { kind }),
    };
    let flow = read_flow(&mut reader)?;
    Ok(Registration {
        kind,
        client: flow.client,
        target: flow.target,
    })
}

/// Appends a flow-taken frame: the flow as in a registration, without the kind.
pub(crate) fn encode_flow_taken(flow: &Flow, out: &mut Vec<u8>) -> Result<(), ProtoError> {
    let family = family_of(flow)?;
    write_frame(FRAME_FLOW_TAKEN, out, |body| write_flow(family, flow, body))
}

/// Reads a flow-taken body.
pub(crate) fn decode_flow_taken(body: &[u8]) -> Result<Flow, ProtoError> {
    read_flow(&mut Reader::new(body, "v7 flow taken"))
}

/// Appends an instance frame: `id u64`.
pub(crate) fn encode_instance(id: u64, out: &mut Vec<u8>) {
    // Eight bytes always fit a frame.
    let _ = write_frame(FRAME_INSTANCE, out, |body| {
        body.extend_from_slice(&id.to_be_bytes());
    });
}

/// Reads an instance body.
pub(crate) fn decode_instance(body: &[u8]) -> Result<u64, ProtoError> {
    Reader::new(body, "v7 instance").u64()
}

fn family_of(flow: &Flow) -> Result<u8, ProtoError> {
    match (flow.client.ip(), flow.target.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => Ok(FAMILY_IPV4),
        (IpAddr::V6(_), IpAddr::V6(_)) => Ok(FAMILY_IPV6),
        _ => Err(ProtoError::MixedAddressFamilies),
    }
}

/// `family u8 | client port u16 | target port u16 | client ip | target ip`.
fn write_flow(family: u8, flow: &Flow, body: &mut Vec<u8>) {
    body.push(family);
    body.extend_from_slice(&flow.client.port().to_be_bytes());
    body.extend_from_slice(&flow.target.port().to_be_bytes());
    for address in [flow.client.ip(), flow.target.ip()] {
        match address {
            IpAddr::V4(ip) => body.extend_from_slice(&ip.octets()),
            IpAddr::V6(ip) => body.extend_from_slice(&ip.octets()),
        }
    }
}

fn read_flow(reader: &mut Reader<'_>) -> Result<Flow, ProtoError> {
    let family = reader.u8()?;
    let client_port = reader.u16()?;
    let target_port = reader.u16()?;
    let mut read_ip = || -> Result<IpAddr, ProtoError> {
        match family {
            FAMILY_IPV4 => Ok(IpAddr::V4(Ipv4Addr::from(reader.array::<4>()?))),
            FAMILY_IPV6 => Ok(IpAddr::V6(Ipv6Addr::from(reader.array::<16>()?))),
            family => Err(ProtoError::BadAddressFamily { family }),
        }
    };
    let client_ip = read_ip()?;
    let target_ip = read_ip()?;
    Ok(Flow {
        client: SocketAddr::new(client_ip, client_port),
        target: SocketAddr::new(target_ip, target_port),
    })
}

/// Appends the reply frame of a captured reply seen at `timestamp_us`, carrying up to
/// `prefix_limit` bytes of its payload.
pub(crate) fn encode_captured(
    split: &HeaderSplit<'_>,
    timestamp_us: u64,
    prefix_limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), ProtoError> {
    let headers = HeaderBuf::normalize(split, TCP_MAX_HEADER_LEN);
    let prefix = payload_prefix(split, prefix_limit);
    encode_reply(Some(timestamp_us), headers.as_bytes(), prefix, out)
}

/// Appends a reply frame:
/// `timestamp µs u64 | headers length u16 | prefix length u16 | headers | prefix`.
/// A missing timestamp travels as 0.
fn encode_reply(
    timestamp_us: Option<u64>,
    headers: &[u8],
    prefix: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ProtoError> {
    write_frame(FRAME_REPLY, out, |body| {
        body.extend_from_slice(&timestamp_us.unwrap_or(0).to_be_bytes());
        // Both lengths are bounded (≤ 100 and ≤ MAX_PAYLOAD_PREFIX) by the callers.
        body.extend_from_slice(&(headers.len() as u16).to_be_bytes());
        body.extend_from_slice(&(prefix.len() as u16).to_be_bytes());
        body.extend_from_slice(headers);
        body.extend_from_slice(prefix);
    })
}

/// Reads a reply body, checking the header block is self-consistent and the prefix fits the
/// payload the headers declare.
pub(crate) fn decode_reply(body: &[u8]) -> Result<ReplyHeaders, ProtoError> {
    let mut reader = Reader::new(body, "v7 reply");
    let timestamp_us = Some(reader.u64()?).filter(|&timestamp| timestamp != 0);
    let headers_len = usize::from(reader.u16()?);
    let prefix_len = usize::from(reader.u16()?);
    let (headers, payload_len) = HeaderBuf::from_block(reader.take(headers_len)?)?;
    if prefix_len > MAX_PAYLOAD_PREFIX {
        return Err(ProtoError::PrefixTooLong {
            len: prefix_len,
            max: MAX_PAYLOAD_PREFIX,
        });
    }
    if prefix_len > payload_len {
        return Err(ProtoError::PrefixBeyondPayload {
            prefix: prefix_len,
            payload: payload_len,
        });
    }
    let prefix = reader.take(prefix_len)?.to_vec();
    Ok(ReplyHeaders::new(headers, timestamp_us, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::fixtures::{SYN_ACK, client, target, tcp_packet};

    fn body_of(frame: &[u8], frame_type: u16) -> &[u8] {
        let (parsed, len) = Frame::split(frame).unwrap();
        assert_eq!((parsed.frame_type, len), (frame_type, frame.len()));
        parsed.body
    }

    #[test]
    fn registrations_round_trip_in_both_families() {
        let v6_client: SocketAddr = "[2001:db8::9:1]:52302".parse().unwrap();
        let v6_target: SocketAddr = "[2001:db8::3]:8080".parse().unwrap();
        for (registration, len) in [
            (Registration::add(client(), target()), 4 + 14),
            (Registration::del(v6_client, v6_target), 4 + 38),
        ] {
            let mut out = Vec::new();
            encode_registration(&registration, &mut out).unwrap();
            assert_eq!(out.len(), len);
            let body = body_of(&out, FRAME_REGISTRATION);
            assert_eq!(decode_registration(body), Ok(registration));
        }
    }

    #[test]
    fn the_ipv4_registration_layout_is_fixed() {
        let mut out = Vec::new();
        encode_registration(&Registration::add(client(), target()), &mut out).unwrap();
        let expected = [
            0x00, 0x01, 0x00, 0x0e, 0x01, 0x04, 0xcc, 0x4e, 0x1f, 0x90, 0x0a, 0x4d, 0x09, 0x01,
            0x0a, 0x4d, 0x01, 0x03,
        ];
        assert_eq!(out, expected);
    }

    #[test]
    fn bad_registrations_are_typed_errors() {
        let v6_target: SocketAddr = "[2001:db8::3]:8080".parse().unwrap();
        let mut out = Vec::new();
        assert_eq!(
            encode_registration(&Registration::add(client(), v6_target), &mut out),
            Err(ProtoError::MixedAddressFamilies)
        );
        assert!(out.is_empty());
        let mut body = [1, 4, 0, 1, 0, 2, 10, 0, 0, 1, 10, 0, 0, 2];
        body[0] = 3;
        assert_eq!(
            decode_registration(&body),
            Err(ProtoError::BadRegistrationKind { kind: 3 })
        );
        body[0] = 1;
        body[1] = 5;
        assert_eq!(
            decode_registration(&body),
            Err(ProtoError::BadAddressFamily { family: 5 })
        );
        body[1] = 6;
        assert_eq!(
            decode_registration(&body),
            Err(ProtoError::Truncated {
                what: "v7 registration",
                needed: 22,
                had: 14
            })
        );
    }

    #[test]
    fn trailing_body_bytes_are_ignored() {
        let registration = Registration::add(client(), target());
        let mut out = Vec::new();
        encode_registration(&registration, &mut out).unwrap();
        let mut body = body_of(&out, FRAME_REGISTRATION).to_vec();
        body.extend_from_slice(b"future field");
        assert_eq!(decode_registration(&body), Ok(registration));
    }

    #[test]
    fn replies_round_trip_with_timestamp_and_prefix() {
        let v6_source: SocketAddr = "[2001:db8::3]:8080".parse().unwrap();
        let v6_destination: SocketAddr = "[2001:db8::9:1]:52302".parse().unwrap();
        let packets = [
            SYN_ACK.to_vec(),
            tcp_packet(
                target(),
                client(),
                &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
                b"HTTP/1.1 200 OK",
            ),
            tcp_packet(v6_source, v6_destination, &[], &[b'y'; 300]),
        ];
        for packet in packets {
            let timestamp = 1_700_000_000_123_456;
            let reply = ReplyHeaders::from_packet(&packet, Some(timestamp), 256).unwrap();
            let split = crate::packet::split_ip_headers(&packet).unwrap();
            let mut out = Vec::new();
            encode_captured(&split, timestamp, 256, &mut out).unwrap();
            let decoded = decode_reply(body_of(&out, FRAME_REPLY)).unwrap();
            assert_eq!(decoded, reply);
            assert_eq!(decoded.payload_prefix().len(), reply.payload_len().min(256));
        }
    }

    #[test]
    fn a_zero_timestamp_means_none() {
        let reply = ReplyHeaders::from_packet(&SYN_ACK, None, 0).unwrap();
        let mut out = Vec::new();
        encode_reply(None, reply.headers(), reply.payload_prefix(), &mut out).unwrap();
        assert_eq!(&out[4..12], &[0; 8]);
        assert_eq!(decode_reply(&out[4..]).unwrap().timestamp_us(), None);
    }

    #[test]
    fn inconsistent_replies_are_rejected() {
        let packet = tcp_packet(target(), client(), &[], b"abc");
        let split = crate::packet::split_ip_headers(&packet).unwrap();
        let mut out = Vec::new();
        encode_captured(&split, 5, 3, &mut out).unwrap();
        let body = out[4..].to_vec();

        let mut long_prefix = body.clone();
        long_prefix[10..12].copy_from_slice(&4u16.to_be_bytes());
        long_prefix.push(b'd');
        assert_eq!(
            decode_reply(&long_prefix),
            Err(ProtoError::PrefixBeyondPayload {
                prefix: 4,
                payload: 3
            })
        );
        let mut huge_prefix = body.clone();
        huge_prefix[10..12].copy_from_slice(&257u16.to_be_bytes());
        assert_eq!(
            decode_reply(&huge_prefix),
            Err(ProtoError::PrefixTooLong {
                len: 257,
                max: MAX_PAYLOAD_PREFIX
            })
        );
        let mut short_headers = body.clone();
        short_headers[8..10].copy_from_slice(&39u16.to_be_bytes());
        assert_eq!(
            decode_reply(&short_headers),
            Err(ProtoError::Packet(crate::packet::PacketError::Truncated {
                layer: crate::packet::Layer::Tcp,
                needed: 20,
                got: 19
            }))
        );
        assert_eq!(
            decode_reply(&body[..body.len() - 1]),
            Err(ProtoError::Truncated {
                what: "v7 reply",
                needed: 55,
                had: 54
            })
        );
    }

    #[test]
    fn an_oversized_body_is_refused_and_leaves_out_untouched() {
        let mut out = vec![1, 2, 3];
        let result = write_frame(99, &mut out, |body| body.resize(body.len() + 70_000, 0));
        assert_eq!(
            result,
            Err(ProtoError::FrameTooLarge {
                len: 70_000,
                max: 65_535
            })
        );
        assert_eq!(out, [1, 2, 3]);
    }

    #[test]
    fn frames_split_only_when_whole() {
        let frame = [0x12, 0x34, 0x00, 0x02, 0xaa, 0xbb, 0xcc];
        for cut in 0..6 {
            assert!(Frame::split(&frame[..cut]).is_none());
        }
        let (parsed, len) = Frame::split(&frame).unwrap();
        assert_eq!(
            (parsed.frame_type, parsed.body, len),
            (0x1234, &[0xaa, 0xbb][..], 6)
        );
    }

    #[test]
    fn a_receiver_refuses_a_frame_longer_than_it_takes_once_the_length_is_in() {
        let header = [0x00, 0x09, 0x04, 0x01];
        assert!(matches!(Frame::split_within(&header[..3], 1024), Ok(None)));
        assert_eq!(
            Frame::split_within(&header, 1024).err(),
            Some(ProtoError::FrameTooLarge {
                len: 1025,
                max: 1024
            })
        );
        let mut whole = header.to_vec();
        whole.resize(4 + 1025, 0);
        assert!(Frame::split_within(&whole, 1025).unwrap().is_some());
    }

    #[test]
    fn flow_taken_and_instance_frames_round_trip() {
        let flow = Flow {
            client: "[2001:db8:1::5]:40000".parse().unwrap(),
            target: "[2001:db8::30]:80".parse().unwrap(),
        };
        let mut out = Vec::new();
        encode_flow_taken(&flow, &mut out).unwrap();
        assert_eq!(
            decode_flow_taken(body_of(&out, FRAME_FLOW_TAKEN)).unwrap(),
            flow
        );
        let mut out = Vec::new();
        encode_instance(0x0123_4567_89ab_cdef, &mut out);
        assert_eq!(out.len(), FRAME_HEADER_LEN + 8);
        assert_eq!(
            decode_instance(body_of(&out, FRAME_INSTANCE)).unwrap(),
            0x0123_4567_89ab_cdef
        );
    }
}
