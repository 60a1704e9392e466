//! The reply value: what intercept tells copy about one packet the target sent.
//!
//! Owns [`ReplyHeaders`], the decoded form of a reply in either version: what copy gets from
//! the stream decoders. Building it from a captured packet goes through the packet model and
//! `headers`, so a reply always holds a self-consistent header block. No I/O; the timestamp
//! is whatever the caller captured.

use std::net::SocketAddr;

use super::ProtoError;
use super::headers::{HeaderBuf, TCP_MAX_HEADER_LEN};
use crate::packet::{self, HeaderSplit};

/// The longest payload prefix a version-7 reply may carry.
pub const MAX_PAYLOAD_PREFIX: usize = 256;

/// The headers of one reply from the target, as intercept captured it.
///
/// The header block is a fixed IP header (20 bytes IPv4 without options, or 40 bytes IPv6)
/// followed by the TCP header with its options; the IP length field still counts the whole
/// payload, so [`payload_len`](Self::payload_len) is the reply's real payload length even
/// though at most a prefix of it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyHeaders {
    headers: HeaderBuf,
    timestamp_us: Option<u64>,
    payload_prefix: Vec<u8>,
}

impl ReplyHeaders {
    /// Builds a reply from a captured IP packet (IPv4 or IPv6, no link header), keeping at
    /// most `prefix_limit` (capped at [`MAX_PAYLOAD_PREFIX`]) bytes of its payload. IPv4
    /// options are dropped with the IP length and checksum fixed.
    pub fn from_packet(
        packet: &[u8],
        timestamp_us: Option<u64>,
        prefix_limit: usize,
    ) -> Result<Self, ProtoError> {
        let split = packet::split_ip_headers(packet)?;
        let prefix = payload_prefix(&split, prefix_limit);
        Ok(ReplyHeaders {
            headers: HeaderBuf::normalize(&split, TCP_MAX_HEADER_LEN),
            timestamp_us,
            payload_prefix: prefix.to_vec(),
        })
    }

    pub(crate) fn new(
        headers: HeaderBuf,
        timestamp_us: Option<u64>,
        payload_prefix: Vec<u8>,
    ) -> Self {
        ReplyHeaders {
            headers,
            timestamp_us,
            payload_prefix,
        }
    }

    /// The fixed IP header followed by the TCP header.
    pub fn headers(&self) -> &[u8] {
        self.headers.as_bytes()
    }

    /// The fixed IP header: 20 bytes (IPv4) or 40 (IPv6).
    pub fn ip_header(&self) -> &[u8] {
        self.headers.ip_header()
    }

    /// The TCP header, options included.
    pub fn tcp_header(&self) -> &[u8] {
        self.headers.tcp_header()
    }

    /// The length of the reply's whole payload, from its IP length field.
    pub fn payload_len(&self) -> usize {
        self.headers.payload_len()
    }

    /// The first bytes of the payload that travelled with the headers (often none).
    pub fn payload_prefix(&self) -> &[u8] {
        &self.payload_prefix
    }

    /// When intercept captured the reply, in microseconds since the Unix epoch (v7 only).
    pub fn timestamp_us(&self) -> Option<u64> {
        self.timestamp_us
    }

    /// The sender of the reply: the target.
    pub fn source(&self) -> SocketAddr {
        self.headers.source()
    }

    /// The addressee of the reply: the client as copy replays it.
    pub fn destination(&self) -> SocketAddr {
        self.headers.destination()
    }
}

/// The payload bytes a version-7 reply carries: what was captured, at most `prefix_limit`
/// (capped at [`MAX_PAYLOAD_PREFIX`]).
pub(crate) fn payload_prefix<'a>(split: &HeaderSplit<'a>, prefix_limit: usize) -> &'a [u8] {
    let len = split
        .payload
        .len()
        .min(prefix_limit)
        .min(MAX_PAYLOAD_PREFIX);
    split.payload.get(..len).unwrap_or_default()
}
