//! The per-packet work of `copy`, without syscalls: parse a captured frame, rewrite it, and
//! emit the IP packet sent to the target; the session engine replaying a request; and a
//! whole shard loop turn (a batch of captured frames and reply headers in, a batch of IP
//! packets out).
//!
//! `cargo bench --bench packet_path`; results are written down in docs/performance.md.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tcpcopy::packet::{
    self, EthernetHeader, LinkHeader, LinkType, Segment, SeqNum, TcpFlags, TcpOptions, Timestamps,
};
use tcpcopy::replay::rewrite::{Repetition, Rewriter};
use tcpcopy::replay::{SessionLimits, Shaping, ShardCore};
use tcpcopy::session::{Event, Output, Session, SessionConfig};

const REQUEST: &[u8] =
    b"GET /index.html HTTP/1.1\r\nHost: example\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n";

fn client_segment(seq: u32, flags: TcpFlags, len: usize) -> Segment {
    Segment {
        src: "198.51.100.10:40000".parse().unwrap(),
        dst: "198.51.100.20:80".parse().unwrap(),
        seq: SeqNum(seq),
        ack: SeqNum(5001),
        flags,
        window: 502,
        options: TcpOptions {
            timestamps: Some(Timestamps { tsval: 1, tsecr: 2 }),
            ..TcpOptions::default()
        },
        ip_id: 7,
        ttl: 64,
        payload_len: len,
    }
}

fn ethernet_frame(segment: &Segment, payload: &[u8]) -> Vec<u8> {
    let link = LinkHeader::Ethernet(EthernetHeader {
        dst: [2, 0, 0, 0, 0, 2],
        src: [2, 0, 0, 0, 0, 1],
        vlan_tags: [None, None],
        ethertype: 0x0800,
    });
    let mut frame = Vec::new();
    packet::emit_frame(&link, segment, payload, &mut frame).unwrap();
    frame
}

fn parse_rewrite_emit(c: &mut Criterion) {
    let frame = ethernet_frame(
        &client_segment(1001, TcpFlags::ACK | TcpFlags::PSH, REQUEST.len()),
        REQUEST,
    );
    let rewriter = Rewriter::new(vec!["80-198.51.100.30:80".parse().unwrap()]);
    let mut out = Vec::with_capacity(1500);
    let mut group = c.benchmark_group("copy");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_frame", |b| {
        b.iter(|| {
            packet::parse_frame(LinkType::Ethernet, black_box(&frame))
                .unwrap()
                .segment
                .seq
        })
    });
    group.bench_function("parse_rewrite_emit", |b| {
        b.iter(|| {
            let parsed = packet::parse_frame(LinkType::Ethernet, black_box(&frame)).unwrap();
            let mut segment = parsed.segment;
            rewriter.rewrite(&mut segment, Repetition::default());
            out.clear();
            packet::emit_ip(&segment, parsed.payload, &mut out).unwrap();
            out.len()
        })
    });
    group.finish();
}

/// Counts what the engine transmits, as cheaply as possible.
#[derive(Default)]
struct CountingOutput {
    packets: usize,
}

impl Output for CountingOutput {
    fn transmit(&mut self, _segment: &Segment, payload: &[u8]) {
        self.packets += 1 + payload.len() / 4096;
    }
    fn event(&mut self, _event: Event) {}
}

/// One keep-alive request through an established session: the client's request segment in,
/// the target's ACK and 1-segment response in, our ACK out.
fn session_request(c: &mut Criterion) {
    let config = Arc::new(SessionConfig {
        wait_for_response: false,
        ..SessionConfig::default()
    });
    let start = Instant::now();
    let client: std::net::SocketAddr = "203.0.113.9:40000".parse().unwrap();
    let target: std::net::SocketAddr = "198.51.100.30:80".parse().unwrap();
    let mut session = Session::new(config, start, client, target);
    let mut out = CountingOutput::default();
    let mut syn = client_segment(1000, TcpFlags::SYN, 0);
    (syn.src, syn.dst) = (client, target);
    session.on_client(start, &syn, &[], &mut out);
    let target_isn = 77_000u32;
    let syn_ack = Segment {
        src: target,
        dst: client,
        seq: SeqNum(target_isn),
        ack: SeqNum(1001),
        flags: TcpFlags::SYN | TcpFlags::ACK,
        window: 65535,
        options: TcpOptions {
            mss: Some(1460),
            ..TcpOptions::default()
        },
        ip_id: 0,
        ttl: 64,
        payload_len: 0,
    };
    session.on_reply(start, &syn_ack, &mut out);

    let mut group = c.benchmark_group("session");
    group.throughput(Throughput::Elements(1));
    let (mut client_seq, mut target_seq) = (1001u32, target_isn + 1);
    let mut now = start;
    group.bench_function("request_response", |b| {
        b.iter(|| {
            now += Duration::from_micros(100);
            let mut request =
                client_segment(client_seq, TcpFlags::ACK | TcpFlags::PSH, REQUEST.len());
            (request.src, request.dst) = (client, target);
            session.on_client(now, &request, REQUEST, &mut out);
            client_seq = client_seq.wrapping_add(REQUEST.len() as u32);
            let response = Segment {
                seq: SeqNum(target_seq),
                ack: SeqNum(client_seq),
                flags: TcpFlags::ACK | TcpFlags::PSH,
                payload_len: 300,
                ..syn_ack.clone()
            };
            session.on_reply(now, &response, &mut out);
            target_seq = target_seq.wrapping_add(300);
            if session.poll_timeout().is_some_and(|due| due <= now) {
                session.on_timeout(now, &mut out);
            }
            out.packets
        })
    });
    group.finish();
}

