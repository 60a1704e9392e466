//! `-n/--copies` and `-f/--port-shift`: the client end each copy of a captured session uses
//! toward the target, chosen so that no two live sessions share a 4-tuple.
//!
//! TCPCopy 1.x moves replica *i*'s port by `(2i−1)<<5` plus a random 0–511, and an instance's
//! by `F<<11`, and never checks the result: replicas and instances collide, and the target
//! resets them. Here the same spread comes from a stable hash (a restarted copy picks the
//! same ports), and every choice is claimed in a [`PortBook`] that the shards of one copy
//! share: a taken flow is skipped for the next candidate and counted as `ports_remapped`.
//! The book is touched when a session opens and ends, never per packet.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};

use crate::addresses::{ClientAddresses, stable_hash};
use crate::packet::Flow;

/// Most replica copies (1.x's limit, kept so its command lines mean the same).
pub const MAX_COPIES: u16 = 1023;
/// Candidates tried before a session is given up for want of a free port.
const MAX_ATTEMPTS: u16 = 32;
/// Replica ports stay clear of the privileged range.
const FIRST_PORT: u32 = 1024;
const PORT_RANGE: u32 = 65_536 - FIRST_PORT;
/// Keeps the port hashes apart from the `-c` address hash of the same client.
const PORT_SALT: u64 = 1 << 40;

/// How the copies of one captured session are told apart on the wire.
#[derive(Debug, Clone)]
pub struct ReplicaPlan {
    copies: u16,
    port_shift: u16,
    pool: Option<ClientAddresses>,
}

/// Which replayed session a captured segment belongs to: its captured flow (real client →
/// target, with the port its `--loop` round moved it to), which of its `-n` replicas, and
/// which round. Two rounds may bring the same captured flow (a moved port can meet another
/// connection's real one); their sessions stay apart, and the later one claims another port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Origin {
    pub captured: Flow,
    pub replica: u16,
    pub round: u32,
}

/// A claimed client end for one replica of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    pub client: SocketAddr,
    /// Candidates skipped because a live session held them.
    pub remapped: u16,
}

impl ReplicaPlan {
    /// `copies` replays of every session (1 = each once); `port_shift` is 1.x's `-f`;
    /// `pool` the `-c` addresses, if any.
    pub fn new(copies: u16, port_shift: u16, pool: Option<ClientAddresses>) -> ReplicaPlan {
        ReplicaPlan {
            copies: copies.clamp(1, MAX_COPIES),
            port_shift,
            pool: pool.filter(|pool| !pool.is_empty()),
        }
    }

    /// How many times each session is replayed.
    pub fn copies(&self) -> u16 {
        self.copies
    }

    /// Claims in `book` the first free client end for replica `replica` of a session from
    /// `client` (the real one) toward `target`; `None` when every candidate is taken.
    pub fn claim(
        &self,
        book: &PortBook,
        client: SocketAddr,
        target: SocketAddr,
        replica: u16,
    ) -> Option<Claimed> {
        (0..MAX_ATTEMPTS).find_map(|attempt| {
            let candidate = self.candidate(client, target, replica, attempt);
            book.claim(Flow {
                client: candidate,
                target,
            })
            .then_some(Claimed {
                client: candidate,
                remapped: attempt,
            })
        })
    }

    /// The client end replica `replica` tries toward `target` at its `attempt`-th try: a
    /// `-c` address of the target's family, if any. The first copy of a session keeps the
    /// real port unless `-f` moves it; other replicas are spread as in 1.x; retries go
    /// anywhere in the unprivileged range.
    fn candidate(
        &self,
        client: SocketAddr,
        target: SocketAddr,
        replica: u16,
        attempt: u16,
    ) -> SocketAddr {
        let ip = self
            .pool
            .as_ref()
            .and_then(|pool| pool.pick(client, replica, target.is_ipv6()))
            .unwrap_or(client.ip());
        let salt = PORT_SALT | u64::from(replica) << 16 | u64::from(attempt);
        let port = if attempt > 0 {
            (stable_hash(client, salt) % u64::from(PORT_RANGE)) as u32
        } else if replica == 0 && self.port_shift == 0 {
            return SocketAddr::new(ip, client.port());
        } else {
            let spread = match replica {
                0 => 0,
                n => (2 * u32::from(n) - 1) << 5,
            };
            let jitter = (stable_hash(client, salt) % 512) as u32;
            u32::from(client.port()) + (u32::from(self.port_shift) << 11) + spread + jitter
        };
        SocketAddr::new(ip, unprivileged(port))
    }
}

/// `port` wrapped into 1024..=65535.
fn unprivileged(port: u32) -> u16 {
    let wrapped = FIRST_PORT + (port + PORT_RANGE - FIRST_PORT) % PORT_RANGE;
    u16::try_from(wrapped).unwrap_or(u16::MAX)
}

/// The flows the live sessions of one copy hold toward their targets (shared by its shards).
#[derive(Debug, Default)]
pub struct PortBook {
    taken: Mutex<HashSet<Flow>>,
}

impl PortBook {
    /// Takes `flow`; false when a live session already holds it.
    pub fn claim(&self, flow: Flow) -> bool {
        self.taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(flow)
    }

