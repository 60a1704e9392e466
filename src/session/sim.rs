//! A deterministic test bench for [`Session`]: a scripted client, a minimal TCP target and a
//! lossy network between them, all in simulated time.
//!
//! The target ([`SimTarget`]) is just enough TCP to judge the engine: it picks its own ISN,
//! answers a SYN with SYN-ACK (MSS, window scale, timestamps), accepts data in order only
//! (acknowledging duplicates and out-of-order segments at once), treats each `\n`-terminated
//! line as a request and answers it with a scripted number of bytes after a think time,
//! respects the engine's window, retransmits its own data (and FIN) on a fixed timeout, closes
//! with FIN after the client's FIN (or after a scripted number of requests), and resets data
//! that arrives once it has closed.
//!
//! The network can lose, delay and reorder packets both ways: engine → target (the copies)
//! and target → engine (the reply headers intercept passes on: a lossy target → assistant
//! link loses them, a slow intercept delays them). Test-only; no extra crates.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Event, RecordingOutput, Session, SessionConfig};
use crate::packet::{Segment, SeqNum, TcpFlags, TcpOptions, Timestamps};

/// xorshift64*: a seeded, dependency-free PRNG for loss, reordering and jitter.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator; the same seed gives the same sequence.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next pseudo-random number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// The (rewritten) client every test session uses.
pub fn client_addr() -> SocketAddr {
    "203.0.113.7:40000".parse().expect("literal address")
}

/// The target every test session replays to.
pub fn target_addr() -> SocketAddr {
    "192.0.2.10:8080".parse().expect("literal address")
}

/// Builds the segments a real client sent, with their capture times.
#[derive(Debug, Clone)]
pub struct ClientScript {
    /// Next client sequence number.
    pub seq: SeqNum,
    /// The online server's next sequence number: the client's ACK.
    pub server_seq: SeqNum,
    tsval: u32,
    at: Duration,
    pub items: Vec<(Duration, Segment, Vec<u8>)>,
    /// The client's stream, as the target should receive it.
    pub stream: Vec<u8>,
    pub timestamps: bool,
}

impl ClientScript {
    /// A client whose SYN carries `isn` and whose server starts at a fixed ISN.
    pub fn new(isn: u32) -> ClientScript {
        ClientScript {
            seq: SeqNum(isn),
            server_seq: SeqNum(0x5000_0000),
            tsval: 1000,
            at: Duration::ZERO,
            items: Vec::new(),
            stream: Vec::new(),
            timestamps: true,
        }
    }

    fn segment(&mut self, seq: SeqNum, flags: TcpFlags, len: usize) -> Segment {
        self.tsval += 1;
        let timestamps = self.timestamps.then_some(Timestamps {
            tsval: self.tsval,
            tsecr: 77,
        });
        Segment {
            src: client_addr(),
            dst: target_addr(),
            seq,
            ack: if flags.ack() {
                self.server_seq
            } else {
                SeqNum(0)
            },
            flags,
            window: 502,
            options: TcpOptions {
                timestamps,
                ..TcpOptions::default()
            },
            ip_id: 4242,
            ttl: 57,
            payload_len: len,
        }
    }

    fn push(&mut self, segment: Segment, payload: &[u8]) -> &mut Self {
        self.at += Duration::from_micros(10);
        self.items.push((self.at, segment, payload.to_vec()));
        self
    }

    /// The client's SYN (MSS 1460, window scale 7, SACK permitted, timestamps).
    pub fn syn(&mut self) -> &mut Self {
        let mut syn = self.segment(self.seq, TcpFlags::SYN, 0);
        syn.window = 64240;
        syn.options.mss = Some(1460);
        syn.options.window_scale = Some(7);
        syn.options.sack_permitted = true;
        self.seq += 1u32;
        self.push(syn, &[])
    }

    /// The client's third ACK (or any pure ACK).
    pub fn ack(&mut self) -> &mut Self {
        let ack = self.segment(self.seq, TcpFlags::ACK, 0);
        self.push(ack, &[])
    }

    /// The client sends `data` in segments of at most 1448 bytes.
    pub fn send(&mut self, data: &[u8]) -> &mut Self {
        for chunk in data.chunks(1448) {
            let segment = self.segment(self.seq, TcpFlags::ACK | TcpFlags::PSH, chunk.len());
            self.seq = self.seq + chunk.len();
            self.stream.extend_from_slice(chunk);
            self.push(segment, chunk);
        }
        self
    }

