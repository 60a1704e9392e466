//! Copy with two shards, in assistant mode: the kernel's fanout gives every flow to exactly
//! one shard, and every reply of the target reaches the shard that registered its flow,
//! with one intercept and with two (each shard registers its flows on its own link to every
//! intercept, and an intercept routes a reply to the link that registered it).
//!
//! What shows it, from copy's and intercept's exit totals and the target's access log:
//! - the target logged exactly the requests the client made;
//! - copy opened exactly one session per client connection (a flow seen by both shards
//!   would open two), and each shard opened some of them;
//! - no reply reached a shard without the session (`replies_unmatched` 0), and copy received
//!   every reply the intercepts routed.

mod common;

use std::time::Duration;

use common::{
    CLIENT_NET, Connections, HTTP_PORT, Host, Lab, Mode, Proc, READY_TIMEOUT,
    intercept_connections, last_counters, settled, stop_copy, stop_with_totals, wait_for_log,
    wait_until,
};

/// Short connections of the load, one request each.
const CONNECTIONS: usize = 300;
/// Shards of the copy under test.
const SHARDS: usize = 2;
/// The control port of the second intercept (the first uses the default).
const SECOND_INTERCEPT_PORT: u16 = 36_525;
/// How long the target may take to catch up with the online server.
const CATCH_UP: Duration = Duration::from_secs(60);

#[test]
fn two_shards_with_one_intercept_own_their_flows_and_replies() {
    two_shards("shard1", 1);
}

#[test]
fn two_shards_with_two_intercepts_own_their_flows_and_replies() {
    two_shards("shard2", 2);
}

fn two_shards(name: &str, intercepts: usize) {
    let lab = Lab::up(name, false).unwrap_or_else(|err| panic!("{err:#}"));
    let _online = lab.start_nginx(Host::Online).unwrap();
    let target = lab.start_nginx(Host::Target).unwrap();
    let mut intercept_procs = vec![lab.start_intercept(Mode::Assistant, HTTP_PORT).unwrap()];
    let second = format!("{}:{SECOND_INTERCEPT_PORT}", Host::Assistant.addr());
    let shards = SHARDS.to_string();
    let mut extra = vec!["--workers", shards.as_str()];
    if intercepts == 2 {
        intercept_procs.push(start_second_intercept(&lab));
        extra.extend(["-s", second.as_str()]);
    }
    let mut copy = lab
        .start_copy(
            Host::Online,
            HTTP_PORT,
            Mode::Assistant,
            Some(CLIENT_NET),
            &extra,
        )
        .unwrap();
    wait_for_log(
        &mut copy,
        READY_TIMEOUT,
        "every shard to connect to every intercept",
        |log| intercept_connections(log) >= SHARDS * intercepts,
    )
    .unwrap();

    let load = lab
        .http_load(
            Host::Client,
            Host::Online.socket(HTTP_PORT),
            CONNECTIONS,
            Connections::Short,
        )
        .unwrap();
    load.assert_all_ok(CONNECTIONS, "client load");
    let target_count = settled(
        CATCH_UP,
        || target.access_count(),
        |&count| count >= CONNECTIONS,
    )
    .unwrap();
    wait_until(CATCH_UP, "copy to close every session", || {
        let counts = last_counters(&copy.stderr(), "copy");
        Ok(counts.is_some_and(|c| c.get("sessions_closed") == c.get("sessions_opened")))
    })
    .unwrap_or_else(|err| panic!("{err:#}\ncopy log:\n{}", copy.stderr()));

    let copy_totals = stop_copy(&mut copy).unwrap();
    let copy_log = copy.stderr();
    let routed: Vec<u64> = intercept_procs
        .iter_mut()
        .map(|intercept| {
            let totals = stop_with_totals(intercept, "intercept").unwrap();
            assert_eq!(
                totals["replies_unrouted"], 0,
                "every reply belongs to a registered flow; intercept totals: {totals:?}"
            );
            totals["replies_routed"]
        })
        .collect();

    assert_eq!(target_count, CONNECTIONS, "requests at the target");
    let copy_count = |name: &str| copy_totals[name];
    assert_eq!(
        copy_count("sessions_opened"),
        CONNECTIONS as u64,
        "one session per client connection over all shards; copy totals: {copy_totals:?}"
    );
    assert_eq!(
        copy_count("replies_unmatched"),
        0,
        "a reply reached a shard that does not own its flow; copy totals: {copy_totals:?}"
    );
    assert!(
        routed.iter().all(|&count| count > 0),
        "every intercept routed replies: {routed:?}"
    );
    assert_eq!(
        copy_count("replies_received"),
        routed.iter().sum::<u64>(),
        "copy received every reply the intercepts routed"
    );

    let per_shard: Vec<u64> = (0..SHARDS)
        .map(|shard| {
            let totals = last_counters(&copy_log, &format!("shard {shard} totals"))
                .unwrap_or_else(|| panic!("no totals of shard {shard} in:\n{copy_log}"));
            assert_eq!(totals["replies_unmatched"], 0, "shard {shard}: {totals:?}");
            totals["sessions_opened"]
        })
        .collect();
    assert!(
        per_shard.iter().all(|&opened| opened > 0),
        "the kernel spread the flows over both shards: {per_shard:?}"
    );
    assert_eq!(per_shard.iter().sum::<u64>(), CONNECTIONS as u64);
}

/// A second intercept on the assistant, catching the same replies, listening on
/// [`SECOND_INTERCEPT_PORT`].
fn start_second_intercept(lab: &Lab) -> Proc {
    let filter = format!(
        "tcp and src host {} and src port {HTTP_PORT}",
        Host::Target.addr()
    );
    let port = SECOND_INTERCEPT_PORT.to_string();
    let args = [
        common::tcpcopy_bin(),
        "intercept",
        "-i",
        "eth0",
        "-F",
        &filter,
        "-p",
        &port,
        "--stats-interval",
        "1s",
    ];
    lab.spawn_listening_intercept(Host::Assistant, &args)
        .unwrap()
}
