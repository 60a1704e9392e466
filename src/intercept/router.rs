//! Which copy connection owns which flow.
//!
//! copy registers every flow it opens (CLIENT_ADD); intercept routes each reply to the
//! connection that registered its flow. A SYN-ACK or RST can race ahead of its registration,
//! so such replies are parked for a while (TCPCopy parks them for 30 s) and delivered when
//! the registration arrives; so are the replies that follow a parked one of the same flow
//! (a busy intercept can read them before the registration that came first). Pure: time is
//! an argument.
//!
//! Bounded against strangers: the routes are capped ([`RouterLimits::max_routes`]), and a
//! flood of replies for flows nobody registered holds at most [`RouterLimits::max_parked`]
//! parked replies, found by flow in constant time (a registration never scans the park).
//! Every parked reply is either handed over at its registration or dropped (too old, room
//! for a newer one, or [`Router::drop_parked`]), and each drop is reported to the caller.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::packet::Flow;

/// A copy connection, as numbered by the server.
pub type ConnId = u64;

/// Router limits.
#[derive(Debug, Clone, Copy)]
pub struct RouterLimits {
    /// How long an unregistered SYN-ACK/RST waits for its registration.
    pub park_for: Duration,
    /// Parked replies kept at most (oldest dropped first).
    pub max_parked: usize,
    /// A route with no reply for this long is forgotten.
    pub idle_route: Duration,
    /// Routes kept at most; registrations of new flows beyond are refused.
    pub max_routes: usize,
}

impl Default for RouterLimits {
    fn default() -> Self {
        RouterLimits {
            park_for: Duration::from_secs(30),
            max_parked: 65_536,
            idle_route: Duration::from_secs(600),
            // About 100 MiB of routes: ten copies' full session tables.
            max_routes: 1 << 20,
        }
    }
}

#[derive(Debug)]
struct Route {
    conn: ConnId,
    last_used: Instant,
}

/// One parked reply, numbered in parking order.
#[derive(Debug)]
struct Parked<R> {
    serial: u64,
    reply: R,
}

/// When a reply was parked and for which flow: the park's age order.
#[derive(Debug)]
struct ParkedAt {
    at: Instant,
    serial: u64,
    flow: Flow,
}

/// A registration refused because the routing table holds [`RouterLimits::max_routes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFull;

/// The routing table, generic over the parked reply type `R`.
#[derive(Debug)]
pub struct Router<R> {
    limits: RouterLimits,
    routes: HashMap<Flow, Route>,
    /// Parked replies by flow, oldest first.
    parked: HashMap<Flow, VecDeque<Parked<R>>>,
    /// Every parked reply in parking order, and entries of replies delivered since (skipped
    /// when reached): at most `max_parked` long.
    park_order: VecDeque<ParkedAt>,
    parked_len: usize,
    next_serial: u64,
}

impl<R> Router<R> {
    pub fn new(limits: RouterLimits) -> Router<R> {
        Router {
            limits,
            routes: HashMap::new(),
            parked: HashMap::new(),
            park_order: VecDeque::new(),
            parked_len: 0,
            next_serial: 0,
        }
    }

    /// `conn` owns `flow` from now on (a later registration by another copy takes it over).
    /// Returns the replies that were parked waiting for it, oldest first; refuses a new flow
    /// when the table is full.
    pub fn register(
        &mut self,
        flow: Flow,
        conn: ConnId,
        now: Instant,
    ) -> Result<Vec<R>, TableFull> {
        if self.routes.len() >= self.limits.max_routes && !self.routes.contains_key(&flow) {
            return Err(TableFull);
        }
        self.routes.insert(
            flow,
            Route {
                conn,
                last_used: now,
            },
        );
        let Some(waiting) = self.parked.remove(&flow) else {
            return Ok(Vec::new());
        };
        // Their entries in the age order go stale and are skipped when reached.
        self.parked_len -= waiting.len();
        Ok(waiting.into_iter().map(|p| p.reply).collect())
    }

    /// The connection that registered `flow`, if any; the route counts as used `now`.
    pub fn owner(&mut self, flow: Flow, now: Instant) -> Option<ConnId> {
        let route = self.routes.get_mut(&flow)?;
        route.last_used = now;
        Some(route.conn)
    }