    /// The online server sent `len` bytes and the client acknowledged them.
    pub fn receive(&mut self, len: u32) -> &mut Self {
        self.server_seq += len;
        self.ack()
    }

    /// The client stays silent for `duration`.
    pub fn wait(&mut self, duration: Duration) -> &mut Self {
        self.at += duration;
        self
    }

    /// The client closes with FIN.
    pub fn fin(&mut self) -> &mut Self {
        let fin = self.segment(self.seq, TcpFlags::FIN | TcpFlags::ACK, 0);
        self.seq += 1u32;
        self.push(fin, &[])
    }

    /// The client aborts with RST.
    pub fn rst(&mut self) -> &mut Self {
        let rst = self.segment(self.seq, TcpFlags::RST | TcpFlags::ACK, 0);
        self.push(rst, &[])
    }

    /// Repeats the item at `index` (a client retransmission) right now.
    pub fn repeat(&mut self, index: usize) -> &mut Self {
        let (_, segment, payload) = self.items[index].clone();
        self.push(segment, &payload)
    }
}

/// How the simulated target behaves.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub isn: u32,
    pub mss: u16,
    pub window_scale: Option<u8>,
    /// Receive window in bytes (the application reads at once, so it never shrinks).
    pub window: u32,
    pub timestamps: bool,
    /// Bytes sent right after the handshake.
    pub greeting: u32,
    /// Bytes answering each request.
    pub response_len: u32,
    /// Delay between a complete request and its response.
    pub think_time: Duration,
    /// Reset the connection instead of answering this request (1-based, over all
    /// connections).
    pub reset_on_request: Option<usize>,
    /// Whether SYNs are answered at all.
    pub answers_syn: bool,
    /// Close (FIN) once this many requests of a connection are answered.
    pub close_after_request: Option<usize>,
}

impl Default for TargetConfig {
    fn default() -> TargetConfig {
        TargetConfig {
            isn: 0x1000_0000,
            mss: 1460,
            window_scale: Some(7),
            window: 256 * 1024,
            timestamps: true,
            greeting: 0,
            response_len: 300,
            think_time: Duration::from_millis(1),
            reset_on_request: None,
            answers_syn: true,
            close_after_request: None,
        }
    }
}

/// Something the target noted, with its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetLog {
    Accepted,
    /// The n-th request (counted over all connections) was complete.
    Request(usize),
    /// The last byte of a response was sent.
    ResponseSent,
    ResetReceived,
}

/// One connection on the simulated target.
#[derive(Debug, Clone)]
struct Conn {
    irs: SeqNum,
    rcv_nxt: SeqNum,
    iss: SeqNum,
    snd_una: SeqNum,
    snd_nxt: SeqNum,
    /// End of the data the application has written so far.
    snd_end: SeqNum,
    established: bool,
    peer_shift: u8,
    peer_window: u32,
    own_shift: u8,
    timestamps: bool,
    ts_recent: u32,
    requests: usize,
    fin_sent: bool,
    fin_received: bool,
    /// The target reset this connection.
    reset: bool,
    last_progress: Instant,
    /// Responses due: when, how many bytes.
    due: VecDeque<(Instant, u32)>,
}

/// A minimal TCP server.
#[derive(Debug)]
pub struct SimTarget {
    pub config: TargetConfig,
    conn: Option<Conn>,
    epoch: Instant,
    /// Everything the application read, over all connections.
    pub stream: Vec<u8>,
    pub requests: usize,
    pub connections: usize,
    /// Client segments that reached beyond the window the target advertised.
    pub window_violations: usize,
    /// Payload bytes that arrived more than once.
    pub duplicate_bytes: usize,
    pub resets_received: usize,
    pub log: Vec<(Instant, TargetLog)>,
    outbox: Vec<Segment>,
}

/// The target retransmits its own data after this long without progress.
const TARGET_RTO: Duration = Duration::from_millis(200);

impl SimTarget {
    /// A target with no connection; its clock starts at `epoch`.
    pub fn new(config: TargetConfig, epoch: Instant) -> SimTarget {
        SimTarget {
            config,
            conn: None,
            epoch,
            stream: Vec::new(),
            requests: 0,
            connections: 0,
            window_violations: 0,
            duplicate_bytes: 0,
            resets_received: 0,
            log: Vec::new(),
            outbox: Vec::new(),
        }
    }

