//! Every copy connection and the routing table between them, owned by the event loop's one
//! thread: replies come in from the sources, each goes into the batch of the connection that
//! registered its flow, and once per loop turn every batch goes out.
//!
//! No locks and no threads. Does no polling itself: the event loop says which connection is
//! readable and when a turn ends. Time is passed in.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::connection::{ConnectionLimits, CopyConnection, PAYLOAD_PREFIX, Queued, ReadOutcome};
use super::router::{ConnId, Router, RouterLimits};
use crate::packet::{Flow, HeaderSplit};
use crate::proto::{CopyMessage, MAX_HEADERS_LEN, RegKind};
use crate::stats::{Counter, Counters};

/// How long a new connection has to send its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// A reply kept until its flow is registered: the start of the captured IP packet.
#[derive(Debug)]
pub struct ParkedReply {
    packet: Vec<u8>,
    timestamp_us: u64,
}

/// The copy connections of one intercept and who owns which flow.
pub struct Switchboard {
    router: Router<ParkedReply>,
    connections: HashMap<ConnId, CopyConnection>,
    next_conn: ConnId,
    limits: ConnectionLimits,
    counters: Arc<Counters>,
}

impl Switchboard {
    pub fn new(limits: ConnectionLimits, counters: Arc<Counters>) -> Self {
        Switchboard {
            router: Router::new(RouterLimits::default()),
            connections: HashMap::new(),
            next_conn: 0,
            limits,
            counters,
        }
    }

    /// Takes over an accepted copy connection.
    pub fn connect(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        now: Instant,
    ) -> io::Result<ConnId> {
        let connection = CopyConnection::new(stream, peer, now)?;
        self.next_conn += 1;
        self.connections.insert(self.next_conn, connection);
        Ok(self.next_conn)
    }

