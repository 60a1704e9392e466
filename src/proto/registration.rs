//! Registrations: copy telling intercept which flows' replies it wants.
//!
//! Owns the [`Registration`] value and the version dispatch of its encoder; the byte layouts
//! live in `v6` and `v7`. No I/O.

use std::net::SocketAddr;

use super::{ProtoError, Version, v6, v7};

/// Whether a registration adds or removes a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegKind {
    /// Route the replies of this flow to the registering connection (v6 type 1, CLIENT_ADD).
    Add,
    /// Stop routing them (v6 type 2, CLIENT_DEL; 1.x never sends it).
    Del,
}

/// One flow, named by the addresses the target sees: the client as copy replays it (after
/// any address or port rewriting) and the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Registration {
    pub kind: RegKind,
    pub client: SocketAddr,
    pub target: SocketAddr,
}

impl Registration {
    /// A registration that adds the flow `client` → `target`.
    pub fn add(client: SocketAddr, target: SocketAddr) -> Self {
        Registration {
            kind: RegKind::Add,
            client,
            target,
        }
    }

    /// A registration that removes the flow `client` → `target`.
    pub fn del(client: SocketAddr, target: SocketAddr) -> Self {
        Registration {
            kind: RegKind::Del,
            client,
            target,
        }
    }
}

/// Appends `registration` to `out` in `version`'s layout: a 14-byte record (v6) or a frame
/// (v7). Fails, leaving `out` untouched, for an IPv6 address in v6 or mixed address families.
pub fn encode_registration(
    version: Version,
    registration: &Registration,
    out: &mut Vec<u8>,
) -> Result<(), ProtoError> {
    match version {
        Version::V6 => v6::encode_registration(registration, out),
        Version::V7 => v7::encode_registration(registration, out),
    }
}

/// Appends, in version 7, the id of the copy process a connection belongs to (right after
/// the switch marker).
pub fn encode_instance(id: u64, out: &mut Vec<u8>) {
    v7::encode_instance(id, out);
}

/// Appends, in version 7, that another copy process holds `flow`.
pub fn encode_flow_taken(flow: &crate::packet::Flow, out: &mut Vec<u8>) -> Result<(), ProtoError> {
    v7::encode_flow_taken(flow, out)
}