    /// When the target noted each entry `what` selects, in order.
    pub fn times_of(&self, what: fn(&TargetLog) -> bool) -> Vec<Instant> {
        self.log
            .iter()
            .filter(|(_, log)| what(log))
            .map(|(at, _)| *at)
            .collect()
    }

    fn tsval(&self, now: Instant) -> u32 {
        now.duration_since(self.epoch).as_millis() as u32 + 5_000_000
    }

    fn reply(&mut self, now: Instant, conn: &Conn, seq: SeqNum, flags: TcpFlags, len: usize) {
        let timestamps = conn.timestamps.then(|| Timestamps {
            tsval: self.tsval(now),
            tsecr: conn.ts_recent,
        });
        self.outbox.push(Segment {
            src: target_addr(),
            dst: client_addr(),
            seq,
            ack: conn.rcv_nxt,
            flags,
            window: (self.config.window >> conn.own_shift).min(65535) as u16,
            options: TcpOptions {
                timestamps,
                ..TcpOptions::default()
            },
            ip_id: 0,
            ttl: 64,
            payload_len: len,
        });
    }

    /// Whether a connection is open (or half-open) on the target.
    pub fn has_connection(&self) -> bool {
        self.conn.is_some()
    }

    /// Response bytes the engine has not acknowledged yet.
    pub fn unacknowledged(&self) -> usize {
        self.conn
            .as_ref()
            .map_or(0, |conn| conn.snd_nxt.distance_from(conn.snd_una) as usize)
    }

    /// The reply headers produced since the last call.
    pub fn take_outbox(&mut self) -> Vec<Segment> {
        std::mem::take(&mut self.outbox)
    }

    /// A segment from the engine.
    pub fn on_segment(&mut self, now: Instant, seg: &Segment, payload: &[u8]) {
        let flags = seg.flags;
        if flags.rst() {
            if self.conn.take().is_some() {
                self.resets_received += 1;
                self.log.push((now, TargetLog::ResetReceived));
            }
            return;
        }
        if flags.syn() && !flags.ack() {
            self.on_syn(now, seg);
            return;
        }
        let Some(mut conn) = self.conn.take() else {
            // RFC 9293 §3.10.7.1: no connection, answer with <SEQ=SEG.ACK><CTL=RST>.
            self.outbox.push(Segment {
                src: target_addr(),
                dst: client_addr(),
                seq: seg.ack,
                ack: SeqNum(0),
                flags: TcpFlags::RST,
                window: 0,
                options: TcpOptions::default(),
                ip_id: 0,
                ttl: 64,
                payload_len: 0,
            });
            return;
        };
        if let Some(ts) = seg.options.timestamps {
            conn.ts_recent = ts.tsval;
        }
        if !conn.established {
            if flags.ack() && seg.ack == conn.iss + 1u32 {
                conn.established = true;
                conn.snd_una = seg.ack;
                conn.snd_end += self.config.greeting;
                self.log.push((now, TargetLog::Accepted));
            } else {
                self.conn = Some(conn);
                return;
            }
        }
        if flags.ack() && seg.ack > conn.snd_una && seg.ack <= conn.snd_nxt {
            conn.snd_una = seg.ack;
            conn.last_progress = now;
        }
        if flags.ack() {
            conn.peer_window = u32::from(seg.window) << conn.peer_shift;
        }
        let window_end = conn.rcv_nxt + self.config.window;
        if seg.seq_len() > 0 && seg.seq_end() > window_end + 1u32 {
            self.window_violations += 1;
        }
        if conn.fin_sent && seg.seq + payload.len() > conn.rcv_nxt {
            // The application has closed: new data is answered with RST (RFC 1122
            // §4.2.2.13) and never read.
            self.reply(now, &conn, conn.snd_nxt, TcpFlags::RST | TcpFlags::ACK, 0);
            return;
        }
        if !payload.is_empty() {
            self.on_data(now, &mut conn, seg.seq, payload);
        }
        if conn.reset {
            return;
        }
        if flags.fin() && seg.seq + payload.len() == conn.rcv_nxt {
            conn.rcv_nxt += 1u32;
            conn.fin_received = true;
            self.reply(now, &conn, conn.snd_nxt, TcpFlags::ACK, 0);
        } else if flags.fin() {
            self.reply(now, &conn, conn.snd_nxt, TcpFlags::ACK, 0);
        }
        if conn.fin_sent && conn.fin_received && conn.snd_una == conn.snd_nxt {
            // Both FINs acknowledged: closed (or TIME-WAIT, which this model skips).
            return;
        }
        self.conn = Some(conn);
        self.send_data(now);
    }

