//! Every copy connection and the routing table between them, owned by the event loop's one
//! thread: replies come in from the sources, each goes into the batch of the connection that
//! registered its flow, and once per loop turn every batch goes out.
//!
//! A connection counts only once its hello's handshake has opened it (with `--secret-file`,
//! once the copy has proven the secret): before that nothing it sends is registered and no
//! reply reaches it. Connections that refuse or fail the handshake, send garbage or stay
//! silent are closed, counted and logged rate-limited ([`Incidents`]); at most
//! [`ConnectionLimits::unopened`] wait for their hello at once, the oldest making room.
//!
//! No locks and no threads. Does no polling itself: the event loop says which connection is
//! readable and when a turn ends. Time is passed in.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::connection::{ConnectionLimits, CopyConnection, PAYLOAD_PREFIX, Queued, ReadOutcome};
use super::incidents::Incidents;
use super::router::{ConnId, Router, RouterLimits};
use crate::packet::{Flow, HeaderSplit};
use crate::proto::{
    Admission, CopyMessage, HandshakeError, InterceptHandshake, MAX_HEADERS_LEN, NONCE_LEN,
    RegKind, Secret,
};
use crate::stats::{Counter, Counters};

/// How long a new connection has to open: send its hello (and prove the secret).
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// Connections in accept order, for making room among those not open yet; ids of
    /// connections that opened or closed since are pruned when room is needed.
    unopened: VecDeque<ConnId>,
    next_conn: ConnId,
    limits: ConnectionLimits,
    /// What copies must prove at the hello.
    secret: Option<Secret>,
    counters: Arc<Counters>,
    incidents: Incidents,
    /// Scratch for discarding what refused connections sent.
    discard: Box<[u8]>,
}

impl Switchboard {
    pub fn new(limits: ConnectionLimits, counters: Arc<Counters>, secret: Option<Secret>) -> Self {
        Switchboard {
            router: Router::new(RouterLimits::default()),
            connections: HashMap::new(),
            unopened: VecDeque::new(),
            next_conn: 0,
            limits,
            secret,
            incidents: Incidents::new(Arc::clone(&counters)),
            counters,
            discard: vec![0; 4096].into_boxed_slice(),
        }
    }

    /// Takes over an accepted copy connection; when too many wait for their hello, the
    /// oldest of them is closed to make room.
    pub fn connect(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        now: Instant,
    ) -> io::Result<ConnId> {
        let nonce = match self.secret {
            Some(_) => fresh_nonce()?,
            None => [0; NONCE_LEN],
        };
        let handshake = InterceptHandshake::new(self.secret.clone(), nonce, now, HELLO_TIMEOUT);
        let connection = CopyConnection::new(stream, peer, handshake)?;
        self.make_room_for_one_more_unopened(now);
        self.next_conn += 1;
        self.connections.insert(self.next_conn, connection);
        self.unopened.push_back(self.next_conn);
        Ok(self.next_conn)
    }

