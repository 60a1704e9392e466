//! Copy under a SYN flood (issue 10, "bounded under floods"): while real HTTP clients keep
//! sending through the online host, [`FLOOD_SYNS`] SYNs from distinct client ends inside the
//! lab's client net (none ever followed by an ACK or data) reach the online port, with copy
//! capped at `--max-sessions` [`MAX_SESSIONS`]. Counts come from both nginx access logs.
//!
//! What must hold (docs/reliability.md, "Floods"):
//! - copy's peak RSS (VmHWM) stays under [`memory_bound_kib`]: its RSS before the flood plus
//!   [`SESSION_BYTES`] per session of the cap plus [`QUEUED_BYTES`] for what the capture
//!   queues may hold;
//! - the flows beyond the cap are counted (`sessions_evicted`, `sessions_over_limit`, ...);
//! - the keep-alive sessions open before the flood keep replaying: the target logs every
//!   request the online server logged, request by request;
//! - new sessions opened after the flood replay again within [`RECOVERY`] of its end.
//!
//! Topology and addresses: `scripts/lab.sh`; the flood: `common::Flood` of `FloodShape::Syns`.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{
    AFTER_FLOOD_REQUESTS, AccessEntry, FLOOD_PER_SECOND, Flood, FloodShape, Host, HttpRequest, Lab,
    Mode, Nginx, REAL_CONNECTIONS, RequestKey, assert_same_requests, caught_up,
    connections_after_flood, keep_alive_rounds, real_connections_replayed, real_load_during,
    settled, wait_until,
};

/// Copy's session cap for the test (one shard, so the cap is the whole table).
const MAX_SESSIONS: usize = 10_000;
/// SYNs of the flood, each its own flow: 100 times the cap.
const FLOOD_SYNS: usize = 1_000_000;
/// What one session of a full table may cost copy at most: its boxed `Session`, its entries in
/// the table's maps, eviction order and timer heap, and its flow's registration (measured:
/// docs/reliability.md, "Floods").
const SESSION_BYTES: u64 = 4 * 1024;
/// What copy's queues (capture ring, per-shard backlog) may hold beyond the sessions while a
/// flood arrives faster than a shard opens sessions: the 32 MiB per-shard backlog.
const QUEUED_BYTES: u64 = 32 * 1024 * 1024;
/// How soon after the flood new sessions must replay again (the promise).
const RECOVERY: Duration = Duration::from_secs(10);
/// How long the target may take to log every replayed request once the clients are done.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How the client's load is named when a request fails.
const HTTP_LOAD: &str = "client requests to the online server";

