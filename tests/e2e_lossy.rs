//! A lossy, reordering replay path in assistant mode: netfilter on the target drops copy's
//! packets (online → target) or the target's replies (target → assistant) at random, 1 % and
//! 5 % (`iptables -m statistic`; the lab's kernel has no netem), or an NFQUEUE helper holds
//! every n-th packet a few milliseconds so later ones overtake it. Every request the client
//! made must still reach the target exactly once (the two access logs compared request by
//! request), the losses must show as retransmissions (copy's `retransmitted` for its own
//! packets, the target kernel's `RetransSegs` for its replies), and once copy has stopped and
//! its time-wait has passed the target holds no connection.
//!
//! Topology and addresses: `scripts/lab.sh`; the rules: `common::impairment`.

mod common;

use std::time::Duration;

use common::{
    CLIENT_NET, HTTP_PORT, Host, HttpRequest, Lab, Link, Mode, Nginx, caught_up, keep_alive_rounds,
    multiset_differences, open_connections, requests, settled, short_connections, stop_copy,
    wait_for_sessions_to_end, wait_until,
};

/// Short connections of the load, one request each (about 3,000 packets each way in all, so
/// 1 % loss drops some that need repair).
const SHORT: usize = 500;
/// Keep-alive connections of the load, open together, and the requests each carries.
const KEEP_ALIVE: usize = 10;
const PER_CONNECTION: usize = 50;
/// How long the target may take to log every request, and copy to end every session.
const CATCH_UP: Duration = Duration::from_secs(90);
/// Longer than copy's 6 s time-wait, in which it answers the target's late packets with RST.
const TIME_WAIT: Duration = Duration::from_secs(20);
/// The reorderer's queue, and how it reorders: every 7th packet held 5 ms.
const REORDER_QUEUE: u16 = 3;
const REORDER_EVERY: u64 = 7;
const REORDER_HOLD: Duration = Duration::from_millis(5);

#[test]
fn one_percent_loss_toward_the_target() {
    lossy("fltl1", Link::CopiesToTarget, 0.01);
}

#[test]
fn five_percent_loss_toward_the_target() {
    lossy("fltl5", Link::CopiesToTarget, 0.05);
}

#[test]
fn one_percent_loss_of_the_replies() {
    lossy("fltr1", Link::RepliesToAssistant, 0.01);
}

#[test]
fn five_percent_loss_of_the_replies() {
    lossy("fltr5", Link::RepliesToAssistant, 0.05);
}

#[test]
fn reordering_toward_the_target() {
    reordered("fltot", Link::CopiesToTarget);
}

#[test]
fn reordering_of_the_replies() {
    reordered("fltor", Link::RepliesToAssistant);
}

/// What a run through a faulty link measured.
struct Run {
    copy_retransmitted: u64,
    target_retransmitted: u64,
}

fn lossy(name: &str, link: Link, probability: f64) {
    let lab = Lab::up(name, false).unwrap_or_else(|err| panic!("{err:#}"));
    lab.lose_randomly(link, HTTP_PORT, probability).unwrap();
    let run = replay_everything(&lab);
    let loss = lab.loss_counts(link).unwrap();
    eprintln!(
        "e2e faults: {link:?} loss {probability}: {} of {} packets dropped ({:.2} %), copy \
         retransmitted {}, target retransmitted {}",
        loss.dropped,
        loss.seen,
        100.0 * loss.rate(),
        run.copy_retransmitted,
        run.target_retransmitted
    );
    assert!(loss.dropped > 0, "the rule dropped nothing: {loss:?}");
    match link {
        Link::CopiesToTarget => assert!(
            run.copy_retransmitted > 0,
            "copy repaired {} lost packets without retransmitting",
            loss.dropped
        ),
        // A lost data segment or FIN of the target's is sent again by the target; a lost
        // ACK makes copy send its data again.
        Link::RepliesToAssistant => assert!(
            run.target_retransmitted + run.copy_retransmitted > 0,
            "{} lost replies repaired without a retransmission",
            loss.dropped
        ),
    }
}