    /// Gives `flow` back when its session has ended (time-wait included).
    pub fn release(&self, flow: &Flow) {
        self.taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(flow);
    }

    /// Flows held now.
    pub fn len(&self) -> usize {
        self.taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    const TARGET: &str = "198.51.100.30:80";

    #[test]
    fn one_copy_keeps_the_real_client() {
        let plan = ReplicaPlan::new(1, 0, None);
        let book = PortBook::default();
        let claimed = plan
            .claim(&book, addr("198.51.100.10:40000"), addr(TARGET), 0)
            .unwrap();
        assert_eq!(claimed.client, addr("198.51.100.10:40000"));
        assert_eq!(claimed.remapped, 0);
    }

    #[test]
    fn replicas_and_shifts_move_the_port_as_1x_does() {
        let client = addr("198.51.100.10:40000");
        let target = addr(TARGET);
        let plan = ReplicaPlan::new(3, 0, None);
        for replica in 1..3u32 {
            let port = u32::from(plan.candidate(client, target, replica as u16, 0).port());
            let base = 40_000 + ((2 * replica - 1) << 5);
            assert!(
                (base..base + 512).contains(&port),
                "replica {replica}: {port}"
            );
        }
        let shifted = ReplicaPlan::new(1, 2, None)
            .candidate(client, target, 0, 0)
            .port();
        assert!(
            (44_096..44_096 + 512).contains(&u32::from(shifted)),
            "{shifted}"
        );
        let high =
            ReplicaPlan::new(1, 1023, None).candidate(addr("198.51.100.10:65000"), target, 0, 0);
        assert!(high.port() >= 1024);
    }

    #[test]
    fn a_taken_flow_is_skipped_and_counted() {
        let plan = ReplicaPlan::new(1, 0, Some("203.0.113.9/32".parse().unwrap()));
        let book = PortBook::default();
        // Two real clients that -c maps onto the same address and port.
        let first = plan.claim(&book, addr("198.51.100.10:40000"), addr(TARGET), 0);
        let second = plan.claim(&book, addr("198.51.100.11:40000"), addr(TARGET), 0);
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(first.client, addr("203.0.113.9:40000"));
        assert_ne!(second.client, first.client);
        assert_eq!(second.remapped, 1);
        book.release(&Flow {
            client: first.client,
            target: addr(TARGET),
        });
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn no_two_live_sessions_share_a_flow_under_any_mix_of_copies_and_shifts() {
        // Few clients, many ports, every replica, two instances' shifts in one book (as if
        // they shared it): every claimed flow is distinct, and a full book says so.
        let book = PortBook::default();
        let mut claimed = HashSet::new();
        for shift in [0, 1] {
            let plan = ReplicaPlan::new(8, shift, Some("203.0.113.1,203.0.113.2".parse().unwrap()));
            for port in 40_000..40_400 {
                let client = SocketAddr::from(([198, 51, 100, (port % 3) as u8 + 10], port));
                for replica in 0..plan.copies() {
                    let got = plan.claim(&book, client, addr(TARGET), replica).unwrap();
                    assert!(claimed.insert(got.client), "{} claimed twice", got.client);
                }
            }
        }
        assert_eq!(book.len(), claimed.len());
    }

    proptest::proptest! {
        /// Any mix of copies, shifts, pools and clients (ports reused across clients, as
        /// behind NAT), with sessions ending and their ports taken again: no two live
        /// sessions ever share a flow, and a free flow is always found.
        #[test]
        fn claims_never_collide(
            copies in 1u16..6,
            shifts in proptest::collection::vec(0u16..4, 1..3),
            pooled in proptest::bool::ANY,
            clients in proptest::collection::vec((0u8..4, 40_000u16..40_050), 1..60),
            ended in proptest::collection::vec(proptest::bool::ANY, 60),
        ) {
            let pool = pooled.then(|| "203.0.113.1,203.0.113.2".parse().unwrap());
            let book = PortBook::default();
            let mut live = HashSet::new();
            for (i, &(host, port)) in clients.iter().enumerate() {
                let client = SocketAddr::from(([198, 51, 100, host + 10], port));
                for &shift in &shifts {
                    let plan = ReplicaPlan::new(copies, shift, pool.clone());
                    for replica in 0..copies {
                        let got = plan.claim(&book, client, addr(TARGET), replica);
                        let flow = Flow { client: got.unwrap().client, target: addr(TARGET) };
                        proptest::prop_assert!(live.insert(flow), "{:?} twice", flow);
                        if ended[i % ended.len()] {
                            book.release(&flow);
                            live.remove(&flow);
                        }
                    }
                }
            }
            proptest::prop_assert_eq!(book.len(), live.len());
        }
    }

    #[test]
    fn ports_wrap_into_the_unprivileged_range() {
        assert_eq!(unprivileged(1024), 1024);
        assert_eq!(unprivileged(65_535), 65_535);
        assert_eq!(unprivileged(65_536), 1024);
        assert_eq!(unprivileged(80), 64_592, "80 + 64,512");
    }
}
