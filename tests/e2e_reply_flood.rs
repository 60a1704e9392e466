//! Intercept under a flood of replies for flows no copy registered (issue 10, "bounded under
//! floods"), in assistant mode: while a real client keeps making requests through the online
//! host (keep-alive connections open before the flood, and a new short connection each round),
//! the target's namespace sends [`FLOOD_SEGMENTS`] reply-shaped segments from the target's
//! address and port 80 to [`FLOOD_SEGMENTS`] distinct client ends in 203.0.113.0/24: SYN-ACKs,
//! RSTs and data segments in turn (`common::Flood` of `FloodShape::Replies`). The target routes
//! that net via the assistant, so they take the path its real replies take, into intercept's
//! capture. intercept parks the SYN-ACKs and RSTs (one may have overtaken its registration) at
//! most `RouterLimits::max_parked` at a time, and counts the data segments as unrouted. Counts
//! come from both nginx access logs, intercept's and copy's exit totals, and a netfilter rule on
//! the target that counts every segment leaving it for the client net.
//!
//! What must hold (docs/reliability.md, "Floods"):
//! - intercept's peak RSS (VmHWM) stays under [`memory_bound_kib`]: its peak before the flood
//!   plus [`PARKED_BYTES`] per parked reply of the full park plus [`CAPTURE_RING_BYTES`] and
//!   [`OUTBOUND_BYTES`];
//! - every segment the target sent toward the assistant was captured or counted dropped by
//!   the kernel (`captured + kernel_dropped` equals the netfilter count), and every captured
//!   reply ended exactly once: routed, unrouted, dropped for a slow copy or as a parked reply
//!   whose registration never came (`parked_replies_dropped`), or malformed;
//! - the flood is counted: each SYN-ACK and RST was parked and dropped, each data segment
//!   unrouted (less what the kernel dropped, if it dropped any);
//! - copy is unaffected: intercept routed every real reply and none of the flood (copy's
//!   `replies_unmatched` is 0), and the target logged every request the online server logged,
//!   request by request, including the sessions opened during and after the flood.
//!
//! Measured (2 shared cores, two runs, docs/reliability.md): intercept's VmHWM went from
//! 10.4-10.5 MiB before the flood to 66.8-67.0 MiB at its peak (bound 79 MiB), about 900 bytes
//! per parked reply; the kernel dropped none of the flood; its 666,667 SYN-ACKs and RSTs were
//! parked and dropped, its 333,333 data segments unrouted, every real reply routed.
//!
//! Topology and addresses: `scripts/lab.sh`.

mod common;

use std::time::Duration;

use common::{
    AFTER_FLOOD_REQUESTS, FLOOD_PER_SECOND, Flood, FloodShape, HTTP_PORT, Host, HttpRequest, Lab,
    Link, Mode, REAL_CONNECTIONS, SegmentKind, assert_same_requests, connections_after_flood,
    keep_alive_rounds, real_connections_replayed, real_load_during, settled, short_connections,
    stable, wait_for_sessions_to_end,
};
use tcpcopy::intercept::RouterLimits;

/// Segments of the flood, each its own flow.
const FLOOD_SEGMENTS: usize = 1_000_000;
/// What one parked reply may cost intercept at most: the copy of its packet (at most 228
/// bytes, with the allocator's overhead 240), its entry in its flow's queue (a queue of four
/// 40-byte slots per flow: 176), its flow's entry in the park's map (97 bytes a bucket, up to
/// twice the buckets needed and the old table beside the new one while it grows: 290) and in
/// the age order (88 bytes, doubled while it grows: 176): 882 bytes, rounded up.
const PARKED_BYTES: u64 = 1024;
/// intercept's capture ring (`-B`, 4 MiB by default), all of it resident once the flood has
/// filled it.
const CAPTURE_RING_BYTES: u64 = 4 * 1024 * 1024;
/// The outbound buffer of intercept's one copy connection (copy runs with one shard).
const OUTBOUND_BYTES: u64 = 512 * 1024;
/// How long the target may take to log every replayed request, and copy to end its
/// sessions, once the clients are done.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the target's count of replies must stay put before it is read.
const QUIET: Duration = Duration::from_secs(2);
/// How the client's load is named when a request fails.
const HTTP_LOAD: &str = "client requests to the online server";

