//! Address rewriting for copies: which captured packets are copied and where they go.
//!
//! Pure: applies the `-x` mappings (see [`crate::addresses`]) to a [`Segment`]. The client
//! end each copy carries is chosen per replica, in [`super::replicas`].

use std::net::SocketAddr;

use crate::addresses::PortMapping;
use crate::packet::Segment;

/// Applies the `-x` mappings to captured client segments.
#[derive(Debug, Clone)]
pub struct Rewriter {
    mappings: Vec<PortMapping>,
}

impl Rewriter {
    pub fn new(mappings: Vec<PortMapping>) -> Rewriter {
        Rewriter { mappings }
    }

    /// The mapping a packet to `dst` falls under, if any.
    pub fn mapping_for(&self, dst: SocketAddr) -> Option<&PortMapping> {
        self.mappings
            .iter()
            .find(|m| m.online_port == dst.port() && m.online_ip.is_none_or(|ip| ip == dst.ip()))
    }

    /// Points a client → online segment at the target. Returns false (and leaves the
    /// segment alone) when no mapping covers its destination.
    pub fn rewrite(&self, segment: &mut Segment) -> bool {
        let Some(mapping) = self.mapping_for(segment.dst) else {
            return false;
        };
        segment.dst = mapping.target;
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
    fn rewrite_applies_the_mapping() {
        let rewriter = Rewriter::new(vec!["198.51.100.20:80-198.51.100.30:8080".parse().unwrap()]);
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
        assert_eq!(seg.src, addr("198.51.100.10:40000"));
        assert_eq!(seg.dst, addr("198.51.100.30:8080"));

        other.dst = addr("198.51.100.20:81");
        assert!(!rewriter.rewrite(&mut other));
        assert_eq!(other.dst, addr("198.51.100.20:81"));
    }
}
