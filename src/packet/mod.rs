//! The packet model: link layers, IPv4/IPv6 and TCP views, the owned [`Segment`] record,
//! sequence numbers and checksums.
//!
//! Pure: no I/O, no clock, no threads. Everything here takes bytes and returns values or
//! typed errors; untrusted bytes never panic.

mod segment;
mod seq;

pub use segment::{Segment, TcpFlags, TcpOptions, Timestamps};
pub use seq::SeqNum;
