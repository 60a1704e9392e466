//! Offline replay, end to end: a bounded HTTP load is recorded with tcpdump on the online
//! host, then `tcpcopy copy --offline FILE --speed 2` replays the recording to the target
//! (assistant mode, intercept on the assistant) and exits by itself.
//!
//! What shows it:
//! - every request the online server logged reaches the target's nginx (counted in its
//!   access log), and copy opened one session per recorded connection;
//! - with `--loop 2 --speed max`, twice as many, each from its own client port, none reset;
//! - the replay took about half the recorded time. This is measured, not a wall-clock limit:
//!   copy logs the recorded span of the file, the span its clock scheduled (exactly half at
//!   `--speed 2`) and the span over which it actually fed the frames; the test asserts the
//!   scheduled span and, loosely (0.3× to 0.8× of the recorded span), the fed one.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::{Duration, Instant};

use common::{CLIENT_NET, Connections, HTTP_PORT, Host, Lab, Mode, Nginx, Proc, caught_up};

/// Bursts of the recorded load...
const BURSTS: usize = 8;
/// ... each of this many short connections, one request each...
const PER_BURST: usize = 25;
/// ... this far apart, so the recording spans a few seconds.
const BURST_SPACING: Duration = Duration::from_millis(400);
/// How long the replay may take, drain included.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the target may take to log the last replayed request after copy exited.
const CATCH_UP: Duration = Duration::from_secs(10);

#[test]
fn offline_replay_at_twice_the_speed_reaches_the_target() {
    let lab = Lab::up("offline", false).unwrap_or_else(|err| panic!("{err:#}"));
    let Recording {
        file,
        requests,
        target,
        _intercept,
    } = record(&lab);
    let started = Instant::now();
    let (log, totals) = replay(&lab, &file, &["--speed", "2"]);
    let elapsed = started.elapsed();

    let target_count = caught_up(CATCH_UP, requests, || target.access_count()).unwrap();
    assert_eq!(
        target_count, requests,
        "requests at the target; copy log:\n{log}"
    );
    assert_eq!(totals["sessions_opened"], requests as u64, "{totals:?}");
    assert_eq!(totals["requests_sent"], requests as u64, "{totals:?}");

    let (recorded, scheduled, fed) = (
        span(&log, "recorded"),
        span(&log, "scheduled"),
        span(&log, "fed"),
    );
    eprintln!(
        "e2e: recorded over {recorded:.3}s, scheduled over {scheduled:.3}s, fed over \
         {fed:.3}s; copy ran {:.3}s (drain included)",
        elapsed.as_secs_f64()
    );
    let expected_recorded = (BURSTS - 1) as f64 * BURST_SPACING.as_secs_f64();
    assert!(
        recorded >= expected_recorded,
        "the recording spans the load: {recorded}s"
    );
    assert!(
        (scheduled - recorded / 2.0).abs() <= 0.002,
        "--speed 2 schedules half the recorded span: {scheduled}s of {recorded}s"
    );
    assert!(
        (0.3..=0.8).contains(&(fed / recorded)),
        "the frames were fed over {fed}s of {recorded}s recorded"
    );
}

/// `--loop 2` at `--speed max`: the second round replays every connection again from other
/// client ports, so the target answers both rounds in full and resets nothing.
#[test]
fn offline_replay_looped_twice_at_max_speed_reaches_the_target_twice() {
    let lab = Lab::up("offloop", false).unwrap_or_else(|err| panic!("{err:#}"));
    let Recording {
        file,
        requests,
        target,
        _intercept,
    } = record(&lab);
    let (log, totals) = replay(&lab, &file, &["--speed", "max", "--loop", "2"]);

    let target_count = caught_up(CATCH_UP, 2 * requests, || target.access_count()).unwrap();
    assert_eq!(
        target_count,
        2 * requests,
        "requests at the target; copy log:\n{log}"
    );
    assert_eq!(totals["sessions_opened"], 2 * requests as u64, "{totals:?}");
    assert_eq!(totals["sessions_closed"], 2 * requests as u64, "{totals:?}");
    assert_eq!(totals["sessions_reset"], 0, "{totals:?}");
    let ports: BTreeSet<u16> = target
        .access_entries()
        .unwrap()
        .iter()
        .map(|entry| entry.client.port())
        .collect();
    assert_eq!(
        ports.len(),
        2 * requests,
        "every replayed connection has its own port"
    );
    assert_eq!(span(&log, "scheduled"), 0.0, "no schedule at --speed max");
}

/// A recorded load, and the target and intercept it is replayed through.
struct Recording {
    file: String,
    requests: usize,
    target: Nginx,
    _intercept: Proc,
}

/// Starts the servers and intercept, records a bounded load of short connections with
/// tcpdump on the online host (both directions, as an operator would).
fn record(lab: &Lab) -> Recording {
    let online = lab.start_nginx(Host::Online).unwrap();
    let target = lab.start_nginx(Host::Target).unwrap();
    let intercept = lab.start_intercept(Mode::Assistant, HTTP_PORT).unwrap();
    let mut recording = lab
        .capture(Host::Online, &format!("tcp port {HTTP_PORT}"))
        .unwrap();
    for burst in 0..BURSTS {
        if burst > 0 {
            thread::sleep(BURST_SPACING);
        }
        lab.http_load(
            Host::Client,
            Host::Online.socket(HTTP_PORT),
            PER_BURST,
            Connections::Short,
        )
        .unwrap()
        .assert_all_ok(PER_BURST, "the recorded load");
    }
    let requests = BURSTS * PER_BURST;
    let online_count = caught_up(CATCH_UP, requests, || online.access_count()).unwrap();
    assert_eq!(online_count, requests, "requests at the online server");
    let summary = recording.stop().unwrap();
    assert_eq!(summary.dropped_by_kernel, 0, "tcpdump lost packets");
    Recording {
        file: recording.file().to_string_lossy().into_owned(),
        requests,
        target,
        _intercept: intercept,
    }
}

/// Runs `copy --offline FILE` on the online host in assistant mode with `extra` flags until
/// it exits by itself; returns its log and exit totals, failing unless it exits 0.
fn replay(lab: &Lab, file: &str, extra: &[&str]) -> (String, BTreeMap<String, u64>) {
    let map = format!(
        "{}:{HTTP_PORT}-{}",
        Host::Online.addr(),
        Host::Target.socket(HTTP_PORT)
    );
    let intercept = Host::Assistant.addr().to_string();
    let mut args = vec![
        common::tcpcopy_bin(),
        "copy",
        "--offline",
        file,
        "-x",
        &map,
        "-s",
        &intercept,
        "-c",
        CLIENT_NET,
        "--stats-interval",
        "1s",
    ];
    args.extend_from_slice(extra);
    let output = lab
        .spawn(Host::Online, &args)
        .unwrap()
        .finish(REPLAY_TIMEOUT)
        .unwrap();
    let log = output.stderr;
    assert_eq!(output.status.code(), Some(0), "copy --offline:\n{log}");
    let totals =
        common::copy_exit_totals(&log, "copy --offline").unwrap_or_else(|err| panic!("{err:#}"));
    (log, totals)
}

/// The "NAME over N.NNNs" of the replay's summary line, in seconds.
fn span(log: &str, name: &str) -> f64 {
    let line = log
        .lines()
        .find(|line| line.contains("recorded over"))
        .unwrap_or_else(|| panic!("no replay summary in:\n{log}"));
    let (_, rest) = line
        .split_once(&format!("{name} over "))
        .unwrap_or_else(|| panic!("no {name} span in {line}"));
    rest.split('s')
        .next()
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no number after {name} in {line}"))
}