    /// The sockets to poll: each connection's id, descriptor and whether it waits to write.
    pub fn poll_interest(&self) -> impl Iterator<Item = (ConnId, RawFd, bool)> + '_ {
        self.connections
            .iter()
            .map(|(&id, connection)| (id, connection.as_raw_fd(), connection.wants_write()))
    }

    /// How many copy connections are open.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// A reply a source saw: `packet` is the captured IP packet (possibly cut short),
    /// `reply` its headers as the packet model split them.
    pub fn on_reply(
        &mut self,
        packet: &[u8],
        reply: &HeaderSplit<'_>,
        timestamp_us: u64,
        now: Instant,
    ) {
        let flow = Flow {
            client: reply.dst,
            target: reply.src,
        };
        match self.router.owner(flow, now) {
            Some(conn) => self.deliver(conn, reply, timestamp_us),
            // A SYN-ACK or RST can overtake its registration; park those (as TCPCopy does).
            None if reply.flags.rst() || (reply.flags.syn() && reply.flags.ack()) => {
                let keep = packet.len().min(MAX_HEADERS_LEN + PAYLOAD_PREFIX);
                let parked = ParkedReply {
                    packet: packet[..keep].to_vec(),
                    timestamp_us,
                };
                self.router.park(flow, parked, now);
            }
            None => self.counters.add(Counter::RepliesUnrouted, 1),
        }
    }

    fn deliver(&mut self, conn: ConnId, reply: &HeaderSplit<'_>, timestamp_us: u64) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            self.counters.add(Counter::RepliesUnrouted, 1);
            return;
        };
        match connection.queue_reply(reply, timestamp_us, &self.limits) {
            Queued::Batched => self.counters.add(Counter::RepliesRouted, 1),
            Queued::Dropped => self.counters.add(Counter::RepliesDroppedSlowPeer, 1),
            Queued::Stuck => {
                self.counters.add(Counter::RepliesDroppedSlowPeer, 1);
                // The copy reconnects and registers its flows again.
                log::warn!(
                    "copy {} has read nothing for {} replies; closing it",
                    connection.peer(),
                    self.limits.slow_peer_replies
                );
                self.close(conn);
            }
            Queued::Unsendable => self.counters.add(Counter::RepliesUnrouted, 1),
        }
    }

    /// `conn`'s socket is readable: takes what it sent and acts on every whole message.
    pub fn on_readable(&mut self, conn: ConnId, scratch: &mut [u8], now: Instant) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        let peer = connection.peer();
        match connection.read_available(scratch) {
            Ok(ReadOutcome::Open) => {}
            Ok(ReadOutcome::Closed) => {
                log::info!("copy {peer} disconnected");
                return self.close(conn);
            }
            Err(err) => {
                log::warn!("copy {peer}: reading failed: {err}");
                return self.close(conn);
            }
        }
        loop {
            let Some(connection) = self.connections.get_mut(&conn) else {
                return;
            };
            match connection.next_message() {
                Ok(Some(message)) => self.on_message(conn, message, now),
                Ok(None) => return,
                Err(err) => {
                    log::warn!("copy {peer}: bad data: {err}");
                    return self.close(conn);
                }
            }
        }
    }

    /// Acts on one message from `conn`.
    pub fn on_message(&mut self, conn: ConnId, message: CopyMessage, now: Instant) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        match message {
            CopyMessage::Hello { version, .. } if connection.awaits_hello_since().is_some() => {
                log::info!(
                    "copy {} connected, protocol version {}",
                    connection.peer(),
                    version.number()
                );
                connection.start(version);
            }
            CopyMessage::Hello { .. } => log::debug!("ignoring a repeated hello"),
            CopyMessage::Instance(id) => connection.set_instance(id),
            CopyMessage::Registration(registration) => {
                let flow = Flow {
                    client: registration.client,
                    target: registration.target,
                };
                match registration.kind {
                    RegKind::Add => {
                        self.counters.add(Counter::FlowsRegistered, 1);
                        self.register(conn, flow, now);
                    }
                    RegKind::Del => self.router.unregister(flow),
                }
            }
            CopyMessage::Unknown { frame_type, .. } => {
                log::debug!("skipping a frame of unknown type {frame_type}");
            }
        }
    }

    /// `conn` owns `flow`; replies parked for it join this turn's batch. Unless another copy
    /// process holds it: two copies replaying the same client onto the same 4-tuple send
    /// the target the same SYN, so only one of them can have the flow, and the other is told
    /// to move. (A later registration of the same process takes the flow over: a copy
    /// that reconnected.)
    fn register(&mut self, conn: ConnId, flow: Flow, now: Instant) {
        if let Some(holder) = self.router.registered_by(&flow)
            && self.other_processes(holder, conn)
        {
            self.counters.add(Counter::FlowsHeldByOtherCopy, 1);
            if let Some(connection) = self.connections.get_mut(&conn) {
                connection.queue_flow_taken(&flow);
            }
            return;
        }
        for parked in self.router.register(flow, conn, now) {
            match crate::packet::split_ip_headers(&parked.packet) {
                Ok(reply) => self.deliver(conn, &reply, parked.timestamp_us),
                Err(_) => self.counters.add(Counter::Malformed, 1),
            }
        }
    }

    /// Whether connections `a` and `b` belong to two different copy processes (both live and
    /// both said which they are).
    fn other_processes(&self, a: ConnId, b: ConnId) -> bool {
        let instance = |conn| {
            self.connections
                .get(&conn)
                .and_then(CopyConnection::instance)
        };
        matches!((instance(a), instance(b)), (Some(a), Some(b)) if a != b)
    }

    /// Ends a loop turn: every connection writes its batch (or what its socket takes of it).
    pub fn end_turn(&mut self) {
        let failed: Vec<ConnId> = self
            .connections
            .iter_mut()
            .filter_map(|(&id, connection)| match connection.flush() {
                Ok(()) => None,
                Err(err) => {
                    log::warn!("copy {}: sending replies failed: {err}", connection.peer());
                    Some(id)
                }
            })
            .collect();
        for conn in failed {
            self.close(conn);
        }
    }

    /// Expires parked replies, idle routes and connections that never said hello.
    pub fn expire(&mut self, now: Instant) {
        self.router.expire(now);
        let silent: Vec<ConnId> = self
            .connections
            .iter()
            .filter(|(_, connection)| {
                connection
                    .awaits_hello_since()
                    .is_some_and(|since| now.saturating_duration_since(since) >= HELLO_TIMEOUT)
            })
            .map(|(&id, _)| id)
            .collect();
        for conn in silent {
            log::warn!("copy connection {conn} sent no hello in {HELLO_TIMEOUT:?}; closing it");
            self.close(conn);
        }
    }

    /// Forgets a connection and every flow it registered.
    fn close(&mut self, conn: ConnId) {
        self.connections.remove(&conn);
        self.router.drop_connection(conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{self, Segment, SeqNum, TcpFlags, TcpOptions};
    use crate::proto::Version;
    use std::io::Read;
    use std::net::TcpListener;

    const CLIENT: &str = "203.0.113.5:40000";
    const TARGET: &str = "198.51.100.30:80";

    fn reply(flags: TcpFlags) -> Vec<u8> {
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
        bytes
    }

    fn on_reply(board: &mut Switchboard, bytes: &[u8]) {
        let split = packet::split_ip_headers(bytes).unwrap();
        board.on_reply(bytes, &split, 0, Instant::now());
    }

    /// A switchboard and a connected pair: the copy's end, and its id on the board after a
    /// version-6 hello.
    fn board_with_copies(
        limits: ConnectionLimits,
        copies: usize,
    ) -> (Switchboard, Vec<(TcpStream, ConnId)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut board = Switchboard::new(limits, Arc::new(Counters::default()));
        let now = Instant::now();
        let pairs = (0..copies)
            .map(|_| {
                let copy = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                let (stream, peer) = listener.accept().unwrap();
                let conn = board.connect(stream, peer, now).unwrap();
                let hello = CopyMessage::Hello {
                    offered: 6,
                    version: Version::V6,
                };
                board.on_message(conn, hello, now);
                (copy, conn)
            })
            .collect();
        (board, pairs)
    }

    fn register(board: &mut Switchboard, conn: ConnId) {
        let registration =
            crate::proto::Registration::add(CLIENT.parse().unwrap(), TARGET.parse().unwrap());
        board.on_message(
            conn,
            CopyMessage::Registration(registration),
            Instant::now(),
        );
    }

    /// Reads one v6 combined frame of one message from `copy`.
    fn read_frame(copy: &mut TcpStream) -> Vec<u8> {
        copy.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut frame = vec![0; 2 + 64];
        copy.read_exact(&mut frame).unwrap();
        frame
    }

    #[test]
    fn replies_go_to_the_connection_that_registered_the_flow() {
        let (mut board, mut copies) = board_with_copies(ConnectionLimits::default(), 2);
        register(&mut board, copies[0].1);
        let bytes = reply(TcpFlags::ACK);
        on_reply(&mut board, &bytes);
        board.end_turn();
        let frame = read_frame(&mut copies[0].0);
        assert_eq!(&frame[..2], &[0, 1]);
        assert_eq!(&frame[2..42], &bytes[..]);
        copies[1].0.set_nonblocking(true).unwrap();
        assert!(
            copies[1].0.read(&mut [0; 8]).is_err(),
            "the other copy gets nothing"
        );
        assert_eq!(board.counters.get(Counter::RepliesRouted), 1);
        assert_eq!(board.counters.get(Counter::FlowsRegistered), 1);
    }

    #[test]
    fn a_flow_another_copy_process_holds_stays_with_it_and_the_later_one_is_told() {
        let (mut board, mut copies) = board_with_copies(ConnectionLimits::default(), 3);
        let now = Instant::now();
        board.on_message(copies[0].1, CopyMessage::Instance(1), now);
        board.on_message(copies[1].1, CopyMessage::Instance(2), now);
        board.on_message(copies[2].1, CopyMessage::Instance(1), now);
        register(&mut board, copies[0].1);
        register(&mut board, copies[1].1);
        assert_eq!(board.counters.get(Counter::FlowsHeldByOtherCopy), 1);
        assert_eq!(board.router.registered_by(&flow()), Some(copies[0].1));
        board.end_turn();
        let mut taken = [0; 4];
        copies[1]
            .0
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        copies[1].0.read_exact(&mut taken).unwrap();
        assert_eq!(&taken[..2], &[0, 4], "a flow-taken frame");
        // The same process (a reconnected shard) takes its flow over.
        register(&mut board, copies[2].1);
        assert_eq!(board.router.registered_by(&flow()), Some(copies[2].1));
        assert_eq!(board.counters.get(Counter::FlowsHeldByOtherCopy), 1);
    }

    fn flow() -> Flow {
        Flow {
            client: CLIENT.parse().unwrap(),
            target: TARGET.parse().unwrap(),
        }
    }

    #[test]
    fn replies_of_one_turn_share_a_combined_frame() {
        let (mut board, mut copies) = board_with_copies(ConnectionLimits::default(), 1);
        register(&mut board, copies[0].1);
        let bytes = reply(TcpFlags::ACK);
        for _ in 0..20 {
            on_reply(&mut board, &bytes);
        }
        board.end_turn();
        let copy = &mut copies[0].0;
        copy.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut frames = vec![0; 2 + 16 * 64 + 2 + 4 * 64];
        copy.read_exact(&mut frames).unwrap();
        assert_eq!(&frames[..2], &[0, 16], "a full 1.x frame first");
        assert_eq!(
            &frames[2 + 16 * 64..][..2],
            &[0, 4],
            "then the rest of the turn"
        );
    }

    #[test]
    fn a_syn_ack_ahead_of_its_registration_waits_for_it() {
        let (mut board, mut copies) = board_with_copies(ConnectionLimits::default(), 1);
        let bytes = reply(TcpFlags::SYN | TcpFlags::ACK);
        on_reply(&mut board, &bytes);
        register(&mut board, copies[0].1);
        board.end_turn();
        assert_eq!(&read_frame(&mut copies[0].0)[2..42], &bytes[..]);
    }

    #[test]
    fn unregistered_data_replies_are_counted_not_routed() {
        let (mut board, _copies) = board_with_copies(ConnectionLimits::default(), 1);
        on_reply(&mut board, &reply(TcpFlags::ACK));
        assert_eq!(board.counters.get(Counter::RepliesUnrouted), 1);
    }

    #[test]
    fn a_connection_that_reads_nothing_is_dropped_after_the_limit() {
        let limits = ConnectionLimits {
            outbound_bytes: 4 * 1024,
            slow_peer_replies: 100,
        };
        let (mut board, copies) = board_with_copies(limits, 1);
        register(&mut board, copies[0].1);
        let bytes = reply(TcpFlags::ACK);
        // The copy never reads; its socket buffers fill first, then the outbound buffer.
        let mut turns = 0;
        while board.connection_count() == 1 {
            for _ in 0..64 {
                on_reply(&mut board, &bytes);
            }
            board.end_turn();
            turns += 1;
            assert!(turns < 100_000, "the stuck copy was never closed");
        }
        assert_eq!(
            board.counters.get(Counter::RepliesDroppedSlowPeer),
            limits.slow_peer_replies as u64
        );
        assert_eq!(board.router.route_count(), 0, "its flows are forgotten");
    }

    #[test]
    fn a_silent_connection_is_closed_after_the_hello_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut board =
            Switchboard::new(ConnectionLimits::default(), Arc::new(Counters::default()));
        let _copy = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, peer) = listener.accept().unwrap();
        let now = Instant::now();
        board.connect(stream, peer, now).unwrap();
        board.expire(now + HELLO_TIMEOUT / 2);
        assert_eq!(board.connection_count(), 1);
        board.expire(now + HELLO_TIMEOUT);
        assert_eq!(board.connection_count(), 0);
    }
}
