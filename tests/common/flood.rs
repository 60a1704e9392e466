//! [`Flood`]: a bounded flood of TCP segments between a server and many distinct client ends
//! inside the lab's client net (`203.0.113.0/24`), sent with a raw socket from the host it
//! runs in. Its [`FloodShape`] says what the segments are:
//!
//! - [`FloodShape::Syns`]: SYNs from the client ends to the server (run it on the lab's
//!   client, toward the online host: a SYN flood at copy). None is ever followed by an ACK or
//!   data; the online host's SYN-ACKs have no route back and die there.
//! - [`FloodShape::Replies`]: what a server sends back, from the server to the client ends:
//!   SYN-ACKs, RSTs and data segments in turn (run it on the target, from its own address
//!   and port: the target routes the client net via the assistant, so they travel the path
//!   its real replies take, to intercept's capture, for flows no copy ever registered).
//!
//! Each segment has a 4-tuple no other segment of the flood has, so every one is a flow of
//! its own; client ports start at [`FIRST_PORT`] and stay below the ephemeral range (at most
//! 1024 + 1,000,000 / 254 = 4961 for a million), so they never meet a real client's flow.
//! Bounded in count and paced to a rate, so it cannot take a whole core of a shared machine
//! for long. It must run inside a lab host ([`super::Lab::in_host`]): its packets then stay
//! in the lab.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use tcpcopy::packet::{Segment, SeqNum, TcpFlags, TcpOptions, emit_ip};
use tcpcopy::replay::sink::{Outgoing, PacketSink, RawSocketSink};

use super::http::short_connections;
use super::http::{HttpConnection, HttpRequest, keep_alive_rounds, open_connections};
use super::settle::caught_up;
use super::{Host, Lab, Nginx};

/// The pace of the floods of the e2e tests: low enough that the flood (and the process reading
/// it) leave the machine's second core to the others.
pub const FLOOD_PER_SECOND: usize = 25_000;
/// Real keep-alive connections open before a flood and used all through it.
pub const REAL_CONNECTIONS: usize = 10;
/// New short connections after a flood, to show the replay recovered.
pub const AFTER_FLOOD_REQUESTS: usize = 50;
/// The pause between two rounds of real load during a flood: hundreds of requests a second,
/// not a second flood competing for the cores.
const ROUND_PAUSE: Duration = Duration::from_millis(20);
/// How long the target may take to log the real requests sent before a flood.
const BEFORE_FLOOD_CATCH_UP: Duration = Duration::from_secs(60);
/// How the real load around a flood is named when a request fails.
const REAL_LOAD: &str = "client requests to the online server";

/// Opens [`REAL_CONNECTIONS`] keep-alive connections from the lab's client to `online` and
/// sends one request on each; returns them once `target` has logged all of them, replayed
/// before the flood begins.
pub fn real_connections_replayed(
    lab: &Lab,
    online: SocketAddrV4,
    target: &Nginx,
) -> Vec<HttpConnection> {
    let mut connections = lab
        .in_host(Host::Client, || open_connections(online, REAL_CONNECTIONS))
        .unwrap();
    keep_alive_rounds(&mut connections, 1, &[HttpRequest::ROOT])
        .assert_all_ok(REAL_CONNECTIONS, REAL_LOAD);
    let logged = caught_up(BEFORE_FLOOD_CATCH_UP, REAL_CONNECTIONS, || {
        Ok(target.access_entries()?.len())
    })
    .unwrap();
    assert_eq!(
        logged, REAL_CONNECTIONS,
        "the target logs the first round before the flood"
    );
    connections
}

/// [`AFTER_FLOOD_REQUESTS`] new short connections from the lab's client to `online`, each
/// answered: the sessions a copy must replay again once a flood has ended.
pub fn connections_after_flood(lab: &Lab, online: SocketAddrV4) {
    lab.in_host(Host::Client, || {
        Ok(short_connections(
            online,
            AFTER_FLOOD_REQUESTS,
            &[HttpRequest::ROOT],
        ))
    })
    .unwrap()
    .assert_all_ok(AFTER_FLOOD_REQUESTS, REAL_LOAD);
}

/// Runs `flood` on a thread of its own and, until it returns, `round` (real load) over and
/// over with a short pause between. Returns what the flood returned and how many rounds ran.
pub fn real_load_during<R: Send>(
    flood: impl FnOnce() -> R + Send,
    mut round: impl FnMut(),
) -> (R, usize) {
    let flooding = AtomicBool::new(true);
    thread::scope(|scope| {
        let sender = scope.spawn(|| {
            let report = flood();
            flooding.store(false, Ordering::Relaxed);
            report
        });
        let mut rounds = 0;
        while flooding.load(Ordering::Relaxed) {
            round();
            rounds += 1;
            thread::sleep(ROUND_PAUSE);
        }
        (sender.join().expect("the flood thread"), rounds)
    })
}