fn reordered(name: &str, link: Link) {
    let lab = Lab::up(name, false).unwrap_or_else(|err| panic!("{err:#}"));
    let reorderer = lab
        .reorder(Host::Target, REORDER_QUEUE, REORDER_EVERY, REORDER_HOLD)
        .unwrap();
    lab.queue_link(link, HTTP_PORT, reorderer.queue()).unwrap();
    let run = replay_everything(&lab);
    lab.unqueue_link(link, HTTP_PORT, reorderer.queue())
        .unwrap();
    let counts = reorderer.stop().unwrap();
    eprintln!(
        "e2e faults: {link:?} every {REORDER_EVERY}th packet held {REORDER_HOLD:?}: {} of {} \
         held, copy retransmitted {}, target retransmitted {}",
        counts.held, counts.seen, run.copy_retransmitted, run.target_retransmitted
    );
    assert!(counts.held > 0, "nothing was reordered: {counts:?}");
}

/// Replicates a load of [`SHORT`] short and [`KEEP_ALIVE`] × [`PER_CONNECTION`] keep-alive
/// requests through whatever the lab's link does, and checks that the target logged exactly
/// the online server's requests, that copy's counters add up, and that nothing stays open on
/// the target.
fn replay_everything(lab: &Lab) -> Run {
    let online = lab.start_nginx(Host::Online).unwrap();
    let target = lab.start_nginx(Host::Target).unwrap();
    let retransmitted_before = lab.target_retransmissions().unwrap();
    let _intercept = lab.start_intercept(Mode::Assistant, HTTP_PORT).unwrap();
    let mut copy = lab
        .start_assistant_copy(Host::Online, HTTP_PORT, CLIENT_NET)
        .unwrap();

    let server = Host::Online.socket(HTTP_PORT);
    let (short, kept) = lab
        .in_host(Host::Client, || {
            let short = short_connections(server, SHORT, &[HttpRequest::ROOT]);
            let mut connections = open_connections(server, KEEP_ALIVE)?;
            let kept = keep_alive_rounds(&mut connections, PER_CONNECTION, &[HttpRequest::ROOT]);
            Ok((short, kept))
        })
        .unwrap();
    short.assert_all_ok(SHORT, "short connections");
    kept.assert_all_ok(KEEP_ALIVE * PER_CONNECTION, "keep-alive requests");
    let expected = SHORT + KEEP_ALIVE * PER_CONNECTION;
    let logged = caught_up(CATCH_UP, expected, || online.access_count()).unwrap();
    assert_eq!(logged, expected, "the online server's log");

    settled(CATCH_UP, || target.access_count(), |&n| n >= expected).unwrap();
    let ended = wait_for_sessions_to_end(&copy, CATCH_UP);
    let totals = stop_copy(&mut copy).unwrap_or_else(|err| panic!("{err:#}"));
    ended.unwrap_or_else(|err| panic!("{err:#}; copy totals {totals:?}"));
    assert_same_requests(&online, &target, &totals);

    let left = wait_until(TIME_WAIT, "the target to close every connection", || {
        Ok(lab.open_connections_on(Host::Target, HTTP_PORT)?.is_empty())
    });
    left.unwrap_or_else(|err| {
        panic!(
            "{err:#}: {:?}",
            lab.open_connections_on(Host::Target, HTTP_PORT)
        )
    });
    let count = |name: &str| totals.get(name).copied().unwrap_or(0);
    Run {
        copy_retransmitted: count("retransmitted"),
        target_retransmitted: lab.target_retransmissions().unwrap() - retransmitted_before,
    }
}

/// The target logged exactly the requests the online server did, each as often.
fn assert_same_requests(
    online: &Nginx,
    target: &Nginx,
    totals: &std::collections::BTreeMap<String, u64>,
) {
    let online = requests(&online.access_entries().unwrap());
    let target = requests(&target.access_entries().unwrap());
    let differences = multiset_differences(&online, &target, 10);
    assert!(
        differences.is_empty(),
        "requests the target logged a different number of times than the online server \
         ((port, method, path, status, request length, bytes sent), online, target): \
         {differences:?}; copy totals {totals:?}"
    );
}
