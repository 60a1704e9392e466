//! The whole copy pipeline without root or a network: a pcap file of one client connection
//! goes in, the copies land in a memory sink, and a stand-in for a TCPCopy 1.x intercept on
//! loopback speaks protocol version 6 with it (registration in, SYN-ACK headers out).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread;
use std::time::{Duration, Instant};

use tcpcopy::offline_clock::{ClockSettings, Speed};
use tcpcopy::packet::{self, Segment, SeqNum, TcpFlags, TcpOptions};
use tcpcopy::proto::{self, CopyMessage, CopyStreamDecoder, ReplyBatch, V6Layout, Version};
use tcpcopy::replay::feed::{FeedSettings, OfflineFeed};
use tcpcopy::replay::replicas::ReplicaPlan;
use tcpcopy::replay::rewrite::Rewriter;
use tcpcopy::replay::sink::{MemorySink, PacketSink, PcapFileSink};
use tcpcopy::replay::{Feed, PipelineConfig, SessionLimits, Shaping, ShardInputs, run_shards};
use tcpcopy::session::SessionConfig;
use tcpcopy::stats::{Counter, Counters};

const CLIENT: &str = "198.51.100.10:40000";
const ONLINE: &str = "198.51.100.20:80";
const TARGET: &str = "198.51.100.30:8080";
const COPY_CLIENT: &str = "203.0.113.7:40000";
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
const CLIENT_ISN: u32 = 1000;
const ONLINE_ISN: u32 = 5000;
const TARGET_ISN: u32 = 900_000;
/// How long the stand-in intercept waits for copy to connect before the test fails.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(10);

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn segment(src: &str, dst: &str, seq: u32, ack: u32, flags: TcpFlags, len: usize) -> Segment {
    Segment {
        src: addr(src),
        dst: addr(dst),
        seq: SeqNum(seq),
        ack: SeqNum(ack),
        flags,
        window: 64240,
        options: TcpOptions {
            mss: flags.syn().then_some(1460),
            ..TcpOptions::default()
        },
        ip_id: 1,
        ttl: 64,
        payload_len: len,
    }
}

fn ip_packet(segment: &Segment, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    packet::emit_ip(segment, payload, &mut out).unwrap();
    out
}

/// A pcap file (raw IP) holding the client's SYN, handshake ACK and one request.
fn client_capture(path: &std::path::Path) {
    let mut file = PcapFileSink::create(path).unwrap();
    let ack = TcpFlags::ACK;
    for (seg, payload) in [
        (
            segment(CLIENT, ONLINE, CLIENT_ISN, 0, TcpFlags::SYN, 0),
            &[][..],
        ),
        (
            segment(CLIENT, ONLINE, CLIENT_ISN + 1, ONLINE_ISN + 1, ack, 0),
            &[][..],
        ),
        (
            segment(
                CLIENT,
                ONLINE,
                CLIENT_ISN + 1,
                ONLINE_ISN + 1,
                ack | TcpFlags::PSH,
                REQUEST.len(),
            ),
            REQUEST,
        ),
    ] {
        file.send(seg.dst.ip(), &ip_packet(&seg, payload)).unwrap();
    }
}

/// Plays a 1.x intercept for one connection: reads the hello and registrations in version 6
/// and answers the first registration with the target's SYN-ACK headers.
fn fake_v6_intercept(listener: TcpListener) -> thread::JoinHandle<Vec<proto::Registration>> {
    thread::spawn(move || {
        let mut stream = accept_within(&listener, ACCEPT_TIMEOUT);
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut decoder = CopyStreamDecoder::new(Version::V6);
        let mut registrations = Vec::new();
        let mut buffer = [0u8; 1024];
        while registrations.is_empty() {
            let n = stream.read(&mut buffer).unwrap();
            assert!(n > 0, "copy closed the control connection");
            decoder.feed(&buffer[..n]);
            while let Some(message) = decoder.next_message().unwrap() {
                match message {
                    CopyMessage::Hello { version, .. } => assert_eq!(version, Version::V6),
                    CopyMessage::Registration(registration) => registrations.push(registration),
                    CopyMessage::Instance(_)
                    | CopyMessage::Response(_)
                    | CopyMessage::Refusal(_)
                    | CopyMessage::Unknown { .. } => {
                        panic!("a version-7 frame on version 6")
                    }
                }
            }
        }
        let syn_ack = segment(
            TARGET,
            COPY_CLIENT,
            TARGET_ISN,
            CLIENT_ISN + 1,
            TcpFlags::SYN | TcpFlags::ACK,
            0,
        );
        let mut batch = ReplyBatch::v6(V6Layout::Headers);
        batch.push(&ip_packet(&syn_ack, &[]), 0).unwrap();
        let mut frame = Vec::new();
        batch.flush_into(&mut frame);
        stream.write_all(&frame).unwrap();
        // Keep the connection open until copy is done with it.
        let _ = stream.read(&mut buffer);
        registrations
    })
}

