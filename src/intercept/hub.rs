//! The meeting point of intercept's threads: reply sources hand replies in, copy connections
//! register flows, and the hub routes each reply to the connection that owns its flow without
//! ever blocking the source.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::router::{ConnId, Flow, Router, RouterLimits, Routing};
use crate::packet::Segment;
use crate::stats::{Counter, Counters};

/// A reply as it travels to a copy connection: the start of the IP packet (headers and, if
/// any, a payload prefix) and when intercept saw it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub packet: Vec<u8>,
    pub timestamp_us: u64,
}

/// Replies a connection may have queued before further ones are dropped and counted.
const CONNECTION_QUEUE: usize = 65_536;
/// Reply payload bytes forwarded to copies that speak version 7.
pub const PAYLOAD_PREFIX: usize = 128;
/// The largest IP + TCP headers: an IPv6 header and a TCP header full of options.
const MAX_HEADERS: usize = 40 + 60;

/// Shared state of one intercept process.
pub struct Hub {
    router: Mutex<Router<Reply>>,
    connections: Mutex<HashMap<ConnId, Sender<Reply>>>,
    next_conn: Mutex<ConnId>,
    counters: Arc<Counters>,
}

impl Hub {
    pub fn new(counters: Arc<Counters>) -> Hub {
        Hub {
            router: Mutex::new(Router::new(RouterLimits::default())),
            connections: Mutex::new(HashMap::new()),
            next_conn: Mutex::new(0),
            counters,
        }
    }

    /// A new copy connection: its id and the queue its writer drains.
    pub fn connect(&self) -> (ConnId, Receiver<Reply>) {
        let (tx, rx) = crossbeam_channel::bounded(CONNECTION_QUEUE);
        let id = {
            let mut next = lock(&self.next_conn);
            *next += 1;
            *next
        };
        lock(&self.connections).insert(id, tx);
        (id, rx)
    }

    /// A copy connection closed: forget it and its flows.
    pub fn disconnect(&self, conn: ConnId) {
        lock(&self.connections).remove(&conn);
        lock(&self.router).drop_connection(conn);
    }

    /// `conn` registered a flow; replies parked for it go out now.
    pub fn register(&self, conn: ConnId, client: SocketAddr, target: SocketAddr) {
        let parked = lock(&self.router).register(Flow { client, target }, conn, Instant::now());
        for reply in parked {
            self.deliver(conn, reply);
        }
    }

    /// A copy ended a flow (version 7 only; 1.x never does).
    pub fn unregister(&self, client: SocketAddr, target: SocketAddr) {
        lock(&self.router).unregister(Flow { client, target });
    }

    /// A reply seen by a source: `packet` is the IP packet (possibly cut short), `segment` its
    /// parsed headers.
    pub fn on_reply(&self, packet: &[u8], segment: &Segment) {
        let keep = packet.len().min(MAX_HEADERS + PAYLOAD_PREFIX);
        let reply = Reply {
            packet: packet[..keep].to_vec(),
            timestamp_us: now_us(),
        };
        let flow = Flow {
            client: segment.dst,
            target: segment.src,
        };
        // A SYN-ACK or RST can overtake its registration; park those (as TCPCopy does).
        let parkable = segment.flags.rst() || (segment.flags.syn() && segment.flags.ack());
        let routing = lock(&self.router).route(flow, parkable, reply, Instant::now());
        match routing {
            Routing::To(conn, reply) => self.deliver(conn, reply),
            Routing::Parked => {}
            Routing::Unrouted(_) => self.counters.add(Counter::RepliesUnrouted, 1),
        }
    }

    fn deliver(&self, conn: ConnId, reply: Reply) {
        let connections = lock(&self.connections);
        let Some(queue) = connections.get(&conn) else {
            self.counters.add(Counter::RepliesUnrouted, 1);
            return;
        };
        match queue.try_send(reply) {
            Ok(()) => self.counters.add(Counter::RepliesRouted, 1),
            Err(TrySendError::Full(_)) => self.counters.add(Counter::RepliesDroppedSlowPeer, 1),
            Err(TrySendError::Disconnected(_)) => self.counters.add(Counter::RepliesUnrouted, 1),
        }
    }

    /// Expires parked replies and idle routes; call every second or so.
    pub fn expire(&self) {
        lock(&self.router).expire(Instant::now());
    }

    pub fn connection_count(&self) -> usize {
        lock(&self.connections).len()
    }
}

/// Locks a mutex, carrying on with the data if another thread panicked while holding it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
