//! The meeting point of intercept's threads: reply sources hand replies in, copy connections
//! register flows, and the hub routes each reply to the connection that owns its flow without
//! ever blocking the source.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::router::{ConnId, Router, RouterLimits, Routing};
use crate::packet::{Flow, Segment};
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
/// Replies dropped in a row, queue full, before a connection is given up as stuck.
const SLOW_PEER_LIMIT: usize = CONNECTION_QUEUE;
/// Reply payload bytes forwarded to copies that speak version 7.
pub const PAYLOAD_PREFIX: usize = 128;
/// The largest IP + TCP headers: an IPv6 header and a TCP header full of options.
const MAX_HEADERS: usize = 40 + 60;

/// A copy connection as the hub sees it.
struct Connection {
    queue: Sender<Reply>,
    /// Replies dropped since the queue last accepted one.
    dropped_in_a_row: usize,
}

/// Shared state of one intercept process.
pub struct Hub {
    router: Mutex<Router<Reply>>,
    connections: Mutex<HashMap<ConnId, Connection>>,
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
        lock(&self.connections).insert(
            id,
            Connection {
                queue: tx,
                dropped_in_a_row: 0,
            },
        );
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
        let flow = Flow::of_reply(segment);
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
        let mut connections = lock(&self.connections);
        let Some(connection) = connections.get_mut(&conn) else {
            self.counters.add(Counter::RepliesUnrouted, 1);
            return;
        };
        match connection.queue.try_send(reply) {
            Ok(()) => {
                connection.dropped_in_a_row = 0;
                self.counters.add(Counter::RepliesRouted, 1);
            }
            Err(TrySendError::Full(_)) => {
                self.counters.add(Counter::RepliesDroppedSlowPeer, 1);
                connection.dropped_in_a_row += 1;
                if connection.dropped_in_a_row >= SLOW_PEER_LIMIT {
                    // Closing its queue ends the connection's writer; the copy reconnects
                    // and registers its flows again.
                    log::warn!(
                        "copy connection {conn} has read nothing for {SLOW_PEER_LIMIT} replies; closing it"
                    );
                    connections.remove(&conn);
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{self, SeqNum, TcpFlags, TcpOptions};

    const CLIENT: &str = "203.0.113.5:40000";
    const TARGET: &str = "198.51.100.30:80";

    fn reply(flags: TcpFlags) -> (Vec<u8>, Segment) {
        let segment = Segment {
            src: TARGET.parse().unwrap(),
            dst: CLIENT.parse().unwrap(),
            seq: SeqNum(7),
            ack: SeqNum(8),
            flags,
            window: 100,
            options: TcpOptions::default(),
            ip_id: 0,
            ttl: 64,
            payload_len: 0,
        };
        let mut bytes = Vec::new();
        packet::emit_ip(&segment, &[], &mut bytes).unwrap();
        (bytes, segment)
    }

    fn hub() -> Hub {
        Hub::new(Arc::new(Counters::default()))
    }

    #[test]
    fn replies_go_to_the_connection_that_registered_the_flow() {
        let hub = hub();
        let (a, a_rx) = hub.connect();
        let (_b, b_rx) = hub.connect();
        hub.register(a, CLIENT.parse().unwrap(), TARGET.parse().unwrap());
        let (bytes, segment) = reply(TcpFlags::ACK);
        hub.on_reply(&bytes, &segment);
        assert_eq!(a_rx.try_recv().unwrap().packet, bytes);
        assert!(b_rx.try_recv().is_err());
        assert_eq!(hub.counters.get(Counter::RepliesRouted), 1);
    }

    #[test]
    fn a_syn_ack_ahead_of_its_registration_waits_for_it() {
        let hub = hub();
        let (conn, rx) = hub.connect();
        let (bytes, segment) = reply(TcpFlags::SYN | TcpFlags::ACK);
        hub.on_reply(&bytes, &segment);
        assert!(rx.try_recv().is_err());
        hub.register(conn, CLIENT.parse().unwrap(), TARGET.parse().unwrap());
        assert_eq!(rx.try_recv().unwrap().packet, bytes);
    }

    #[test]
    fn unregistered_data_replies_are_counted_not_routed() {
        let hub = hub();
        let (bytes, segment) = reply(TcpFlags::ACK);
        hub.on_reply(&bytes, &segment);
        assert_eq!(hub.counters.get(Counter::RepliesUnrouted), 1);
    }

    #[test]
    fn a_connection_that_reads_nothing_is_dropped_after_the_limit() {
        let hub = hub();
        let (conn, rx) = hub.connect();
        hub.register(conn, CLIENT.parse().unwrap(), TARGET.parse().unwrap());
        let (bytes, segment) = reply(TcpFlags::ACK);
        for _ in 0..CONNECTION_QUEUE + SLOW_PEER_LIMIT {
            hub.on_reply(&bytes, &segment);
        }
        assert_eq!(hub.connection_count(), 0);
        assert_eq!(
            hub.counters.get(Counter::RepliesDroppedSlowPeer),
            SLOW_PEER_LIMIT as u64
        );
        assert_eq!(rx.len(), CONNECTION_QUEUE);
    }
}
