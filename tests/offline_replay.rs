//! `tcpcopy copy --offline` as a user runs it, without root or a network: a pcap file of
//! several client connections (Ethernet frames, recorded timestamps with a long silence) is
//! replayed into `--output FILE.pcap`, and the copies are read back.
//!
//! - Determinism: the same file and flags give the same packets in the same order, twice.
//!   Nothing answers, so the SYNs are retransmitted on their timers, and the recording is
//!   timed so that each connection's SYN is due exactly when the SYN before it is sent the
//!   third time (250 + 500 ms after the first): on the replay clock the timer comes first;
//!   a replay timed by when the shard got to each event would order them by chance.
//! - `--loop 2` replays every connection twice, the second round from other client ports.
//! - A file whose last record is cut short is replayed up to there, drained, and copy exits 0.
//! - The progress bar shows on a terminal only, and not with `-q`.
//!
//! The intercept address is a closed port on loopback: copy retries it and never gets an
//! answer, so no packet goes anywhere but into the output file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use tcpcopy::packet::{self, Segment, SeqNum, TcpFlags, TcpOptions};

/// Client connections in the recording.
const CONNECTIONS: u16 = 4;
/// Recorded time between two connections: 750 ms at `--speed 2`, when the SYN before is
/// retransmitted the second time (the initial RTO is 250 ms, then doubles).
const SPACING_MICROS: u64 = 1_500_000;
/// The first client port; connection `i` uses `FIRST_PORT + i`.
const FIRST_PORT: u16 = 40_000;
const ONLINE: &str = "198.51.100.20:80";
const TARGET: &str = "198.51.100.30:80";
/// Recorded start, in seconds since the epoch.
const START_SECS: i64 = 1_700_000_000;

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("tcpcopy-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn client_segment(port: u16, seq: u32, flags: TcpFlags, len: usize) -> Segment {
    Segment {
        src: format!("198.51.100.10:{port}").parse().unwrap(),
        dst: ONLINE.parse().unwrap(),
        seq: SeqNum(seq),
        ack: SeqNum(if flags.ack() { 7_001 } else { 0 }),
        flags,
        window: 64_240,
        options: TcpOptions {
            mss: flags.syn().then_some(1460),
            ..TcpOptions::default()
        },
        ip_id: port,
        ttl: 64,
        payload_len: len,
    }
}

/// An Ethernet frame carrying `segment` and `payload`.
fn ethernet(segment: &Segment, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![2, 0, 0, 0, 0, 0x20, 2, 0, 0, 0, 0, 0x10, 0x08, 0x00];
    packet::emit_ip(segment, payload, &mut frame).unwrap();
    frame
}

/// The recording: connection `i` opens at `i` × [`SPACING_MICROS`] (SYN, ACK, one request),
/// except that the second half opens after a silence of 5 s more; every record stamped with
/// its time.
fn recording(path: &Path, cut_last_record_by: usize) {
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut records = Vec::new();
    for i in 0..CONNECTIONS {
        let port = FIRST_PORT + i;
        let silence = if i >= CONNECTIONS / 2 { 5_000_000 } else { 0 };
        let at = u64::from(i) * SPACING_MICROS + silence;
        let isn = 1_000 * u32::from(i + 1);
        let psh = TcpFlags::ACK | TcpFlags::PSH;
        records.push((at, client_segment(port, isn, TcpFlags::SYN, 0), &[][..]));
        records.push((
            at + 400,
            client_segment(port, isn + 1, TcpFlags::ACK, 0),
            &[],
        ));
        let data = client_segment(port, isn + 1, psh, request.len());
        records.push((at + 900, data, &request[..]));
    }
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET).unwrap();
    let mut file = dead.savefile(path).unwrap();
    for (micros, segment, payload) in &records {
        let frame = ethernet(segment, payload);
        let header = pcap::PacketHeader {
            ts: libc::timeval {
                tv_sec: START_SECS + (*micros / 1_000_000) as i64,
                tv_usec: (*micros % 1_000_000) as libc::suseconds_t,
            },
            caplen: frame.len() as u32,
            len: frame.len() as u32,
        };
        file.write(&pcap::Packet::new(&header, &frame));
    }
    file.flush().unwrap();
    drop(file);
    if cut_last_record_by > 0 {
        let bytes = std::fs::read(path).unwrap();
        std::fs::write(path, &bytes[..bytes.len() - cut_last_record_by]).unwrap();
    }
}

/// Runs `copy --offline input --output output` with `extra` flags; returns its stderr.
fn replay(input: &Path, output: &Path, extra: &[&str]) -> String {
    let intercept = closed_loopback_port();
    let out = Command::new(env!("CARGO_BIN_EXE_tcpcopy"))
        .args(["copy", "--offline"])
        .arg(input)
        .args(["-x", &format!("80-{TARGET}"), "-c", "203.0.113.0/24"])
        .args(["-s", &intercept, "--drain", "600ms", "--output"])
        .arg(output)
        .args(extra)
        .output()
        .expect("run tcpcopy");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    stderr
}

/// A loopback address where nothing listens: a port just bound and closed again.
fn closed_loopback_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// The IP packets of a pcap file written by `--output`, in order.
fn packets(path: &Path) -> Vec<Vec<u8>> {
    let mut file = pcap::Capture::from_file(path).unwrap();
    let mut out = Vec::new();
    while let Ok(packet) = file.next_packet() {
        out.push(packet.data.to_vec());
    }
    out
}