    fn make_room_for_one_more_unopened(&mut self, now: Instant) {
        let limit = self.limits.unopened.max(1);
        if self.unopened.len() < limit {
            return;
        }
        let connections = &self.connections;
        self.unopened
            .retain(|id| connections.get(id).is_some_and(|c| !c.is_open()));
        while self.unopened.len() >= limit {
            let Some(oldest) = self.unopened.pop_front() else {
                return;
            };
            let peer = self.connections.get(&oldest).map(CopyConnection::peer);
            self.incidents.report(Counter::ConnectionsSilent, now, || {
                format!(
                    "{limit} copy connections wait for their hello: closing the oldest, from                      {peer:?}, to make room"
                )
            });
            self.close(oldest);
        }
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
            // A SYN-ACK or RST can overtake its registration; park those (as TCPCopy does),
            // and the replies behind them, which a busy turn can read before the
            // registration that arrived first.
            None if reply.flags.rst()
                || (reply.flags.syn() && reply.flags.ack())
                || self.router.has_parked(&flow) =>
            {
                let keep = packet.len().min(MAX_HEADERS_LEN + PAYLOAD_PREFIX);
                let parked = ParkedReply {
                    packet: packet[..keep].to_vec(),
                    timestamp_us,
                };
                self.counters.add(Counter::RepliesParked, 1);
                let dropped = self.router.park(flow, parked, now);
                self.counters.add(Counter::ParkedRepliesDropped, dropped);
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
        let open = connection.is_open();
        match connection.read_available(scratch) {
            Ok(ReadOutcome::Open) => {}
            Ok(ReadOutcome::Closed) if open => {
                log::info!("copy {peer} disconnected");
                return self.close(conn);
            }
            // Whatever it sent, it did not even finish its hello.
            Ok(ReadOutcome::Closed) => {
                log::debug!("copy connection {peer} closed before it opened");
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
                Ok(Some(message)) => match connection.admit(message) {
                    Admission::Deliver(message) => self.on_message(conn, message, now),
                    Admission::Held => {}
                    Admission::Opened {
                        offered,
                        version,
                        authenticated,
                    } => {
                        log::info!(
                            "copy {peer} connected, protocol version {}{}{}",
                            version.number(),
                            if offered != version.number() {
                                format!(" (it offered {offered})")
                            } else {
                                String::new()
                            },
                            if authenticated { ", secret proven" } else { "" }
                        );
                        connection.start(version);
                    }
                    Admission::Refused(err) => return self.refuse(conn, &err, now),
                },
                Ok(None) => return,
                Err(err) => {
                    self.incidents.report(Counter::ConnectionsMalformed, now, || {
                        format!("copy {peer} sent bytes that are not tcpcopy's protocol: {err}; closing it")
                    });
                    return self.close(conn);
                }
            }
        }
    }

    /// Closes a connection whose handshake failed, after writing the refusal it queued.
    fn refuse(&mut self, conn: ConnId, err: &HandshakeError, now: Instant) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        let peer = connection.peer();
        connection.close_gracefully(&mut self.discard);
        let counter = match err {
            HandshakeError::NoHello { .. } => Counter::ConnectionsSilent,
            _ => Counter::ConnectionsUnauthenticated,
        };
        self.incidents
            .report(counter, now, || format!("copy {peer} refused: {err}"));
        self.close(conn);
    }