    fn on_syn(&mut self, now: Instant, seg: &Segment) {
        if !self.config.answers_syn {
            return;
        }
        if let Some(conn) = &self.conn
            && conn.irs == seg.seq
            && !conn.established
        {
            let conn = conn.clone();
            self.send_syn_ack(now, &conn, seg);
            return;
        }
        let scaling = seg.options.window_scale.is_some() && self.config.window_scale.is_some();
        let iss = SeqNum(
            self.config
                .isn
                .wrapping_add(self.connections as u32 * 100_000),
        );
        let shift = |offered: Option<u8>| if scaling { offered.unwrap_or(0) } else { 0 };
        let conn = Conn {
            irs: seg.seq,
            rcv_nxt: seg.seq + 1u32,
            iss,
            snd_una: iss,
            snd_nxt: iss + 1u32,
            snd_end: iss + 1u32,
            established: false,
            peer_shift: shift(seg.options.window_scale),
            peer_window: u32::from(seg.window),
            own_shift: shift(self.config.window_scale),
            timestamps: self.config.timestamps && seg.options.timestamps.is_some(),
            ts_recent: seg.options.timestamps.map_or(0, |ts| ts.tsval),
            requests: 0,
            fin_sent: false,
            fin_received: false,
            reset: false,
            last_progress: now,
            due: VecDeque::new(),
        };
        self.connections += 1;
        self.send_syn_ack(now, &conn, seg);
        self.conn = Some(conn);
    }

    fn send_syn_ack(&mut self, now: Instant, conn: &Conn, syn: &Segment) {
        self.reply(now, conn, conn.iss, TcpFlags::SYN | TcpFlags::ACK, 0);
        if let Some(syn_ack) = self.outbox.last_mut() {
            syn_ack.window = self.config.window.min(65535) as u16;
            syn_ack.options.mss = Some(self.config.mss);
            if syn.options.window_scale.is_some() {
                syn_ack.options.window_scale = self.config.window_scale;
            }
        }
    }

    fn on_data(&mut self, now: Instant, conn: &mut Conn, seq: SeqNum, payload: &[u8]) {
        let already = conn.rcv_nxt.distance_from(seq);
        if already < 0 {
            // Out of order: this target keeps nothing and repeats its ACK.
            self.reply(now, conn, conn.snd_nxt, TcpFlags::ACK, 0);
            return;
        }
        let already = (already as usize).min(payload.len());
        self.duplicate_bytes += already;
        for &byte in &payload[already..] {
            self.stream.push(byte);
            if byte == b'\n' {
                conn.requests += 1;
                self.requests += 1;
                self.log.push((now, TargetLog::Request(self.requests)));
                if Some(self.requests) == self.config.reset_on_request {
                    conn.reset = true;
                } else {
                    conn.due
                        .push_back((now + self.config.think_time, self.config.response_len));
                }
            }
        }
        conn.rcv_nxt = conn.rcv_nxt + (payload.len() - already);
        self.reply(now, conn, conn.snd_nxt, TcpFlags::ACK, 0);
        if conn.reset {
            self.reply(now, conn, conn.snd_nxt, TcpFlags::RST | TcpFlags::ACK, 0);
        }
    }