#[test]
fn a_syn_flood_leaves_copy_bounded_and_real_sessions_replaying() {
    let lab = Lab::up("fldsy", false).unwrap_or_else(|err| panic!("{err:#}"));
    let online = lab.start_nginx(Host::Online).unwrap();
    let target = lab.start_nginx(Host::Target).unwrap();
    let max_sessions = MAX_SESSIONS.to_string();
    let replication = lab
        .start_replication_with(
            Mode::Assistant,
            &["--max-sessions", &max_sessions, "--workers", "1"],
        )
        .unwrap_or_else(|err| panic!("{err:#}"));
    let online_addr = Host::Online.socket(80);

    let mut connections = real_connections_replayed(&lab, online_addr, &target);
    let fixed_kib = replication.copy().status_kib("VmHWM").unwrap();

    // The flood, with every keep-alive connection sending request after request all through it.
    let flood = Flood {
        server: online_addr,
        shape: FloodShape::Syns,
        segments: FLOOD_SYNS,
        per_second: FLOOD_PER_SECOND,
    };
    let (flood, rounds) = real_load_during(
        || lab.in_host(Host::Client, || flood.send()),
        || {
            keep_alive_rounds(&mut connections, 1, &[HttpRequest::ROOT])
                .assert_all_ok(REAL_CONNECTIONS, HTTP_LOAD);
        },
    );
    let flood_ended = Instant::now();
    let flood = flood.unwrap_or_else(|err| panic!("{err:#}"));
    eprintln!("e2e: flood {flood:?}, {rounds} keep-alive rounds during it");
    assert_eq!(
        (flood.sent, flood.failed),
        (FLOOD_SYNS, 0),
        "every flood SYN left"
    );
    assert!(rounds > 0, "the real clients sent during the flood");

    // New sessions after the flood: each of these connections must replay within RECOVERY.
    let keep_alive_requests = REAL_CONNECTIONS * (1 + rounds);
    connections_after_flood(&lab, online_addr);
    let after_flood = logged_after(&online, keep_alive_requests, AFTER_FLOOD_REQUESTS);
    let recovered = wait_until(
        RECOVERY.saturating_sub(flood_ended.elapsed()),
        "the target to log the sessions opened after the flood",
        || {
            let replayed: HashSet<RequestKey> = target
                .access_entries()?
                .iter()
                .map(AccessEntry::key)
                .collect();
            Ok(after_flood
                .iter()
                .all(|entry| replayed.contains(&entry.key())))
        },
    );
    let recovered_in = flood_ended.elapsed();
    // The table is still full of flood sessions (they idle until evicted), the queues drained.
    let full_table_kib = replication.copy().status_kib("VmRSS").unwrap();

    drop(connections);
    let expected = keep_alive_requests + AFTER_FLOOD_REQUESTS;
    settled(
        CATCH_UP_TIMEOUT,
        || target.access_entries(),
        |logged| logged.len() >= expected,
    )
    .unwrap();
    let peak_kib = replication.copy().status_kib("VmHWM").unwrap();
    let totals = replication.stop().unwrap_or_else(|err| panic!("{err:#}"));
    let online_log = online.access_entries().unwrap();
    let target_log = target.access_entries().unwrap();
    eprintln!(
        "e2e: copy VmHWM {fixed_kib} KiB before the flood, {peak_kib} KiB at its peak \
         (bound {} KiB), VmRSS {full_table_kib} KiB with a full table after it; recovered in {recovered_in:?}\ncopy totals: {:?}\nintercept totals: {:?}",
        memory_bound_kib(fixed_kib),
        totals.copy,
        totals.intercept
    );

    assert_eq!(
        online_log.len(),
        expected,
        "the online server logs every request"
    );
    assert_same_requests(&online_log, &target_log, "");
    recovered.unwrap_or_else(|err| {
        panic!("{err:#}: new sessions did not replay within {RECOVERY:?} of the flood's end")
    });
    assert!(
        peak_kib <= memory_bound_kib(fixed_kib),
        "copy's peak RSS {peak_kib} KiB is above its bound {} KiB ({fixed_kib} KiB before the \
         flood + {MAX_SESSIONS} sessions x {SESSION_BYTES} B + {QUEUED_BYTES} B queued)",
        memory_bound_kib(fixed_kib)
    );
    let copy = |name| totals.copy(name);
    assert!(
        copy("sessions_evicted") > 0,
        "a full table made room by evicting flood sessions; copy totals: {:?}",
        totals.copy
    );
    // Every flood SYN the capture delivered opened a session or was counted as refused, and
    // every one of the cap's sessions beyond the cap made room by evicting one.
    let refused = copy("sessions_over_limit") + copy("sessions_shed");
    let delivered = FLOOD_SYNS as u64 - copy("kernel_dropped").min(FLOOD_SYNS as u64);
    let real_sessions = (REAL_CONNECTIONS + AFTER_FLOOD_REQUESTS) as u64;
    assert!(
        copy("sessions_opened") + refused >= delivered + real_sessions,
        "every flow copy saw opened a session or was counted as refused; copy totals: {:?}",
        totals.copy
    );
    assert!(
        copy("sessions_evicted") + copy("sessions_timed_out") + copy("handshakes_failed")
            >= copy("sessions_opened").saturating_sub(MAX_SESSIONS as u64 + real_sessions),
        "each session opened beyond the cap made room by ending another; copy totals: {:?}",
        totals.copy
    );
}

/// Copy's peak RSS may be at most what it was before the flood (`fixed_kib`), plus
/// [`SESSION_BYTES`] for each session of the cap, plus [`QUEUED_BYTES`].
fn memory_bound_kib(fixed_kib: u64) -> u64 {
    fixed_kib + (MAX_SESSIONS as u64 * SESSION_BYTES + QUEUED_BYTES) / 1024
}

/// The `count` requests `nginx` logged after its first `skipped`, once it has logged them.
fn logged_after(nginx: &Nginx, skipped: usize, count: usize) -> Vec<AccessEntry> {
    let logged = caught_up(CATCH_UP_TIMEOUT, skipped + count, || {
        Ok(nginx.access_entries()?.len())
    })
    .unwrap();
    assert_eq!(
        logged,
        skipped + count,
        "the online server logs every request"
    );
    nginx.access_entries().unwrap().split_off(skipped)
}