/// Host numbers the flood's client ends take in the client net: 203.0.113.1 to .254.
const CLIENT_HOSTS: u32 = 254;
/// The first client port (below it, ports some stacks treat as special).
const FIRST_PORT: u32 = 1024;
/// Segments sent between two checks of the pace.
const BATCH: usize = 256;
/// The payload of each data segment of [`FloodShape::Replies`]: a response's first bytes.
const DATA: &[u8] = b"HTTP/1.1 200 OK\r\nServer: a stranger\r\nContent-Length: 0\r\n\r\n";

/// What a flood's segments are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloodShape {
    /// SYNs from the client ends to the server.
    Syns,
    /// SYN-ACKs, RSTs and data segments from the server to the client ends, in turn.
    Replies,
}

/// One kind of segment a flood sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentKind {
    /// A SYN opening a connection to the server.
    Syn,
    /// The server's SYN-ACK.
    SynAck,
    /// The server's RST (with ACK, as the answer to a SYN).
    Rst,
    /// The server's ACK carrying data.
    Data,
}

impl FloodShape {
    /// The kinds of segment, in the order the flood sends them round after round.
    pub fn kinds(self) -> &'static [SegmentKind] {
        match self {
            FloodShape::Syns => &[SegmentKind::Syn],
            FloodShape::Replies => &[SegmentKind::SynAck, SegmentKind::Rst, SegmentKind::Data],
        }
    }
}

/// A flood of `segments` segments of `shape` between `server` and the client net, at most
/// `per_second` of them each second.
#[derive(Clone, Copy, Debug)]
pub struct Flood {
    pub server: SocketAddrV4,
    pub shape: FloodShape,
    pub segments: usize,
    pub per_second: usize,
}

/// What a flood sent.
#[derive(Clone, Copy, Debug)]
pub struct FloodReport {
    /// Segments the raw socket accepted.
    pub sent: usize,
    /// Segments it refused (e.g. ENOBUFS), which never left.
    pub failed: usize,
    /// How long sending them took.
    pub took: Duration,
}

impl Flood {
    /// The largest flood with distinct 4-tuples: every client host with every port from
    /// [`FIRST_PORT`].
    pub const MAX_SEGMENTS: usize = (CLIENT_HOSTS * (65536 - FIRST_PORT)) as usize;

    /// Sends the flood from the current network namespace and returns once every segment
    /// went.
    pub fn send(&self) -> Result<FloodReport> {
        ensure!(
            self.segments <= Self::MAX_SEGMENTS && self.per_second > 0,
            "a flood of {} segments at {}/s: at most {} distinct flows, at a rate above 0",
            self.segments,
            self.per_second,
            Self::MAX_SEGMENTS
        );
        let mut sink = RawSocketSink::open()?;
        let mut batch = Outgoing::default();
        let (mut sent, mut failed) = (0, 0);
        let start = Instant::now();
        for first in (0..self.segments).step_by(BATCH) {
            batch.clear();
            for n in first..(first + BATCH).min(self.segments) {
                let (segment, payload) = self.nth(n);
                emit_ip(&segment, payload, batch.push(segment.dst.ip()))
                    .with_context(|| format!("building flood segment {n}"))?;
            }
            sent += sink.send_batch(batch.packets(), &mut |_, _| failed += 1);
            // Paced: the next batch waits until the rate allows it.
            let due = Duration::from_secs_f64((first + BATCH) as f64 / self.per_second as f64);
            if let Some(early) = due.checked_sub(start.elapsed()) {
                thread::sleep(early);
            }
        }
        Ok(FloodReport {
            sent,
            failed,
            took: start.elapsed(),
        })
    }

    /// How many segments of the flood are of `kind`.
    pub fn count(&self, kind: SegmentKind) -> usize {
        let kinds = self.shape.kinds();
        kinds.iter().position(|&k| k == kind).map_or(0, |index| {
            self.segments / kinds.len() + usize::from(index < self.segments % kinds.len())
        })
    }