    /// Sends response data the engine's window allows.
    fn send_data(&mut self, now: Instant) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        while let Some(&(at, len)) = conn.due.front() {
            if at > now {
                break;
            }
            conn.due.pop_front();
            conn.snd_end += len;
        }
        let mss = usize::from(self.config.mss);
        let limit = conn.snd_una + conn.peer_window.max(1);
        while conn.established && conn.snd_nxt < conn.snd_end.min(limit) && !conn.fin_sent {
            let len = (conn.snd_end.min(limit).distance_from(conn.snd_nxt) as usize).min(mss);
            let seq = conn.snd_nxt;
            conn.snd_nxt = conn.snd_nxt + len;
            let last = conn.snd_nxt == conn.snd_end;
            let flags = if last {
                TcpFlags::ACK | TcpFlags::PSH
            } else {
                TcpFlags::ACK
            };
            self.reply(now, &conn, seq, flags, len);
            if last {
                self.log.push((now, TargetLog::ResponseSent));
            }
            conn.last_progress = now;
        }
        // The client closed (or the script says so) and everything is answered: close.
        let server_closes = self
            .config
            .close_after_request
            .is_some_and(|n| conn.requests >= n);
        if (conn.fin_received || server_closes)
            && conn.established
            && conn.due.is_empty()
            && conn.snd_nxt == conn.snd_end
            && !conn.fin_sent
        {
            conn.fin_sent = true;
            self.reply(now, &conn, conn.snd_nxt, TcpFlags::FIN | TcpFlags::ACK, 0);
            conn.snd_nxt += 1u32;
            conn.snd_end += 1u32;
        }
        self.conn = Some(conn);
    }

    /// When the target next has something to do on its own.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conn = self.conn.as_ref()?;
        let due = conn.due.front().map(|(at, _)| *at);
        let rto = (conn.snd_una < conn.snd_nxt).then_some(conn.last_progress + TARGET_RTO);
        match (due, rto) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sends due responses and retransmits after [`TARGET_RTO`] without progress.
    pub fn on_timeout(&mut self, now: Instant) {
        if let Some(mut conn) = self.conn.take() {
            if conn.snd_una < conn.snd_nxt && conn.last_progress + TARGET_RTO <= now {
                conn.last_progress = now;
                if !conn.established {
                    // A lost SYN-ACK is repeated when the engine repeats its SYN.
                } else if conn.fin_sent {
                    self.retransmit_before_fin(now, &conn);
                } else {
                    // Go back to the oldest unacknowledged byte.
                    conn.snd_nxt = conn.snd_una;
                }
            }
            self.conn = Some(conn);
        }
        self.send_data(now);
    }

    /// After the FIN went out: sends again every unacknowledged byte (the data sent has been
    /// within the engine's window already), then the FIN.
    fn retransmit_before_fin(&mut self, now: Instant, conn: &Conn) {
        let fin_seq = conn.snd_nxt - 1;
        let mut seq = conn.snd_una;
        while seq < fin_seq {
            let len = (fin_seq.distance_from(seq) as usize).min(usize::from(self.config.mss));
            self.reply(now, conn, seq, TcpFlags::ACK, len);
            seq = seq + len;
        }
        self.reply(now, conn, fin_seq, TcpFlags::FIN | TcpFlags::ACK, 0);
    }
}

/// Which way a packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToTarget,
    ToEngine,
}

#[derive(Debug)]
struct InFlight {
    arrives: Instant,
    order: u64,
    direction: Direction,
    segment: Segment,
    payload: Vec<u8>,
}

/// Network conditions between engine and target.
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub latency: Duration,
    /// Percent of engine → target packets lost.
    pub loss_to_target: u64,
    /// Percent of engine → target packets delayed by an extra latency (reordering).
    pub reorder_to_target: u64,
    /// Engine transmissions (0-based, in sending order) that are lost.
    pub drop_to_target: Vec<usize>,
    /// Percent of target → engine reply headers lost (a lossy target → assistant link).
    pub loss_to_engine: u64,
    /// Percent of target → engine reply headers delayed by an extra latency (reordering).
    pub reorder_to_engine: u64,
    /// Extra delay of every reply header on its way to the engine (a slow intercept).
    pub reply_delay: Duration,
    pub seed: u64,
}

impl Default for NetConfig {
    fn default() -> NetConfig {
        NetConfig {
            latency: Duration::from_micros(200),
            loss_to_target: 0,
            reorder_to_target: 0,
            drop_to_target: Vec::new(),
            loss_to_engine: 0,
            reorder_to_engine: 0,
            reply_delay: Duration::ZERO,
            seed: 1,
        }
    }
}

/// The engine, the target, the network and the client script, in simulated time.
pub struct World {
    pub now: Instant,
    /// Network conditions; tests may change them mid-run.
    pub net_config: NetConfig,
    pub session: Session,
    pub target: SimTarget,
    /// Everything the engine sent, with the time it was sent.
    pub sent: Vec<(Instant, Segment, Vec<u8>)>,
    /// Every reply header the engine received, with the time it arrived.
    pub replies: Vec<(Instant, Segment)>,
    pub events: Vec<Event>,
    /// Segments the target sent toward the engine, and how many of them the network lost.
    pub replies_sent: usize,
    pub replies_lost: usize,
    rng: Rng,
    net: Vec<InFlight>,
    order: u64,
    script: VecDeque<(Instant, Segment, Vec<u8>)>,
}

