//! The packet model: link layers, IPv4/IPv6 and TCP views, the owned [`Segment`] record,
//! sequence numbers and checksums.
//!
//! Pure: no I/O, no clock, no threads. Everything here takes bytes and returns values or
//! typed errors; untrusted bytes never panic.
//!
//! # Files
//! - `segment.rs`: [`Segment`], [`TcpFlags`], [`TcpOptions`], [`Timestamps`] (data only).
//! - `flow.rs`: [`Flow`], a replayed connection as copy and intercept both name it.
//! - `seq.rs`: [`SeqNum`], all modulo-2^32 arithmetic.
//! - `error.rs`: [`PacketError`] and the [`Layer`] it names.
//! - `link.rs`: [`LinkType`] and [`LinkHeader`]: Ethernet (+VLAN), Linux cooked v1/v2,
//!   raw IP, BSD loopback.
//! - `ip.rs`: [`IpVersion`], sniffed or from an ethertype.
//! - `ipv4.rs`, `ipv6.rs`, `tcp.rs`: zero-copy views [`Ipv4Packet`], [`Ipv6Packet`],
//!   [`TcpPacket`] with `new_checked`.
//! - `options.rs`: [`TcpOptions::parse`] / [`TcpOptions::emit`] in Linux's layout.
//! - `checksum.rs`: RFC 1071 sums and the TCP pseudo-header checksums.
//! - `parse.rs`: [`parse_frame`], [`parse_ip`], [`parse_ip_headers`], and [`split_ip_headers`]
//!   for the control protocol, which carries reply headers as bytes.
//! - `emit.rs`: [`emit_ip`], [`emit_frame`].
//! - `split.rs`: [`split`] a super-segment to fit an MTU, [`max_payload_for_mtu`].
//! - `bytes.rs`: big-endian field access for the views (private).
//! - `testing.rs`: fixtures and proptest strategies shared by the tests (test builds only).

mod bytes;
pub mod checksum;
mod emit;
mod error;
mod flow;
mod ip;
mod ipv4;
mod ipv6;
mod link;
mod options;
mod parse;
mod segment;
mod seq;
mod split;
mod tcp;
#[cfg(test)]
mod testing;

pub use emit::{emit_frame, emit_ip};
pub use error::{Layer, PacketError};
pub use flow::Flow;
pub use ip::IpVersion;
pub use ipv4::Ipv4Packet;
pub use ipv6::{Ipv6Packet, UpperLayer};
pub use link::{
    EthernetHeader, LinkHeader, LinkType, LoopbackHeader, MAX_VLAN_TAGS, Sll2Header, SllHeader,
    VlanTag,
};
pub use options::MAX_OPTIONS_LEN;
pub use parse::{
    HeaderSplit, Parsed, parse_frame, parse_frame_prefix, parse_ip, parse_ip_headers,
    split_ip_headers,
};
pub use segment::{Segment, TcpFlags, TcpOptions, Timestamps};
pub use seq::SeqNum;
pub use split::{Split, max_payload_for_mtu, split};
pub use tcp::TcpPacket;