/// Sessions (client connections) in the loop-turn benchmark: one request each per turn.
const TURN_SESSIONS: u16 = 64;

/// The target's IP + TCP headers answering `client` (as an intercept sends them).
fn reply_headers(
    client: std::net::SocketAddr,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    len: usize,
) -> Vec<u8> {
    let segment = Segment {
        src: "198.51.100.30:80".parse().unwrap(),
        dst: client,
        seq: SeqNum(seq),
        ack: SeqNum(ack),
        flags,
        window: 65535,
        options: TcpOptions {
            mss: flags.syn().then_some(1460),
            ..TcpOptions::default()
        },
        ip_id: 0,
        ttl: 64,
        payload_len: 0,
    };
    let mut headers = Vec::new();
    packet::emit_ip(&segment, &[], &mut headers).unwrap();
    // The intercept keeps the headers only; the IP length still counts the payload.
    let total = (headers.len() + len) as u16;
    headers[2..4].copy_from_slice(&total.to_be_bytes());
    headers
}

/// A shard's loop turn without its syscalls: 64 established keep-alive sessions each get a
/// captured request frame, then the target's response headers for it; timers run; the
/// packets emitted are collected and the batch cleared, as the shard's `sendmmsg` would.
fn loop_turn(c: &mut Criterion) {
    let limits = SessionLimits {
        session: Arc::new(SessionConfig {
            wait_for_response: false,
            ..SessionConfig::default()
        }),
        mtu: 1500,
        max_sessions: 1024,
    };
    let start = Instant::now();
    let mut core = ShardCore::new(
        Rewriter::new(vec!["80-198.51.100.30:80".parse().unwrap()]),
        limits,
        &Shaping::default(),
        start,
    );
    let target_isn = 77_000u32;
    let clients: Vec<std::net::SocketAddr> = (0..TURN_SESSIONS)
        .map(|i| std::net::SocketAddr::from(([198, 51, 100, 10], 40_000 + i)))
        .collect();
    for &client in &clients {
        let mut syn = client_segment(1000, TcpFlags::SYN, 0);
        syn.src = client;
        core.on_frame(
            start,
            LinkType::Ethernet,
            &ethernet_frame(&syn, &[]),
            Repetition::default(),
            false,
        );
        let syn_ack = reply_headers(client, target_isn, 1001, TcpFlags::SYN | TcpFlags::ACK, 0);
        core.on_reply_headers(start, &syn_ack, &[], None);
    }
    core.emitted().outgoing.clear();
    core.emitted().new_flows.clear();

    let mut group = c.benchmark_group("shard");
    group.throughput(Throughput::Elements(u64::from(TURN_SESSIONS) * 2));
    let (mut client_seq, mut target_seq) = (1001u32, target_isn + 1);
    let mut now = start;
    let mut frames = vec![Vec::new(); clients.len()];
    let mut replies = vec![Vec::new(); clients.len()];
    // Only the turn is timed; building the next turn's frames is not.
    group.bench_function("loop_turn_64_requests_64_replies", |b| {
        b.iter_custom(|iterations| {
            let mut timed = Duration::ZERO;
            for _ in 0..iterations {
                now += Duration::from_millis(1);
                let next_seq = client_seq.wrapping_add(REQUEST.len() as u32);
                for (i, &client) in clients.iter().enumerate() {
                    let flags = TcpFlags::ACK | TcpFlags::PSH;
                    let mut request = client_segment(client_seq, flags, REQUEST.len());
                    request.src = client;
                    frames[i] = ethernet_frame(&request, REQUEST);
                    replies[i] = reply_headers(client, target_seq, next_seq, flags, 300);
                }
                let started = Instant::now();
                for frame in &frames {
                    core.on_frame(
                        now,
                        LinkType::Ethernet,
                        black_box(frame),
                        Repetition::default(),
                        false,
                    );
                }
                for reply in &replies {
                    core.on_reply_headers(now, black_box(reply), &[], None);
                }
                core.sessions().fire_timers(now);
                let emitted = core.emitted();
                black_box(emitted.outgoing.len());
                emitted.outgoing.clear();
                timed += started.elapsed();
                client_seq = next_seq;
                target_seq = target_seq.wrapping_add(300);
            }
            timed
        })
    });
    group.finish();
}

criterion_group!(benches, parse_rewrite_emit, session_request, loop_turn);
criterion_main!(benches);