/// The first connection to `listener`; panics if none comes within `timeout` (a copy that
/// never connects fails the test instead of hanging it).
fn accept_within(listener: &TcpListener, timeout: Duration) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return stream;
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "copy did not connect to the stand-in intercept within {timeout:?}"
                );
                thread::sleep(Duration::from_millis(10));
            }
            Err(err) => panic!("accepting copy's connection: {err}"),
        }
    }
}

#[test]
fn a_captured_connection_is_replayed_with_the_targets_sequence_numbers() {
    let dir = std::env::temp_dir().join(format!("tcpcopy-offline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("client.pcap");
    client_capture(&input);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let intercept_addr = listener.local_addr().unwrap();
    let intercept = fake_v6_intercept(listener);

    let sink = MemorySink::default();
    let config = PipelineConfig {
        rewriter: Rewriter::new(vec![format!("80-{TARGET}").parse().unwrap()]),
        shaping: Shaping {
            replicas: ReplicaPlan::new(1, 0, Some("203.0.113.7/32".parse().unwrap())),
            ..Shaping::default()
        },
        intercepts: vec![intercept_addr.to_string().parse().unwrap()],
        secret: None,
        limits: SessionLimits {
            session: Arc::new(SessionConfig::default()),
            mtu: 1500,
            max_sessions: 16,
        },
        drain: Duration::from_secs(1),
        no_reply: None,
        compare: None,
    };
    let feed = OfflineFeed::open(FeedSettings {
        paths: vec![input.clone()],
        filter: None,
        rounds: 1,
        clock: ClockSettings {
            speed: Speed::RECORDED,
            max_gap: None,
        },
    })
    .unwrap();
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let shard = ShardInputs {
        feed: Feed::Offline(Box::new(feed)),
        sink: Box::new(sink.clone()),
    };
    run_shards(&config, vec![shard], &stop, &counters, &[Arc::default()]).unwrap();

    let registrations = intercept.join().unwrap();
    assert_eq!(
        registrations,
        vec![proto::Registration::add(addr(COPY_CLIENT), addr(TARGET))]
    );

    let sent: Vec<(Segment, Vec<u8>)> = sink
        .packets()
        .iter()
        .map(|bytes| {
            let (segment, payload) = packet::parse_ip(bytes).unwrap();
            (segment, payload.to_vec())
        })
        .collect();
    let syn = &sent[0].0;
    assert!(syn.flags.syn() && !syn.flags.ack(), "first the SYN: {syn}");
    assert_eq!(
        (syn.src, syn.dst, syn.seq),
        (addr(COPY_CLIENT), addr(TARGET), SeqNum(CLIENT_ISN))
    );

    // Nothing acknowledges the request here, so copy sends it again on every RTO.
    let request: Vec<_> = sent
        .iter()
        .filter(|(_, payload)| !payload.is_empty())
        .collect();
    assert!(!request.is_empty(), "the request: {sent:?}");
    for (data, payload) in &request {
        assert_eq!(payload, REQUEST);
        assert_eq!(data.seq, SeqNum(CLIENT_ISN + 1));
        assert_eq!(
            data.ack,
            SeqNum(TARGET_ISN + 1),
            "acknowledges the target's SYN, not the online server's"
        );
    }
    assert!(
        sent.iter()
            .skip(1)
            .all(|(s, _)| s.ack == SeqNum(TARGET_ISN + 1) || s.flags.rst())
    );
    assert_eq!(
        counters.get(Counter::Retransmitted),
        request.len() as u64 - 1
    );

    assert_eq!(counters.get(Counter::Captured), 3);
    assert_eq!(counters.get(Counter::RepliesReceived), 1);
    assert_eq!(counters.get(Counter::Registrations), 1);
    assert_eq!(counters.get(Counter::Sent), sent.len() as u64);
    std::fs::remove_dir_all(&dir).unwrap();
}
