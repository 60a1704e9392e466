//! Which copy connection owns which flow.
//!
//! copy registers every flow it opens (CLIENT_ADD); intercept routes each reply to the
//! connection that registered its flow. A SYN-ACK or RST can race ahead of its registration,
//! so such replies are parked for a while (TCPCopy parks them for 30 s) and delivered when
//! the registration arrives. Pure: time is an argument.

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
}

impl Default for RouterLimits {
    fn default() -> Self {
        RouterLimits {
            park_for: Duration::from_secs(30),
            max_parked: 65_536,
            idle_route: Duration::from_secs(600),
        }
    }
}

#[derive(Debug)]
struct Route {
    conn: ConnId,
    last_used: Instant,
}

#[derive(Debug)]
struct Parked<R> {
    at: Instant,
    flow: Flow,
    reply: R,
}

/// The routing table, generic over the parked reply type `R`.
#[derive(Debug)]
pub struct Router<R> {
    limits: RouterLimits,
    routes: HashMap<Flow, Route>,
    parked: VecDeque<Parked<R>>,
    /// Parked replies dropped because they waited too long or the park was full.
    expired: u64,
}

impl<R> Router<R> {
    pub fn new(limits: RouterLimits) -> Router<R> {
        Router {
            limits,
            routes: HashMap::new(),
            parked: VecDeque::new(),
            expired: 0,
        }
    }

    /// `conn` owns `flow` from now on (a later registration by another copy takes it over).
    /// Returns the replies that were parked waiting for it, oldest first.
    pub fn register(&mut self, flow: Flow, conn: ConnId, now: Instant) -> Vec<R> {
        self.routes.insert(
            flow,
            Route {
                conn,
                last_used: now,
            },
        );
        if !self.parked.iter().any(|p| p.flow == flow) {
            return Vec::new();
        }
        let (waiting, rest) = std::mem::take(&mut self.parked)
            .into_iter()
            .partition::<VecDeque<_>, _>(|p| p.flow == flow);
        self.parked = rest;
        waiting.into_iter().map(|p| p.reply).collect()
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

    /// Keeps a reply of an unregistered flow until its registration arrives (a SYN-ACK or
    /// RST that overtook it); the oldest parked reply makes room when the park is full.
    pub fn park(&mut self, flow: Flow, reply: R, now: Instant) {
        if self.parked.len() >= self.limits.max_parked {
            self.parked.pop_front();
            self.expired += 1;
        }
        self.parked.push_back(Parked {
            at: now,
            flow,
            reply,
        });
    }

    /// Forgets one flow.
    pub fn unregister(&mut self, flow: Flow) {
        self.routes.remove(&flow);
    }

    /// Forgets every flow of a connection that closed.
    pub fn drop_connection(&mut self, conn: ConnId) {
        self.routes.retain(|_, route| route.conn != conn);
    }

    /// Drops parked replies and idle routes past their time; call now and then.
    pub fn expire(&mut self, now: Instant) {
        while self
            .parked
            .front()
            .is_some_and(|p| now.saturating_duration_since(p.at) >= self.limits.park_for)
        {
            self.parked.pop_front();
            self.expired += 1;
        }
        let idle = self.limits.idle_route;
        self.routes
            .retain(|_, route| now.saturating_duration_since(route.last_used) < idle);
    }

    /// Parked replies dropped so far.
    pub fn expired(&self) -> u64 {
        self.expired
    }

    pub fn route_count(&self) -> usize {
        self.routes.len()
    }

    pub fn parked_count(&self) -> usize {
        self.parked.len()
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
        assert!(router.register(flow(1), 7, now).is_empty());
        assert_eq!(router.owner(flow(1), now), Some(7));
        assert_eq!(router.owner(flow(2), now), None);
    }

    #[test]
    fn syn_ack_before_registration_is_delivered_on_registration() {
        let now = Instant::now();
        let mut router = Router::new(RouterLimits::default());
        router.park(flow(1), "syn-ack", now);
        router.park(flow(2), "other", now);
        assert_eq!(router.register(flow(1), 3, now), vec!["syn-ack"]);
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
        for port in 1..=3 {
            router.park(flow(port), port, now);
        }
        assert_eq!(router.parked_count(), 2);
        assert_eq!(router.expired(), 1);
        router.expire(now + limits.park_for);
        assert_eq!(router.parked_count(), 0);
        assert_eq!(router.expired(), 3);
    }

    #[test]
    fn closed_connections_and_idle_routes_are_forgotten() {
        let now = Instant::now();
        let mut router: Router<()> = Router::new(RouterLimits::default());
        router.register(flow(1), 1, now);
        router.register(flow(2), 2, now);
        router.drop_connection(1);
        assert_eq!(router.owner(flow(1), now), None);
        assert_eq!(router.owner(flow(2), now), Some(2));
        router.expire(now + RouterLimits::default().idle_route);
        assert_eq!(router.route_count(), 0);
    }
}