#[test]
fn a_reply_flood_leaves_intercept_bounded_and_copy_replaying() {
    let lab = Lab::up("rflood", false).unwrap_or_else(|err| panic!("{err:#}"));
    let online = lab.start_nginx(Host::Online).unwrap();
    let target = lab.start_nginx(Host::Target).unwrap();
    lab.count_link(Link::RepliesToAssistant, HTTP_PORT).unwrap();
    let replication = lab
        .start_replication_with(Mode::Assistant, &["--workers", "1"])
        .unwrap_or_else(|err| panic!("{err:#}"));
    let online_addr = Host::Online.socket(HTTP_PORT);

    let mut connections = real_connections_replayed(&lab, online_addr, &target);
    let fixed_kib = replication.intercept().status_kib("VmHWM").unwrap();

    // The flood from the target, with the real client sending all through it: a request on
    // every keep-alive connection and one on a new connection each round.
    let flood = Flood {
        server: Host::Target.socket(HTTP_PORT),
        shape: FloodShape::Replies,
        segments: FLOOD_SEGMENTS,
        per_second: FLOOD_PER_SECOND,
    };
    // Each round opens a short connection too: the rounds run in the client's namespace.
    let (report, rounds) = lab
        .in_host(Host::Client, || {
            Ok(real_load_during(
                || lab.in_host(Host::Target, || flood.send()),
                || {
                    keep_alive_rounds(&mut connections, 1, &[HttpRequest::ROOT])
                        .assert_all_ok(REAL_CONNECTIONS, HTTP_LOAD);
                    short_connections(online_addr, 1, &[HttpRequest::ROOT])
                        .assert_all_ok(1, HTTP_LOAD);
                },
            ))
        })
        .unwrap();
    let report = report.unwrap_or_else(|err| panic!("{err:#}"));
    let flood_peak_kib = replication.intercept().status_kib("VmHWM").unwrap();
    eprintln!("e2e: flood {report:?}, {rounds} rounds of real requests during it");
    assert_eq!(
        (report.sent, report.failed),
        (FLOOD_SEGMENTS, 0),
        "every flood segment left"
    );
    assert!(rounds > 0, "the real client sent during the flood");

    // New sessions after the flood.
    connections_after_flood(&lab, online_addr);
    drop(connections);
    let expected = REAL_CONNECTIONS * (1 + rounds) + rounds + AFTER_FLOOD_REQUESTS;
    settled(
        CATCH_UP_TIMEOUT,
        || target.access_entries(),
        |logged| logged.len() >= expected,
    )
    .unwrap();
    wait_for_sessions_to_end(replication.copy(), CATCH_UP_TIMEOUT)
        .unwrap_or_else(|err| panic!("{err:#}\ncopy log:\n{}", replication.copy().stderr()));
    let peak_kib = replication.intercept().status_kib("VmHWM").unwrap();
    let left_kib = replication.intercept().status_kib("VmRSS").unwrap();
    // What the target sent toward the assistant: read once it stays put, and once more after
    // intercept stopped (nothing should have left in between).
    let sent_before_stop = stable(CATCH_UP_TIMEOUT, QUIET, || {
        lab.link_packets(Link::RepliesToAssistant)
    })
    .unwrap();
    let totals = replication.stop().unwrap_or_else(|err| panic!("{err:#}"));
    let sent_after_stop = lab.link_packets(Link::RepliesToAssistant).unwrap();
    let online_log = online.access_entries().unwrap();
    let target_log = target.access_entries().unwrap();
    eprintln!(
        "e2e: intercept VmHWM {fixed_kib} KiB before the flood, {flood_peak_kib} KiB as it \
         ended, {peak_kib} KiB at the end (bound {} KiB), VmRSS {left_kib} KiB; the target \
         sent {sent_before_stop}..{sent_after_stop} segments toward the assistant\n\
         intercept totals: {:?}\ncopy totals: {:?}",
        memory_bound_kib(fixed_kib),
        totals.intercept,
        totals.copy
    );

    // Copy is unaffected: every request replayed, request by request.
    assert_eq!(
        online_log.len(),
        expected,
        "the online server logs every request"
    );
    assert_same_requests(&online_log, &target_log, "");

    // Bounded memory.
    assert!(
        peak_kib <= memory_bound_kib(fixed_kib),
        "intercept's peak RSS {peak_kib} KiB is above its bound {} KiB ({fixed_kib} KiB \
         before the flood + {} parked replies x {PARKED_BYTES} B + {CAPTURE_RING_BYTES} B of \
         capture ring + {OUTBOUND_BYTES} B outbound)",
        memory_bound_kib(fixed_kib),
        max_parked()
    );

    // The capture saw everything the target sent toward the assistant, or said it dropped it.
    let intercept = |name| totals.intercept(name);
    let kernel_dropped = intercept("kernel_dropped");
    let seen = intercept("captured") + kernel_dropped;
    assert!(
        (sent_before_stop..=sent_after_stop).contains(&seen),
        "intercept captured {} and the kernel dropped {kernel_dropped} of the \
         {sent_before_stop}..{sent_after_stop} segments the target sent toward the assistant",
        intercept("captured")
    );
    // Each captured reply ended exactly one way.
    let endings = intercept("malformed")
        + intercept("replies_routed")
        + intercept("replies_unrouted")
        + intercept("replies_dropped_slow_peer")
        + intercept("parked_replies_dropped");
    assert_eq!(
        intercept("captured"),
        endings,
        "captured = malformed + routed + unrouted + dropped for a slow copy + parked and \
         dropped; intercept totals: {:?}",
        totals.intercept
    );
    // The flood is counted, as far as the capture saw it.
    let parkable = (flood.count(SegmentKind::SynAck) + flood.count(SegmentKind::Rst)) as u64;
    let data = flood.count(SegmentKind::Data) as u64;
    for (counter, at_least) in [
        ("replies_parked", parkable),
        ("parked_replies_dropped", parkable),
        ("replies_unrouted", data),
    ] {
        assert!(
            intercept(counter) >= at_least.saturating_sub(kernel_dropped),
            "{counter} {} for {at_least} flood segments, {kernel_dropped} dropped by the \
             kernel; intercept totals: {:?}",
            intercept(counter),
            totals.intercept
        );
    }
    // Every real reply was routed to copy, and none of the flood.
    let flood_sent = FLOOD_SEGMENTS as u64;
    let real_replies = sent_before_stop.saturating_sub(flood_sent)..=sent_after_stop - flood_sent;
    assert!(
        intercept("replies_routed") <= *real_replies.end()
            && intercept("replies_routed") + kernel_dropped >= *real_replies.start(),
        "intercept routed {} replies of the target's {real_replies:?} real ones \
         ({kernel_dropped} dropped by the kernel); intercept totals: {:?}",
        intercept("replies_routed"),
        totals.intercept
    );
    assert_eq!(
        intercept("replies_dropped_slow_peer"),
        0,
        "intercept kept up with copy"
    );
    assert_eq!(
        totals.copy("replies_unmatched"),
        0,
        "no flood reply reached copy; copy totals: {:?}",
        totals.copy
    );
}

/// The park's size: how many replies intercept keeps for registrations that may follow.
fn max_parked() -> u64 {
    RouterLimits::default().max_parked as u64
}

/// intercept's peak RSS may be at most its peak before the flood (`fixed_kib`), plus
/// [`PARKED_BYTES`] for each reply of a full park, plus its capture ring and outbound buffer.
fn memory_bound_kib(fixed_kib: u64) -> u64 {
    fixed_kib + (max_parked() * PARKED_BYTES + CAPTURE_RING_BYTES + OUTBOUND_BYTES) / 1024
}
