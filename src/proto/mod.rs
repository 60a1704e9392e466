//! The copy ⇄ intercept control protocol: bytes in, values out.
//!
//! `tcpcopy copy` connects to each `tcpcopy intercept` over TCP (port [`DEFAULT_PORT`]),
//! sends a hello, then a registration for every flow it opens; intercept answers with the
//! headers of the target's replies for those flows. Two versions are spoken:
//! - **6**, exactly as TCPCopy 1.x and intercept 1.0 speak it (14-byte records one way,
//!   combined frames of 64-byte messages the other), so either half works with the C one;
//! - **7**, ours: tagged length-prefixed frames carrying IPv6, capture timestamps, payload
//!   prefixes and the arbitration of flows between copy processes, negotiated in the hello so either side falls back to 6;
//!   with a shared secret, copy proves it at the hello (`handshake`), and version 6 is refused.
//!
//! docs/protocol.md describes the bytes; the tests here hold its fixtures.
//!
//! This module owns encoding, checking and decoding only. It must not do I/O, read a clock,
//! spawn threads or panic on untrusted bytes: the connection code feeds the stream decoders
//! whatever it reads and writes whatever the encoders append.

mod auth;
mod batch;
mod copy_stream;
mod error;
mod handshake;
mod headers;
mod intercept_stream;
mod negotiation;
mod registration;
mod reply;
mod stream_buf;
mod v6;
mod v7;
mod wire;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

pub use auth::{Challenge, MAC_LEN, MIN_SECRET_LEN, NONCE_LEN, Refusal, Secret};
pub use batch::ReplyBatch;
pub use copy_stream::{CopyMessage, CopyStreamDecoder, MAX_COPY_FRAME_BODY};
pub use error::ProtoError;
pub use handshake::{Admission, CopyHandshake, CopyStep, HandshakeError, InterceptHandshake};
pub use headers::MAX_HEADERS_LEN;
pub use intercept_stream::{InterceptMessage, InterceptStreamDecoder};
pub use negotiation::{encode_hello, encode_switch};
pub use registration::{
    RegKind, Registration, encode_flow_taken, encode_instance, encode_registration,
};
pub use reply::{MAX_PAYLOAD_PREFIX, ReplyHeaders};
pub use v6::V6Layout;

/// The TCP port intercept listens on, as in 1.x.
pub const DEFAULT_PORT: u16 = 36524;

/// A protocol version, as numbered in the hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// TCPCopy 1.x / intercept 1.0 ("internal version 6"): IPv4 only, headers only.
    V6,
    /// Ours: IPv6, timestamps, payload prefixes, copy instances and taken flows.
    V7,
}

impl Version {
    /// The newest version this build speaks.
    pub const LATEST: Version = Version::V7;

    /// The number carried on the wire.
    pub fn number(self) -> u16 {
        match self {
            Version::V6 => 6,
            Version::V7 => 7,
        }
    }
}