    /// Segment number `n` and its payload: its client end's host cycles fastest, then its
    /// port, so every `n` below [`Self::MAX_SEGMENTS`] has its own 4-tuple; its kind is the
    /// shape's `n`-th in turn.
    fn nth(&self, n: usize) -> (Segment, &'static [u8]) {
        let kinds = self.shape.kinds();
        let kind = kinds[n % kinds.len()];
        let n = n as u32;
        let host = 1 + n % CLIENT_HOSTS;
        let port = (FIRST_PORT + n / CLIENT_HOSTS) as u16;
        let client = Ipv4Addr::from(u32::from(Ipv4Addr::new(203, 0, 113, 0)) + host);
        let client = SocketAddr::from((client, port));
        let server = SocketAddr::from(self.server);
        let seq = SeqNum(n.wrapping_mul(2_654_435_761));
        let ack = SeqNum(n.wrapping_mul(40_503).wrapping_add(1));
        let mss = TcpOptions {
            mss: Some(1460),
            ..TcpOptions::default()
        };
        let (src, dst, flags, ack, options, payload) = match kind {
            SegmentKind::Syn => (client, server, TcpFlags::SYN, SeqNum(0), mss, &[][..]),
            SegmentKind::SynAck => (
                server,
                client,
                TcpFlags::SYN | TcpFlags::ACK,
                ack,
                mss,
                &[][..],
            ),
            SegmentKind::Rst => (
                server,
                client,
                TcpFlags::RST | TcpFlags::ACK,
                ack,
                TcpOptions::default(),
                &[][..],
            ),
            SegmentKind::Data => (
                server,
                client,
                TcpFlags::PSH | TcpFlags::ACK,
                ack,
                TcpOptions::default(),
                DATA,
            ),
        };
        let segment = Segment {
            src,
            dst,
            seq,
            ack,
            flags,
            window: 64_240,
            options,
            ip_id: n as u16,
            ttl: 64,
            payload_len: payload.len(),
        };
        (segment, payload)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn in_client_net(addr: &SocketAddr) -> bool {
        match addr.ip() {
            std::net::IpAddr::V4(ip) => ip.octets()[..3] == [203, 0, 113] && ip.octets()[3] != 0,
            std::net::IpAddr::V6(_) => false,
        }
    }

    #[test]
    fn every_syn_of_a_flood_is_its_own_flow_inside_the_client_net() {
        let flood = Flood {
            server: SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 20), 80),
            shape: FloodShape::Syns,
            segments: 100_000,
            per_second: 1,
        };
        let sources: HashSet<SocketAddr> =
            (0..flood.segments).map(|n| flood.nth(n).0.src).collect();
        assert_eq!(sources.len(), flood.segments);
        assert!(sources.iter().all(in_client_net));
        assert_eq!(flood.count(SegmentKind::Syn), flood.segments);
        let last = flood.nth(Flood::MAX_SEGMENTS - 1).0.src;
        assert_eq!(last, SocketAddr::from(([203, 0, 113, 254], 65535)));
    }

    #[test]
    fn a_reply_flood_comes_from_the_server_to_flows_of_their_own_in_turn() {
        let server = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 30), 80);
        let flood = Flood {
            server,
            shape: FloodShape::Replies,
            segments: 100_001,
            per_second: 1,
        };
        let segments: Vec<(Segment, &[u8])> = (0..flood.segments).map(|n| flood.nth(n)).collect();
        assert!(
            segments
                .iter()
                .all(|(s, _)| s.src == SocketAddr::from(server))
        );
        let clients: HashSet<SocketAddr> = segments.iter().map(|(s, _)| s.dst).collect();
        assert_eq!(clients.len(), flood.segments);
        assert!(clients.iter().all(in_client_net));
        let flags: Vec<TcpFlags> = segments[..4].iter().map(|(s, _)| s.flags).collect();
        assert_eq!(
            flags,
            [
                TcpFlags::SYN | TcpFlags::ACK,
                TcpFlags::RST | TcpFlags::ACK,
                TcpFlags::PSH | TcpFlags::ACK,
                TcpFlags::SYN | TcpFlags::ACK,
            ]
        );
        assert!(
            segments
                .iter()
                .all(|(s, payload)| s.payload_len == payload.len())
        );
        let counts = [
            SegmentKind::SynAck,
            SegmentKind::Rst,
            SegmentKind::Data,
            SegmentKind::Syn,
        ]
        .map(|kind| flood.count(kind));
        assert_eq!(counts, [33_334, 33_334, 33_333, 0]);
        let highest_port = clients.iter().map(SocketAddr::port).max();
        assert!(
            highest_port < Some(32_768),
            "below the ephemeral ports: {highest_port:?}"
        );
    }
}