fn segments(packets: &[Vec<u8>]) -> Vec<Segment> {
    packets
        .iter()
        .map(|bytes| packet::parse_ip(bytes).unwrap().0)
        .collect()
}

/// The first "NAME over N.NNNs" of the replay's summary line, in seconds.
fn summary_span(log: &str, name: &str) -> f64 {
    let line = log
        .lines()
        .find(|line| line.contains("replayed") && line.contains("recorded over"))
        .unwrap_or_else(|| panic!("no summary in:\n{log}"));
    let (_, rest) = line.split_once(&format!("{name} over ")).unwrap();
    rest.trim_end_matches(|c: char| !c.is_ascii_digit())
        .split('s')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn the_same_file_and_flags_give_the_same_packets_in_the_same_order() {
    let scratch = Scratch::new("offline-determinism");
    let input = scratch.path("in.pcap");
    recording(&input, 0);
    let flags = ["--speed", "2", "--max-gap", "2s", "--loop", "2"];
    let (first, second) = (scratch.path("1.pcap"), scratch.path("2.pcap"));
    let log = replay(&input, &first, &flags);
    replay(&input, &second, &flags);
    let (first, second) = (packets(&first), packets(&second));
    assert_eq!(first, second, "two replays of one file differ");

    let sent = segments(&first);
    let syns: Vec<&Segment> = sent
        .iter()
        .filter(|s| s.flags.syn() && !s.flags.ack())
        .collect();
    let ports: BTreeSet<u16> = syns.iter().map(|s| s.src.port()).collect();
    assert_eq!(
        ports.len(),
        2 * usize::from(CONNECTIONS),
        "each round opens every connection from its own port: {ports:?}"
    );
    let recorded: BTreeSet<u16> = (FIRST_PORT..FIRST_PORT + CONNECTIONS).collect();
    assert_eq!(
        ports.intersection(&recorded).count(),
        usize::from(CONNECTIONS)
    );
    assert!(
        syns.len() > ports.len(),
        "unanswered SYNs are retransmitted on their timers: {} SYNs",
        syns.len()
    );
    assert!(sent.iter().all(|s| s.dst == TARGET.parse().unwrap()));
    let syn_from = |port: u16| {
        sent.iter()
            .enumerate()
            .filter(move |(_, s)| s.flags.syn() && s.src.port() == port)
            .map(|(at, _)| at)
    };
    for i in 1..CONNECTIONS {
        let before = FIRST_PORT + i - 1;
        let third_of_before = syn_from(before).nth(2).expect("a third SYN");
        let first = syn_from(FIRST_PORT + i).next().unwrap();
        assert!(
            third_of_before < first,
            "the timer due with connection {i}'s SYN fires first: {:?}",
            &sent[first.min(third_of_before)..=first.max(third_of_before)]
        );
    }
    assert!(
        sent.iter().filter(|s| s.flags.rst()).count() >= ports.len(),
        "every connection open at the end is reset"
    );

    // A round spans 3 × 1.5 s + 5 s of silence + 0.9 ms; the silence (6499.1 ms between
    // two frames) is cut to 2 s, and the speed halves the rest.
    let (recorded, scheduled) = (
        summary_span(&log, "recorded"),
        summary_span(&log, "scheduled"),
    );
    assert!((recorded - 2.0 * 9.5009).abs() < 0.001, "{log}");
    assert!((scheduled - 2.0 * 5.0018 / 2.0).abs() < 0.001, "{log}");
}

#[test]
fn a_record_cut_short_ends_the_file_and_the_replay_drains() {
    let scratch = Scratch::new("offline-truncated");
    let input = scratch.path("cut.pcap");
    recording(&input, 10);
    let output = scratch.path("out.pcap");
    let log = replay(&input, &output, &["--speed", "max"]);
    assert!(
        log.contains("the last record is cut short") && log.contains("cut.pcap"),
        "{log}"
    );
    assert!(log.contains("letting sessions finish"), "{log}");
    let syns = segments(&packets(&output))
        .into_iter()
        .filter(|s| s.flags.syn())
        .map(|s| s.src.port())
        .collect::<BTreeSet<_>>();
    assert_eq!(syns.len(), usize::from(CONNECTIONS), "{log}");
}

/// The progress bar: drawn when stderr is a terminal (here a pseudo-terminal from
/// `script(1)`), never with `-q`, never when stderr is a pipe or a file.
#[test]
fn the_progress_bar_shows_on_a_terminal_only_and_not_with_q() {
    let scratch = Scratch::new("offline-progress");
    let input = scratch.path("in.pcap");
    recording(&input, 0);
    let output = scratch.path("out.pcap");
    let on_terminal = |extra: &str| {
        let command = format!(
            "{} copy --offline {} -x 80-{TARGET} -c 203.0.113.0/24 -s {} --drain 300ms --speed 4 --output {} {extra}",
            env!("CARGO_BIN_EXE_tcpcopy"),
            input.display(),
            closed_loopback_port(),
            output.display(),
        );
        let out = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env("TERM", "xterm")
            .output()
            .expect("run script(1), from bsdutils");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown = on_terminal("");
    assert!(
        shown.contains("ETA") && shown.contains("elapsed"),
        "{shown}"
    );
    assert!(shown.contains("sessions"), "{shown}");
    let quiet = on_terminal("-q");
    assert!(!quiet.contains("ETA"), "{quiet}");
    let piped = replay(&input, &output, &["--speed", "4"]);
    assert!(!piped.contains("ETA"), "{piped}");
}