impl World {
    /// A fresh session, target and network at a common start time.
    pub fn new(session: SessionConfig, target: TargetConfig, net: NetConfig) -> World {
        let epoch = Instant::now();
        World {
            now: epoch,
            session: Session::new(Arc::new(session), epoch, client_addr(), target_addr()),
            target: SimTarget::new(target, epoch),
            sent: Vec::new(),
            replies: Vec::new(),
            events: Vec::new(),
            replies_sent: 0,
            replies_lost: 0,
            rng: Rng::new(net.seed),
            net_config: net,
            net: Vec::new(),
            order: 0,
            script: VecDeque::new(),
        }
    }

    /// Queues the client's segments, relative to now.
    pub fn play(&mut self, script: &ClientScript) {
        for (at, segment, payload) in &script.items {
            self.script
                .push_back((self.now + *at, segment.clone(), payload.clone()));
        }
    }

    /// How many times the session reported `event`.
    pub fn count(&self, event: Event) -> usize {
        self.events.iter().filter(|e| **e == event).count()
    }

    /// How many requests the session released, whatever they waited.
    pub fn requests_sent(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::RequestSent { .. }))
            .count()
    }

    /// Segments the engine sent with any of `flags`.
    pub fn sent_with(&self, flags: TcpFlags) -> usize {
        self.sent
            .iter()
            .filter(|(_, seg, _)| seg.flags.0 & flags.0 != 0)
            .count()
    }

    fn absorb(&mut self, out: RecordingOutput) {
        self.events.extend(out.events);
        for (segment, payload) in out.transmits {
            let index = self.sent.len();
            self.sent.push((self.now, segment.clone(), payload.clone()));
            if self.rng.chance(self.net_config.loss_to_target)
                || self.net_config.drop_to_target.contains(&index)
            {
                continue;
            }
            let mut arrives = self.now + self.net_config.latency;
            if self.rng.chance(self.net_config.reorder_to_target) {
                arrives += self.net_config.latency * 3;
            }
            self.send(arrives, Direction::ToTarget, segment, payload);
        }
    }

    fn send(&mut self, arrives: Instant, direction: Direction, segment: Segment, payload: Vec<u8>) {
        self.order += 1;
        self.net.push(InFlight {
            arrives,
            order: self.order,
            direction,
            segment,
            payload,
        });
    }

    /// Puts the target's segments on the network toward the engine: some lost, some late.
    fn flush_target(&mut self) {
        for segment in self.target.take_outbox() {
            self.replies_sent += 1;
            if self.rng.chance(self.net_config.loss_to_engine) {
                self.replies_lost += 1;
                continue;
            }
            let mut arrives = self.now + self.net_config.latency + self.net_config.reply_delay;
            if self.rng.chance(self.net_config.reorder_to_engine) {
                arrives += self.net_config.latency * 3;
            }
            self.send(arrives, Direction::ToEngine, segment, Vec::new());
        }
    }

    /// Runs until nothing is scheduled before `limit` from now.
    pub fn run_for(&mut self, limit: Duration) {
        let end = self.now + limit;
        loop {
            let next_net = self
                .net
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| (p.arrives, p.order))
                .map(|(i, p)| (p.arrives, i));
            let candidates = [
                next_net.map(|(at, _)| at),
                self.script.front().map(|(at, _, _)| *at),
                self.session.poll_timeout(),
                self.target.poll_timeout(),
            ];
            let Some(next) = candidates.into_iter().flatten().min() else {
                break;
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            let now = self.now;
            let mut out = RecordingOutput::default();
            if let Some((at, index)) = next_net
                && at <= now
            {
                let packet = self.net.swap_remove(index);
                match packet.direction {
                    Direction::ToTarget => {
                        self.target
                            .on_segment(now, &packet.segment, &packet.payload)
                    }
                    Direction::ToEngine => {
                        self.session.on_reply(now, &packet.segment, &mut out);
                        self.replies.push((now, packet.segment));
                    }
                }
            } else if self.script.front().is_some_and(|(at, _, _)| *at <= now) {
                if let Some((_, segment, payload)) = self.script.pop_front() {
                    self.session.on_client(now, &segment, &payload, &mut out);
                }
            } else if self.session.poll_timeout().is_some_and(|at| at <= now) {
                self.session.on_timeout(now, &mut out);
            } else {
                self.target.on_timeout(now);
            }
            self.absorb(out);
            self.flush_target();
        }
        self.now = self.now.max(end);
    }
}
