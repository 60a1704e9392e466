//! The one error type of the control protocol codec.
//!
//! Every variant says which layer failed, what was wrong and, for short input, how many bytes
//! were needed against how many there were. Stream decoders treat every error as fatal for the
//! connection: the peer and we no longer agree on where the next frame starts.

use std::fmt;

use crate::packet::PacketError;

/// What went wrong while encoding or decoding control-protocol bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtoError {
    /// A structure ended before its fields did (`what` names the structure).
    Truncated {
        what: &'static str,
        needed: usize,
        had: usize,
    },
    /// A version-6 combined frame announced a message count outside `1..=max`.
    BadCombinedCount { count: u16, max: u16 },
    /// A version-6 record (14 bytes, copy → intercept) had a type we do not know.
    UnknownRecordType { record_type: u16 },
    /// A version switch marker carried the wrong magic.
    BadSwitchMagic { found: u32 },
    /// A version switch marker named a version this side did not offer or cannot speak.
    UnexpectedSwitchVersion { version: u16 },
    /// Version 6 carries IPv4 only: an IPv6 address or reply cannot travel in it.
    Ipv6NotInVersion6,
    /// A version-6 record for a client in 255.255.0.0/16 would start like the switch marker.
    ReadsAsVersionSwitch,
    /// A registration mixed an IPv4 and an IPv6 address.
    MixedAddressFamilies,
    /// A version-7 registration named an unknown kind (1 add, 2 delete).
    BadRegistrationKind { kind: u8 },
    /// A version-7 registration named an unknown address family (4 or 6).
    BadAddressFamily { family: u8 },
    /// The reply headers could not be read (the packet model says which layer and why).
    Packet(PacketError),
    /// A version-7 reply's header block carried IPv4 options or IPv6 extension headers.
    IpOptionsInBlock { ip_header_len: usize },
    /// A version-7 reply's header block was not exactly a fixed IP header plus a TCP header.
    BadHeadersLength { len: usize, expected: usize },
    /// A payload prefix longer than the protocol allows.
    PrefixTooLong { len: usize, max: usize },
    /// A payload prefix longer than the payload its IP header declares.
    PrefixBeyondPayload { prefix: usize, payload: usize },
    /// A version-6 combined frame already holds as many messages as the layout allows.
    BatchFull { max: u16 },
    /// A version-7 frame body longer than its receiver takes (or than the 16-bit length
    /// field holds, when encoding).
    FrameTooLarge { len: usize, max: usize },
    /// The first record on a connection was no hello: a hello has both addresses and ports
    /// zero and names version 6 or later.
    BadHello { record_type: u16 },
    /// A challenge asked for a proof this build does not know.
    UnknownChallengeMethod { method: u8 },
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { what, needed, had } => {
                write!(f, "{what}: needed {needed} bytes, had {had}")
            }
            Self::BadCombinedCount { count, max } => {
                write!(
                    f,
                    "v6 combined frame: message count {count} outside 1..={max}"
                )
            }
            Self::UnknownRecordType { record_type } => {
                write!(f, "v6 record: unknown type {record_type}")
            }
            Self::BadSwitchMagic { found } => {
                write!(f, "version switch: bad magic {found:#010x}")
            }
            Self::UnexpectedSwitchVersion { version } => {
                write!(f, "version switch: unexpected version {version}")
            }
            Self::Ipv6NotInVersion6 => write!(f, "protocol version 6 cannot carry ipv6"),
            Self::ReadsAsVersionSwitch => write!(
                f,
                "protocol version 6 cannot carry a client in 255.255.0.0/16 (it reads as the version switch)"
            ),
            Self::MixedAddressFamilies => {
                write!(f, "registration: client and target address families differ")
            }
            Self::BadRegistrationKind { kind } => {
                write!(f, "v7 registration: unknown kind {kind}")
            }
            Self::BadAddressFamily { family } => {
                write!(f, "v7 registration: unknown address family {family}")
            }
            Self::Packet(err) => write!(f, "reply headers: {err}"),
            Self::IpOptionsInBlock { ip_header_len } => write!(
                f,
                "v7 reply: ip header of {ip_header_len} bytes carries options or extension headers"
            ),
            Self::BadHeadersLength { len, expected } => {
                write!(
                    f,
                    "v7 reply: header block is {len} bytes, headers say {expected}"
                )
            }
            Self::PrefixTooLong { len, max } => {
                write!(f, "v7 reply: payload prefix of {len} bytes exceeds {max}")
            }
            Self::PrefixBeyondPayload { prefix, payload } => write!(
                f,
                "v7 reply: payload prefix of {prefix} bytes exceeds the {payload}-byte payload"
            ),
            Self::BatchFull { max } => write!(f, "v6 combined frame: already holds {max} messages"),
            Self::FrameTooLarge { len, max } => {
                write!(f, "v7 frame: body of {len} bytes exceeds {max}")
            }
            Self::BadHello { record_type } => write!(
                f,
                "hello: not a tcpcopy hello (addresses not zero, or type {record_type} below 6)"
            ),
            Self::UnknownChallengeMethod { method } => {
                write!(f, "v7 challenge: unknown method {method}")
            }
        }
    }
}

impl std::error::Error for ProtoError {}

impl From<PacketError> for ProtoError {
    fn from(err: PacketError) -> Self {
        ProtoError::Packet(err)
    }
}