    /// Acts on one message from `conn`.
    pub fn on_message(&mut self, conn: ConnId, message: CopyMessage, now: Instant) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        match message {
            CopyMessage::Hello { .. } => log::debug!("ignoring a repeated hello"),
            // The handshake takes these; nothing is left to do once it has opened.
            CopyMessage::Response(_) | CopyMessage::Refusal(_) => {}
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
        let parked = match self.router.register(flow, conn, now) {
            Ok(parked) => parked,
            Err(_full) => {
                self.incidents
                    .report(Counter::RegistrationsOverLimit, now, || {
                        format!(
                            "the routing table is full ({} flows): registrations of new flows are \
                         refused until routes expire",
                            self.router.route_count()
                        )
                    });
                return;
            }
        };
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.set_registered();
        }
        for parked in parked {
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

    /// Expires parked replies, idle routes and connections that did not open in time.
    pub fn expire(&mut self, now: Instant) {
        let dropped = self.router.expire(now);
        self.counters.add(Counter::ParkedRepliesDropped, dropped);
        let timed_out: Vec<(ConnId, HandshakeError)> = self
            .connections
            .iter_mut()
            .filter_map(|(&id, connection)| Some((id, connection.on_timeout(now)?)))
            .collect();
        for (conn, err) in timed_out {
            self.refuse(conn, &err, now);
        }
    }

    /// Drops the replies still waiting for their registration, counted (intercept stops).
    pub fn drop_parked_replies(&mut self) {
        let dropped = self.router.drop_parked();
        self.counters.add(Counter::ParkedRepliesDropped, dropped);
    }

    /// Forgets a connection and every flow it registered.
    fn close(&mut self, conn: ConnId) {
        if let Some(connection) = self.connections.remove(&conn)
            && connection.has_registered()
        {
            self.router.drop_connection(conn);
        }
    }
}

/// A nonce for one connection's challenge, from the kernel's CSPRNG.
fn fresh_nonce() -> io::Result<[u8; NONCE_LEN]> {
    let mut nonce = [0; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|err| io::Error::other(err.to_string()))?;
    Ok(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{self, Segment, SeqNum, TcpFlags, TcpOptions};
    use crate::proto::Version;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    const CLIENT: &str = "203.0.113.5:40000";
    const TARGET: &str = "198.51.100.30:80";

    fn reply(flags: TcpFlags) -> Vec<u8> {
        reply_to(CLIENT.parse().unwrap(), flags)
    }

    fn reply_to(client: SocketAddr, flags: TcpFlags) -> Vec<u8> {
        let segment = Segment {
            src: TARGET.parse().unwrap(),
            dst: client,
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
        let mut board = Switchboard::new(limits, Arc::new(Counters::default()), None);
        let pairs = (0..copies)
            .map(|_| {
                let (mut copy, conn) = connect(&mut board, &listener);
                let mut hello = Vec::new();
                crate::proto::encode_hello(Version::V6, &mut hello);
                copy.write_all(&hello).unwrap();
                read_until(&mut board, conn, |board| {
                    board
                        .connections
                        .get(&conn)
                        .is_some_and(CopyConnection::is_open)
                });
                (copy, conn)
            })
            .collect();
        (board, pairs)
    }

    fn connect(board: &mut Switchboard, listener: &TcpListener) -> (TcpStream, ConnId) {
        let copy = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, peer) = listener.accept().unwrap();
        (copy, board.connect(stream, peer, Instant::now()).unwrap())
    }

    /// Lets the board read `conn` until `done` holds (what the copy wrote has arrived).
    fn read_until(board: &mut Switchboard, conn: ConnId, done: impl Fn(&Switchboard) -> bool) {
        let mut scratch = [0u8; 4096];
        for _ in 0..500 {
            board.on_readable(conn, &mut scratch, Instant::now());
            if done(board) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the board never got there");
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
    fn replies_behind_a_parked_syn_ack_wait_with_it_in_order() {
        let (mut board, mut copies) = board_with_copies(ConnectionLimits::default(), 1);
        let syn_ack = reply(TcpFlags::SYN | TcpFlags::ACK);
        let ack = reply(TcpFlags::ACK);
        on_reply(&mut board, &syn_ack);
        on_reply(&mut board, &ack);
        assert_eq!(board.counters.get(Counter::RepliesUnrouted), 0);
        register(&mut board, copies[0].1);
        board.end_turn();
        let copy = &mut copies[0].0;
        copy.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut frame = vec![0; 2 + 2 * 64];
        copy.read_exact(&mut frame).unwrap();
        assert_eq!(&frame[..2], &[0, 2], "one frame of both replies");
        assert_eq!(&frame[2..42], &syn_ack[..]);
        assert_eq!(&frame[2 + 64..][..40], &ack[..]);
        assert_eq!(board.counters.get(Counter::RepliesRouted), 2);
    }

    #[test]
    fn unregistered_data_replies_are_counted_not_routed() {
        let (mut board, _copies) = board_with_copies(ConnectionLimits::default(), 1);
        on_reply(&mut board, &reply(TcpFlags::ACK));
        assert_eq!(board.counters.get(Counter::RepliesUnrouted), 1);
    }

    #[test]
    fn a_flood_of_replies_for_unknown_flows_is_counted_reply_by_reply() {
        let (mut board, mut copies) = board_with_copies(ConnectionLimits::default(), 1);
        let max_parked = RouterLimits::default().max_parked;
        // More SYN-ACKs and RSTs than the park holds, each of its own flow, and data replies
        // of flows nothing waits for; the copy's own flow among them.
        let flood = max_parked + 1000;
        let stranger = |n: usize| {
            SocketAddr::from(([203, 0, 113, 1 + (n % 254) as u8], 1024 + (n / 254) as u16))
        };
        let now = Instant::now();
        for n in 0..flood {
            let flags = match n % 2 {
                0 => TcpFlags::SYN | TcpFlags::ACK,
                _ => TcpFlags::RST | TcpFlags::ACK,
            };
            let bytes = reply_to(stranger(n), flags);
            board.on_reply(&bytes, &packet::split_ip_headers(&bytes).unwrap(), 0, now);
        }
        let syn_ack = reply(TcpFlags::SYN | TcpFlags::ACK);
        on_reply(&mut board, &syn_ack);
        for n in 0..100 {
            let bytes = reply_to(stranger(flood + n), TcpFlags::ACK | TcpFlags::PSH);
            board.on_reply(&bytes, &packet::split_ip_headers(&bytes).unwrap(), 0, now);
        }
        register(&mut board, copies[0].1);
        board.end_turn();
        assert_eq!(
            &read_frame(&mut copies[0].0)[2..42],
            &syn_ack[..],
            "the copy's SYN-ACK made it"
        );
        let counters = Arc::clone(&board.counters);
        let count = |counter| counters.get(counter);
        assert_eq!(count(Counter::RepliesParked), flood as u64 + 1);
        assert_eq!(
            count(Counter::ParkedRepliesDropped),
            1001,
            "the oldest made room"
        );
        assert_eq!(count(Counter::RepliesUnrouted), 100);
        assert_eq!(count(Counter::RepliesRouted), 1);
        board.expire(now + RouterLimits::default().park_for / 2);
        board.drop_parked_replies();
        assert_eq!(
            count(Counter::ParkedRepliesDropped),
            flood as u64,
            "every flood reply parked was dropped, once"
        );
        assert_eq!(board.router.parked_count(), 0);
    }

    #[test]
    fn a_connection_that_reads_nothing_is_dropped_after_the_limit() {
        let limits = ConnectionLimits {
            outbound_bytes: 4 * 1024,
            slow_peer_replies: 100,
            ..ConnectionLimits::default()
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
        let mut board = Switchboard::new(
            ConnectionLimits::default(),
            Arc::new(Counters::default()),
            None,
        );
        let _copy = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, peer) = listener.accept().unwrap();
        let now = Instant::now();
        board.connect(stream, peer, now).unwrap();
        board.expire(now + HELLO_TIMEOUT / 2);
        assert_eq!(board.connection_count(), 1);
        board.expire(now + HELLO_TIMEOUT);
        assert_eq!(board.connection_count(), 0);
    }

    #[test]
    fn a_copy_with_the_secret_opens_and_one_with_another_is_refused_and_counted() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let secret = crate::proto::Secret::new(b"sixteen bytes or more".to_vec());
        let mut board = Switchboard::new(
            ConnectionLimits::default(),
            Arc::new(Counters::default()),
            secret.clone(),
        );
        let wrong = crate::proto::Secret::new(b"a stranger's guess!!".to_vec());
        for (proof, opens) in [(secret, true), (wrong, false)] {
            let (mut copy, conn) = connect(&mut board, &listener);
            copy.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut hello = Vec::new();
            crate::proto::encode_hello(Version::V7, &mut hello);
            copy.write_all(&hello).unwrap();
            read_until(&mut board, conn, |board| {
                board.connections[&conn].wants_write()
            });
            board.end_turn();
            // The switch marker, then the challenge: 8 + 4 + 33 bytes.
            let mut answer = [0u8; 45];
            copy.read_exact(&mut answer).unwrap();
            let nonce: [u8; NONCE_LEN] = answer[13..].try_into().unwrap();
            let mut response = Vec::new();
            crate::proto::encode_switch(&mut response);
            let mac = proof.unwrap().respond(&nonce);
            response.extend_from_slice(&[0, 7, 0, 32]);
            response.extend_from_slice(&mac);
            copy.write_all(&response).unwrap();
            read_until(&mut board, conn, |board| {
                board
                    .connections
                    .get(&conn)
                    .is_none_or(CopyConnection::is_open)
            });
            assert_eq!(board.connections.contains_key(&conn), opens);
        }
        assert_eq!(board.counters.get(Counter::ConnectionsUnauthenticated), 1);
    }

    #[test]
    fn garbage_closes_only_its_own_connection_and_is_counted() {
        let (mut board, mut copies) = board_with_copies(ConnectionLimits::default(), 1);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (mut stranger, conn) = connect(&mut board, &listener);
        stranger
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        read_until(&mut board, conn, |board| {
            !board.connections.contains_key(&conn)
        });
        assert_eq!(board.counters.get(Counter::ConnectionsMalformed), 1);
        register(&mut board, copies[0].1);
        on_reply(&mut board, &reply(TcpFlags::ACK));
        board.end_turn();
        assert_eq!(
            read_frame(&mut copies[0].0)[..2],
            [0, 1],
            "the copy still gets replies"
        );
    }

    #[test]
    fn the_oldest_connection_without_a_hello_makes_room_for_a_new_one() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let limits = ConnectionLimits {
            unopened: 3,
            ..ConnectionLimits::default()
        };
        let mut board = Switchboard::new(limits, Arc::new(Counters::default()), None);
        let ends: Vec<(TcpStream, ConnId)> =
            (0..5).map(|_| connect(&mut board, &listener)).collect();
        assert_eq!(board.connection_count(), 3);
        assert!(!board.connections.contains_key(&ends[0].1));
        assert!(!board.connections.contains_key(&ends[1].1));
        assert!(board.connections.contains_key(&ends[4].1));
        assert_eq!(board.counters.get(Counter::ConnectionsSilent), 2);
    }
}
