//! Address rewriting for copies: which captured packets are copied, where they go, and
//! which client address each copy carries.
//!
//! Pure: applies the `-x` mappings and the `-c` pool (see [`crate::addresses`]) to a
//! [`Segment`]. It never touches the network.

use std::net::SocketAddr;

use crate::addresses::{ClientAddresses, PortMapping};
use crate::packet::Segment;

/// Applies the `-x` mappings and the `-c` pool to captured client segments.
#[derive(Debug, Clone)]
pub struct Rewriter {
    mappings: Vec<PortMapping>,
    clients: Option<ClientAddresses>,
}

impl Rewriter {
    pub fn new(mappings: Vec<PortMapping>, clients: Option<ClientAddresses>) -> Rewriter {
        Rewriter {
            mappings,
            clients: clients.filter(|pool| !pool.is_empty()),
        }
    }

    /// The mapping a packet to `dst` falls under, if any.
    pub fn mapping_for(&self, dst: SocketAddr) -> Option<&PortMapping> {
        self.mappings
            .iter()
            .find(|m| m.online_port == dst.port() && m.online_ip.is_none_or(|ip| ip == dst.ip()))
    }

    /// Rewrites a client → online segment into a copy → target one. Returns false (and
    /// leaves the segment alone) when no mapping covers its destination.
    pub fn rewrite(&self, segment: &mut Segment) -> bool {
        let Some(mapping) = self.mapping_for(segment.dst) else {
            return false;
        };
        segment.dst = mapping.target;
        if let Some(pool) = &self.clients {
            segment.src = SocketAddr::new(pool.pick(segment.src), segment.src.port());
        }
        true
    }

    pub fn mappings(&self) -> &[PortMapping] {
        &self.mappings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn rewrite_applies_mapping_and_pool() {
        let rewriter = Rewriter::new(
            vec!["198.51.100.20:80-198.51.100.30:8080".parse().unwrap()],
            Some("203.0.113.9/32".parse().unwrap()),
        );
        let mut seg = crate::packet::Segment {
            src: addr("198.51.100.10:40000"),
            dst: addr("198.51.100.20:80"),
            seq: Default::default(),
            ack: Default::default(),
            flags: Default::default(),
            window: 0,
            options: Default::default(),
            ip_id: 0,
            ttl: 64,
            payload_len: 0,
        };
        let mut other = seg.clone();
        assert!(rewriter.rewrite(&mut seg));
        assert_eq!(seg.src, addr("203.0.113.9:40000"));
        assert_eq!(seg.dst, addr("198.51.100.30:8080"));

        other.dst = addr("198.51.100.20:81");
        assert!(!rewriter.rewrite(&mut other));
        assert_eq!(other.dst, addr("198.51.100.20:81"));
    }
}