    /// The connection that registered `flow`, if any (without touching the route).
    pub fn registered_by(&self, flow: &Flow) -> Option<ConnId> {
        self.routes.get(flow).map(|route| route.conn)
    }

    /// Whether replies of `flow` wait for its registration.
    pub fn has_parked(&self, flow: &Flow) -> bool {
        self.parked.contains_key(flow)
    }

    /// Keeps a reply of an unregistered flow until its registration arrives (a SYN-ACK or
    /// RST that overtook it, or a reply behind one); the oldest parked reply makes room when
    /// the park is full. Returns how many parked replies were dropped for it (0 or 1).
    pub fn park(&mut self, flow: Flow, reply: R, now: Instant) -> u64 {
        let mut dropped = 0;
        while self.park_order.len() >= self.limits.max_parked.max(1) {
            dropped += u64::from(self.drop_oldest_parked());
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        self.park_order.push_back(ParkedAt {
            at: now,
            serial,
            flow,
        });
        self.parked
            .entry(flow)
            .or_default()
            .push_back(Parked { serial, reply });
        self.parked_len += 1;
        dropped
    }

    /// Drops the reply at the head of the age order, if it still waits; returns whether one
    /// was dropped (the entry may stand for a reply delivered since).
    fn drop_oldest_parked(&mut self) -> bool {
        let Some(oldest) = self.park_order.pop_front() else {
            return false;
        };
        let Some(waiting) = self.parked.get_mut(&oldest.flow) else {
            return false;
        };
        if waiting.front().is_none_or(|p| p.serial != oldest.serial) {
            return false;
        }
        waiting.pop_front();
        self.parked_len -= 1;
        if waiting.is_empty() {
            self.parked.remove(&oldest.flow);
        }
        true
    }

    /// Drops every parked reply (intercept stops); returns how many there were.
    pub fn drop_parked(&mut self) -> u64 {
        let dropped = self.parked_len as u64;
        self.parked.clear();
        self.park_order.clear();
        self.parked_len = 0;
        dropped
    }

    /// Forgets one flow.
    pub fn unregister(&mut self, flow: Flow) {
        self.routes.remove(&flow);
    }

    /// Forgets every flow of a connection that closed.
    pub fn drop_connection(&mut self, conn: ConnId) {
        self.routes.retain(|_, route| route.conn != conn);
    }

    /// Drops parked replies and idle routes past their time; call now and then. Returns how
    /// many parked replies were dropped.
    pub fn expire(&mut self, now: Instant) -> u64 {
        let mut dropped = 0;
        while self
            .park_order
            .front()
            .is_some_and(|p| now.saturating_duration_since(p.at) >= self.limits.park_for)
        {
            dropped += u64::from(self.drop_oldest_parked());
        }
        let idle = self.limits.idle_route;
        self.routes
            .retain(|_, route| now.saturating_duration_since(route.last_used) < idle);
        dropped
    }

    pub fn route_count(&self) -> usize {
        self.routes.len()
    }

    pub fn parked_count(&self) -> usize {
        self.parked_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn flow(port: u16) -> Flow {
        Flow {
            client: SocketAddr::from(([203, 0, 113, 1], port)),
            target: SocketAddr::from(([198, 51, 100, 30], 80)),
        }
    }

    #[test]
    fn registered_flows_route_to_their_connection() {
        let now = Instant::now();
        let mut router: Router<()> = Router::new(RouterLimits::default());
        assert!(router.register(flow(1), 7, now).unwrap().is_empty());
        assert_eq!(router.owner(flow(1), now), Some(7));
        assert_eq!(router.owner(flow(2), now), None);
    }

    #[test]
    fn syn_ack_before_registration_is_delivered_on_registration() {
        let now = Instant::now();
        let mut router = Router::new(RouterLimits::default());
        router.park(flow(1), "syn-ack", now);
        router.park(flow(2), "other", now);
        router.park(flow(1), "rst", now);
        assert_eq!(router.register(flow(1), 3, now), Ok(vec!["syn-ack", "rst"]));
        assert_eq!(router.parked_count(), 1);
    }

    #[test]
    fn parked_replies_expire_and_the_park_is_bounded() {
        let now = Instant::now();
        let limits = RouterLimits {
            max_parked: 2,
            ..RouterLimits::default()
        };
        let mut router = Router::new(limits);
        let dropped: Vec<u64> = (1..=3)
            .map(|port| router.park(flow(port), port, now))
            .collect();
        assert_eq!(dropped, [0, 0, 1], "the third made room");
        assert_eq!(router.parked_count(), 2);
        assert_eq!(router.expire(now + limits.park_for / 2), 0);
        assert_eq!(router.expire(now + limits.park_for), 2);
        assert_eq!(router.parked_count(), 0);
    }

    #[test]
    fn every_parked_reply_is_delivered_or_reported_dropped_once() {
        let now = Instant::now();
        let limits = RouterLimits {
            max_parked: 100,
            ..RouterLimits::default()
        };
        let mut router = Router::new(limits);
        let (mut parked, mut delivered, mut dropped) = (0u64, 0u64, 0u64);
        for i in 0..10_000u16 {
            let at = now + Duration::from_millis(u64::from(i));
            dropped += router.park(flow(i % 700), i, at);
            parked += 1;
            if i % 13 == 0 {
                delivered += router.register(flow(i % 700), 1, at).unwrap().len() as u64;
                router.unregister(flow(i % 700));
            }
            if i % 1000 == 0 {
                dropped += router.expire(at);
            }
        }
        let left = router.parked_count() as u64;
        assert!(left > 0 && left <= 100, "{left}");
        assert_eq!(router.drop_parked(), left);
        dropped += left;
        assert_eq!(parked, delivered + dropped);
        assert_eq!(router.parked_count(), 0);
        assert!(!router.has_parked(&flow(1)));
    }

    #[test]
    fn closed_connections_and_idle_routes_are_forgotten() {
        let now = Instant::now();
        let mut router: Router<()> = Router::new(RouterLimits::default());
        router.register(flow(1), 1, now).unwrap();
        router.register(flow(2), 2, now).unwrap();
        router.drop_connection(1);
        assert_eq!(router.owner(flow(1), now), None);
        assert_eq!(router.owner(flow(2), now), Some(2));
        router.expire(now + RouterLimits::default().idle_route);
        assert_eq!(router.route_count(), 0);
    }

    #[test]
    fn a_flood_of_replies_for_unknown_flows_stays_within_the_park() {
        let now = Instant::now();
        let limits = RouterLimits {
            max_parked: 1000,
            ..RouterLimits::default()
        };
        let mut router = Router::new(limits);
        router.park(flow(1), 0u32, now);
        for i in 0..100_000u32 {
            router.park(flow(2 + (i % 50_000) as u16), i, now);
            // A registration now and then takes its replies out of the middle.
            if i % 97 == 0 {
                router
                    .register(flow(2 + (i % 50_000) as u16), 1, now)
                    .unwrap();
            }
        }
        assert!(router.parked_count() <= 1000, "{}", router.parked_count());
        assert!(router.park_order.len() <= 1000);
        assert!(router.parked.len() <= 1000);
        assert_eq!(
            router.register(flow(1), 1, now),
            Ok(vec![]),
            "the oldest made room"
        );
        router.expire(now + limits.park_for);
        assert_eq!(router.parked_count(), 0);
        assert!(router.parked.is_empty() && router.park_order.is_empty());
    }

    #[test]
    fn a_full_table_refuses_new_flows_and_keeps_serving_its_own() {
        let now = Instant::now();
        let limits = RouterLimits {
            max_routes: 2,
            ..RouterLimits::default()
        };
        let mut router: Router<()> = Router::new(limits);
        router.register(flow(1), 1, now).unwrap();
        router.register(flow(2), 1, now).unwrap();
        assert_eq!(router.register(flow(3), 1, now), Err(TableFull));
        assert_eq!(
            router.register(flow(2), 2, now),
            Ok(vec![]),
            "a known flow moves"
        );
        assert_eq!(router.owner(flow(2), now), Some(2));
    }
}
