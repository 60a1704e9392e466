//! Address rewriting for copies: which captured packets are copied, where they go, and the
//! client port each [`Repetition`] of an offline replay moves a captured flow to.
//!
//! Pure: applies the `-x` mappings (see [`crate::addresses`]) to a [`Segment`]. The client
//! end each copy carries (`-n`, `-f`, `-c`) is chosen per replica, in [`super::replicas`],
//! which also keeps the ports of different rounds from colliding. It never touches the
//! network.

use std::net::SocketAddr;

use crate::addresses::PortMapping;
use crate::packet::Segment;

/// Which repetition of the captured traffic a segment belongs to. The sessions of two
/// repetitions must not share a 4-tuple on the target, so each repetition moves client ports
/// elsewhere ([`repetition_port`]); where a moved port meets a port of the captured traffic,
/// the session table tells the two apart by their round and moves the later one again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Repetition {
    /// The pass over the files of `copy --offline --loop N`: 0 for the first pass, and
    /// always 0 for live capture.
    pub round: u32,
}

/// The lowest client port a copy uses once its port has moved.
const FIRST_PORT: u32 = 1024;
/// How many ports there are from [`FIRST_PORT`] up.
const PORTS: u32 = 65_536 - FIRST_PORT;
/// How far each round moves a client port: about 0.618 of [`PORTS`] (the golden ratio), so
/// the moves of the first rounds stay far apart from each other (those of the first 8 rounds
/// more than PORTS / 16 apart), and coprime with [`PORTS`], so no two rounds below [`PORTS`]
/// give one captured port the same port.
const ROUND_PORT_STEP: u32 = 39_871;

/// The client port of a segment captured from `port`, in `repetition`. The first pass keeps
/// the captured port; round `r` moves it by `r` × 39,871 (about 0.618 of the range) within
/// 1024..=65535.
///
/// Deterministic and collision-free for one captured port across rounds; two different
/// captured ports of different rounds can still meet (nothing here knows which ports are in
/// use on the target).
pub fn repetition_port(port: u16, repetition: Repetition) -> u16 {
    if repetition.round == 0 {
        return port;
    }
    let from_first = (u32::from(port) + PORTS - FIRST_PORT) % PORTS;
    let step = u64::from(repetition.round) * u64::from(ROUND_PORT_STEP) % u64::from(PORTS);
    let moved = (u64::from(from_first) + step) % u64::from(PORTS);
    u16::try_from(moved + u64::from(FIRST_PORT)).unwrap_or(port)
}

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

    /// Points a client → online segment of `repetition` at the target, its client port
    /// moved for the round. Returns false (and leaves the segment alone) when no mapping
    /// covers its destination.
    pub fn rewrite(&self, segment: &mut Segment, repetition: Repetition) -> bool {
        let Some(mapping) = self.mapping_for(segment.dst) else {
            return false;
        };
        segment.dst = mapping.target;
        segment.src = SocketAddr::new(
            segment.src.ip(),
            repetition_port(segment.src.port(), repetition),
        );
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
        let mut second_round = seg.clone();
        assert!(rewriter.rewrite(&mut seg, Repetition::default()));
        assert_eq!(seg.src, addr("198.51.100.10:40000"));
        assert_eq!(seg.dst, addr("198.51.100.30:8080"));

        assert!(rewriter.rewrite(&mut second_round, Repetition { round: 1 }));
        assert_eq!(second_round.src, addr("198.51.100.10:15359"));
        assert_eq!(second_round.dst, seg.dst);

        other.dst = addr("198.51.100.20:81");
        assert!(!rewriter.rewrite(&mut other, Repetition::default()));
        assert_eq!(other.dst, addr("198.51.100.20:81"));
    }

    fn round(round: u32) -> Repetition {
        Repetition { round }
    }

    #[test]
    fn ports_of_a_round_stay_in_range_and_wrap() {
        assert_eq!(
            repetition_port(80, round(0)),
            80,
            "the first pass keeps even low ports"
        );
        assert_eq!(repetition_port(40_000, round(1)), 15_359);
        assert_eq!(repetition_port(65_535, round(1)), 1024 + 39_870);
        assert_eq!(repetition_port(1024, round(PORTS)), 1024, "a full cycle");
    }

    proptest::proptest! {
        #[test]
        fn rounds_never_give_one_port_the_same_port(
            port in 1024u16..,
            a in 0u32..PORTS,
            b in 0u32..PORTS,
        ) {
            let (pa, pb) = (repetition_port(port, round(a)), repetition_port(port, round(b)));
            proptest::prop_assert!(pa >= 1024 && pb >= 1024);
            proptest::prop_assert_eq!(pa == pb, a == b);
        }
    }

    #[test]
    fn the_first_rounds_move_ports_far_apart() {
        // The smallest distance (around the ring of ports) between the moves of any two of
        // the first 8 rounds.
        let moves: Vec<u32> = (0..8).map(|r| r * ROUND_PORT_STEP % PORTS).collect();
        let closest = moves
            .iter()
            .enumerate()
            .flat_map(|(i, a)| moves[i + 1..].iter().map(move |b| a.abs_diff(*b)))
            .map(|d| d.min(PORTS - d))
            .min()
            .unwrap();
        assert!(closest >= PORTS / 16, "{closest}");
    }
}
