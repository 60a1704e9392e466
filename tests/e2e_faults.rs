//! Faults in assistant mode, counted in nginx's access logs and copy's own counters:
//! - intercept killed (SIGKILL) and started again mid-run: copy keeps running, reconnects, and
//!   every request made once it has reconnected reaches the target;
//! - nginx on the target stopped: copy keeps running and counts the refused connections; once
//!   nginx runs again, every new request reaches it;
//! - nginx on the target restarted under open sessions: each is rebuilt on the new nginx and
//!   carries on;
//! - intercept not running yet when copy starts: copy says so, waits, and replays once it
//!   comes up.
//!
//! Requests after a fault come both on new connections and on a keep-alive connection opened
//! before the fault, as a long-lived client's would.
//!
//! The requests made during a fault may be lost, but none may reach the target twice, or late
//! (after the target's log went quiet and the next phase began): every test ends by stopping
//! copy once it has ended every session and comparing both access logs phase by phase, request
//! by request.
//!
//! Topology and addresses: `scripts/lab.sh`.

mod common;

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use common::{
    AccessEntry, CLIENT_NET, Connections, HTTP_PORT, HeldHttp, Host, Lab, Mode, Nginx, Proc,
    READY_TIMEOUT, caught_up, intercept_connections, last_counters, multiset_differences,
    multiset_excess, port_open, requests, settled, stable, stop_copy, wait_for_log,
    wait_for_sessions_to_end, wait_until,
};

/// Short connections the client makes in each phase of a test.
const REQUESTS: usize = 100;
/// Requests on a keep-alive connection held open across the fault, in each phase (while the
/// target is down the connection stays idle, so every refused connection is a new one).
const HELD_REQUESTS: usize = 20;
/// How long the target may take to catch up with the online server.
const CATCH_UP: Duration = Duration::from_secs(30);
/// How long the target's count must stay put before a new phase starts: longer than copy's
/// 3 s handshake timeout, so no session of an earlier phase is still being replayed.
const QUIET: Duration = Duration::from_secs(5);
/// Longest wait for that quiet.
const QUIET_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a process may take to exit after a signal.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// What copy logs when it loses its intercept.
const LINK_LOST_LOG: &str = "reconnecting";
/// What copy logs when it cannot reach an intercept, and when none is connected.
const UNREACHABLE_LOG: &str = "retrying every 1s";
const NO_INTERCEPT_LOG: &str = "no intercept is connected";

#[test]
fn copy_survives_an_intercept_restart() {
    copy_survives_intercept_outage("fltic", Duration::ZERO);
}

/// An outage longer than copy's 3 s handshake timeout: the sessions the client opens
/// meanwhile give up before the intercept is back.
#[test]
fn copy_survives_an_intercept_outage_longer_than_a_handshake() {
    copy_survives_intercept_outage("fltio", Duration::from_secs(4));
}

/// Kills intercept, lets the client make [`REQUESTS`] requests on new connections and
/// [`HELD_REQUESTS`] on the held one, waits `outage` more, starts a new intercept and checks
/// that copy carries on.
fn copy_survives_intercept_outage(name: &str, outage: Duration) {
    let lab = Lab::up(name, false).unwrap_or_else(|err| panic!("{err:#}"));
    let online = lab.start_nginx(Host::Online).unwrap();
    let target = lab.start_nginx(Host::Target).unwrap();
    let mut intercept = lab.start_intercept(Mode::Assistant, HTTP_PORT).unwrap();
    let mut copy = lab
        .start_assistant_copy(Host::Online, HTTP_PORT, CLIENT_NET)
        .unwrap();
    let mut held = lab
        .hold_http(Host::Client, Host::Online.socket(HTTP_PORT))
        .unwrap();
    let copy_pid = copy.pid();

    let before = replayed_phase(&lab, &online, &target, 0, &mut held, &mut copy);
    assert_eq!(
        before,
        REQUESTS + HELD_REQUESTS,
        "requests replayed before the fault"
    );
    let online_before = online.access_count().unwrap();

    intercept.signal(libc::SIGKILL).unwrap();
    let killed = intercept.wait_timeout(EXIT_TIMEOUT).unwrap();
    assert!(killed.is_some(), "intercept did not die of SIGKILL");
    wait_for_log(
        &mut copy,
        READY_TIMEOUT,
        "copy to notice the intercept is gone",
        |log| log.contains(LINK_LOST_LOG),
    )
    .unwrap();

    let counts_before = copy_counters(&mut copy);
    client_phase(&lab, &online);
    held_phase(&online, &mut held);
    thread::sleep(outage);
    let counts_down = copy_counters(&mut copy);
    let online_down = online.access_count().unwrap();
    let _intercept = lab.start_intercept(Mode::Assistant, HTTP_PORT).unwrap();
    wait_for_log(
        &mut copy,
        READY_TIMEOUT,
        "copy to reconnect to the new intercept",
        |log| intercept_connections(log) == 2,
    )
    .unwrap();
    let after_outage = stable(QUIET_TIMEOUT, QUIET, || target.access_count()).unwrap();
    eprintln!(
        "e2e: requests made while intercept was down ({outage:?} more): {}, reached the \
         target: {}; copy counters meanwhile: {}",
        REQUESTS + HELD_REQUESTS,
        after_outage - before,
        changes(&counts_before, &counts_down)
    );

    let after = replayed_phase(&lab, &online, &target, after_outage, &mut held, &mut copy);
    copy.ensure_running()
        .unwrap_or_else(|err| panic!("copy must survive the intercept restart: {err:#}"));
    assert_eq!(copy.pid(), copy_pid);
    drop(held);
    let totals = finish(
        &mut copy,
        &online,
        &target,
        &Phase::around_a_fault((online_before, before), (online_down, after_outage)),
    );
    assert_eq!(
        after,
        REQUESTS + HELD_REQUESTS,
        "requests made after copy reconnected that reached the target; copy totals {totals:?}"
    );
    assert_eq!(
        intercept_connections(&copy.stderr()),
        2,
        "copy connects once at start and once after the restart"
    );
}

#[test]
fn copy_survives_the_target_server_going_down() {
    let lab = Lab::up("flttd", false).unwrap_or_else(|err| panic!("{err:#}"));
    let online = lab.start_nginx(Host::Online).unwrap();
    let mut target = lab.start_nginx(Host::Target).unwrap();
    let _intercept = lab.start_intercept(Mode::Assistant, HTTP_PORT).unwrap();
    let mut copy = lab
        .start_assistant_copy(Host::Online, HTTP_PORT, CLIENT_NET)
        .unwrap();
    let mut held = lab
        .hold_http(Host::Client, Host::Online.socket(HTTP_PORT))
        .unwrap();

    let before = replayed_phase(&lab, &online, &target, 0, &mut held, &mut copy);
    assert_eq!(
        before,
        REQUESTS + HELD_REQUESTS,
        "requests replayed before the fault"
    );
    let online_before = online.access_count().unwrap();

    target.proc_mut().stop(libc::SIGTERM, EXIT_TIMEOUT).unwrap();
    lab.in_host(Host::Target, || {
        wait_until(
            READY_TIMEOUT,
            "nginx on the target to close its port",
            || Ok(!port_open(Host::Target.socket(HTTP_PORT))),
        )
    })
    .unwrap();
    let counts_before = copy_counters(&mut copy);

    client_phase(&lab, &online);
    // Every refused connection must show in copy's counters.
    let refused_before = refused_count(&counts_before);
    let waited = wait_for_log(
        &mut copy,
        CATCH_UP,
        "copy to count the refused connections",
        |log| {
            last_counters(log, "copy")
                .is_some_and(|counts| refused_count(&counts) >= refused_before + REQUESTS as u64)
        },
    );
    let counts_down = copy_counters(&mut copy);
    eprintln!(
        "e2e: while nginx on the target was down: {}",
        changes(&counts_before, &counts_down)
    );
    waited.unwrap_or_else(|err| panic!("{err:#}; copy counters {counts_down:?}"));
    // A connection the target refuses (RST to the SYN) is one session, opened and refused,
    // and nothing else.
    let grew = |name: &str| {
        let value = |counts: &BTreeMap<String, u64>| counts.get(name).copied().unwrap_or(0);
        value(&counts_down).saturating_sub(value(&counts_before))
    };
    assert_eq!(
        (
            grew("sessions_opened"),
            refused_count(&counts_down).saturating_sub(refused_before),
            grew("sessions_reset"),
            grew("handshakes_failed"),
        ),
        (REQUESTS as u64, REQUESTS as u64, 0, 0),
        "one opened and one refused session per client connection: {counts_down:?}"
    );
    copy.ensure_running()
        .unwrap_or_else(|err| panic!("copy must survive the target going down: {err:#}"));

    let online_down = online.access_count().unwrap();
    let target = lab.start_nginx(Host::Target).unwrap();
    let after_down = stable(QUIET_TIMEOUT, QUIET, || target.access_count()).unwrap();
    eprintln!(
        "e2e: requests made while the target was down: {REQUESTS}, reached it later: {}",
        after_down - before
    );

    let after = replayed_phase(&lab, &online, &target, after_down, &mut held, &mut copy);
    drop(held);
    let totals = finish(
        &mut copy,
        &online,
        &target,
        &Phase::around_a_fault((online_before, before), (online_down, after_down)),
    );
    assert_eq!(
        after,
        REQUESTS + HELD_REQUESTS,
        "requests made after nginx restarted on the target that reached it; copy totals \
         {totals:?}"
    );
}

#[test]
fn copy_waits_for_an_intercept_that_is_not_up_yet() {
    let lab = Lab::up("fltiu", false).unwrap_or_else(|err| panic!("{err:#}"));
    let online = lab.start_nginx(Host::Online).unwrap();
    let target = lab.start_nginx(Host::Target).unwrap();
    let mut copy = lab
        .start_copy_capturing(Host::Online, HTTP_PORT, CLIENT_NET)
        .unwrap();
    wait_for_log(
        &mut copy,
        READY_TIMEOUT,
        "copy to say it cannot reach intercept",
        |log| log.contains(UNREACHABLE_LOG) && log.contains(NO_INTERCEPT_LOG),
    )
    .unwrap_or_else(|err| panic!("{err:#}\ncopy log:\n{}", copy.stderr()));
    assert_eq!(intercept_connections(&copy.stderr()), 0);

    let _intercept = lab.start_intercept(Mode::Assistant, HTTP_PORT).unwrap();
    wait_for_log(
        &mut copy,
        READY_TIMEOUT,
        "copy to connect to the intercept once it is up",
        |log| intercept_connections(log) > 0,
    )
    .unwrap();
    let mut held = lab
        .hold_http(Host::Client, Host::Online.socket(HTTP_PORT))
        .unwrap();
    let replayed = replayed_phase(&lab, &online, &target, 0, &mut held, &mut copy);
    drop(held);
    let totals = finish(&mut copy, &online, &target, &[Phase::exactly(0, 0)]);
    assert_eq!(
        replayed,
        REQUESTS + HELD_REQUESTS,
        "requests once intercept was up; copy totals {totals:?}"
    );
}

#[test]
fn sessions_open_when_the_target_server_restarts_carry_on() {
    /// Keep-alive connections open across the restart.
    const OPEN: usize = 5;
    let lab = Lab::up("fltrs", false).unwrap_or_else(|err| panic!("{err:#}"));
    let online = lab.start_nginx(Host::Online).unwrap();
    let mut target = lab.start_nginx(Host::Target).unwrap();
    let _intercept = lab.start_intercept(Mode::Assistant, HTTP_PORT).unwrap();
    let mut copy = lab
        .start_assistant_copy(Host::Online, HTTP_PORT, CLIENT_NET)
        .unwrap();
    let mut open: Vec<HeldHttp> = (0..OPEN)
        .map(|_| {
            lab.hold_http(Host::Client, Host::Online.socket(HTTP_PORT))
                .unwrap()
        })
        .collect();
    for held in &mut open {
        held_phase(&online, held);
    }
    let before = OPEN * HELD_REQUESTS;
    let replayed = settled(CATCH_UP, || target.access_count(), |&n| n >= before).unwrap();
    assert_eq!(replayed, before, "requests replayed before the restart");
    let counts_before = copy_counters(&mut copy);

    target.proc_mut().stop(libc::SIGTERM, EXIT_TIMEOUT).unwrap();
    let target = lab.start_nginx(Host::Target).unwrap();
    for held in &mut open {
        held_phase(&online, held);
    }
    client_phase(&lab, &online);
    let expected = 2 * before + REQUESTS;
    settled(CATCH_UP, || target.access_count(), |&n| n >= expected).unwrap();
    let counts_after = copy_counters(&mut copy);
    copy.ensure_running()
        .unwrap_or_else(|err| panic!("copy must survive the restart: {err:#}"));
    drop(open);
    let totals = finish(&mut copy, &online, &target, &[Phase::exactly(0, 0)]);
    eprintln!(
        "e2e: across the restart of the target's nginx: {}",
        changes(&counts_before, &counts_after)
    );
    let grew = |name: &str| {
        let value = |counts: &BTreeMap<String, u64>| counts.get(name).copied().unwrap_or(0);
        value(&counts_after).saturating_sub(value(&counts_before))
    };
    // nginx stopping closes its idle keep-alive connections with FIN; each session's next
    // request then opens a new connection to the new nginx (none was reset).
    assert_eq!(
        (grew("sessions_rebuilt"), grew("sessions_reset")),
        (OPEN as u64, 0),
        "each session open at the restart rebuilt once; copy totals {totals:?}"
    );
}

#[test]
fn a_copy_killed_and_started_again_leaves_nothing_half_open() {
    /// Keep-alive connections open while copy is killed and after it is back.
    const OPEN: usize = 5;
    /// How long the target may hold a connection after copy stopped: longer than copy's 6 s
    /// time-wait.
    const TIME_WAIT: Duration = Duration::from_secs(20);
    let lab = Lab::up("fltck", false).unwrap_or_else(|err| panic!("{err:#}"));
    let online = lab.start_nginx(Host::Online).unwrap();
    let target = lab.start_nginx(Host::Target).unwrap();
    let _intercept = lab.start_intercept(Mode::Assistant, HTTP_PORT).unwrap();
    let mut copy = lab
        .start_assistant_copy(Host::Online, HTTP_PORT, CLIENT_NET)
        .unwrap();
    let mut open: Vec<HeldHttp> = (0..OPEN)
        .map(|_| {
            lab.hold_http(Host::Client, Host::Online.socket(HTTP_PORT))
                .unwrap()
        })
        .collect();
    for held in &mut open {
        held_phase(&online, held);
    }
    client_phase(&lab, &online);
    let before = OPEN * HELD_REQUESTS + REQUESTS;
    let replayed = settled(CATCH_UP, || target.access_count(), |&n| n >= before).unwrap();
    assert_eq!(replayed, before, "requests replayed before copy was killed");

    copy.signal(libc::SIGKILL).unwrap();
    assert!(
        copy.wait_timeout(EXIT_TIMEOUT).unwrap().is_some(),
        "copy survived SIGKILL"
    );
    let online_before = online.access_count().unwrap();
    let mut copy = lab
        .start_assistant_copy(Host::Online, HTTP_PORT, CLIENT_NET)
        .unwrap();
    client_phase(&lab, &online);
    for held in &mut open {
        held_phase(&online, held);
    }
    let expected = before + REQUESTS + OPEN * HELD_REQUESTS;
    settled(CATCH_UP, || target.access_count(), |&n| n >= expected).unwrap();
    drop(open);
    let ended = wait_for_sessions_to_end(&copy, CATCH_UP);
    let totals = stop_copy(&mut copy).unwrap_or_else(|err| panic!("{err:#}"));
    ended.unwrap_or_else(|err| panic!("{err:#}; copy totals {totals:?}"));
    let left = wait_until(TIME_WAIT, "the target to close every connection", || {
        Ok(lab.open_connections_on(Host::Target, HTTP_PORT)?.is_empty())
    });
    let after = target.access_entries().unwrap();
    let online_after = online.access_entries().unwrap();
    eprintln!(
        "e2e: after the restart the target logged {} of the online server's {} requests; \
         copy totals {totals:?}",
        after.len() - before,
        online_after.len() - online_before
    );
    left.unwrap_or_else(|err| {
        panic!(
            "{err:#}: {:?}",
            lab.open_connections_on(Host::Target, HTTP_PORT)
        )
    });
    let online_after = requests(&online_after[online_before..]);
    let target_after = requests(&after[before..]);
    let differences = multiset_differences(&online_after, &target_after, 10);
    assert!(
        differences.is_empty(),
        "requests after the restart, online vs target: {differences:?}"
    );
    // The connections the killed copy left open on the target expected exactly the next
    // byte of their client's connection: the new copy reset each and opened it again.
    assert_eq!(
        totals.get("stale_connections_reset"),
        Some(&(OPEN as u64)),
        "copy totals {totals:?}"
    );
}

/// What the target must have logged of the online server's requests in one phase of a test.
#[derive(Clone, Copy, Debug)]
enum Replayed {
    /// Every request, each exactly once.
    Exactly,
    /// Each request at most once: a fault may lose requests, never repeat or invent one.
    AtMostOnce,
}

/// One phase of a test: where it starts in the online server's and in the target's access
/// log; it lasts until the next phase starts, the last one to the end of both logs.
#[derive(Clone, Copy, Debug)]
struct Phase {
    online_start: usize,
    target_start: usize,
    replayed: Replayed,
}

impl Phase {
    fn exactly(online_start: usize, target_start: usize) -> Phase {
        Phase {
            online_start,
            target_start,
            replayed: Replayed::Exactly,
        }
    }

    fn at_most_once(online_start: usize, target_start: usize) -> Phase {
        Phase {
            online_start,
            target_start,
            replayed: Replayed::AtMostOnce,
        }
    }

    /// Before a fault, exactly; during it (from `fault`: where the online and the target's
    /// logs stood when it began), at most once; after it (from `after`), exactly again.
    fn around_a_fault(fault: (usize, usize), after: (usize, usize)) -> [Phase; 3] {
        [
            Phase::exactly(0, 0),
            Phase::at_most_once(fault.0, fault.1),
            Phase::exactly(after.0, after.1),
        ]
    }
}

/// Waits until copy has ended every session, stops it, and checks the target's log against the
/// online server's phase by phase, request by request. A request of one phase that reaches the
/// target during the next counts in the next, where it is one too many: late.
fn finish(
    copy: &mut Proc,
    online: &Nginx,
    target: &Nginx,
    phases: &[Phase],
) -> BTreeMap<String, u64> {
    let ended = wait_for_sessions_to_end(copy, CATCH_UP);
    let totals = stop_copy(copy).unwrap_or_else(|err| panic!("{err:#}"));
    ended.unwrap_or_else(|err| panic!("{err:#}; copy totals {totals:?}"));
    let online_log = online.access_entries().unwrap();
    let target_log = target.access_entries().unwrap();
    for (i, phase) in phases.iter().enumerate() {
        let next = phases.get(i + 1);
        let slice = |log: &[AccessEntry], start: usize, end: Option<usize>| {
            requests(log.get(start..end.unwrap_or(log.len())).unwrap_or_default())
        };
        let online = slice(
            &online_log,
            phase.online_start,
            next.map(|p| p.online_start),
        );
        let target = slice(
            &target_log,
            phase.target_start,
            next.map(|p| p.target_start),
        );
        let wrong = match phase.replayed {
            Replayed::Exactly => multiset_differences(&online, &target, 10),
            Replayed::AtMostOnce => multiset_excess(&online, &target),
        };
        assert!(
            wrong.is_empty(),
            "phase {i} ({phase:?}): requests logged a different number of times than \
             {:?} allows ((port, method, path, status, request length, bytes sent), online, \
             target): {wrong:?}; copy totals {totals:?}",
            phase.replayed
        );
    }
    totals
}

/// Sends [`REQUESTS`] short connections to the online nginx and checks that each succeeded
/// and was logged there.
fn client_phase(lab: &Lab, online: &Nginx) {
    let online_start = online.access_count().unwrap();
    let load = lab
        .http_load(
            Host::Client,
            Host::Online.socket(HTTP_PORT),
            REQUESTS,
            Connections::Short,
        )
        .unwrap();
    load.assert_all_ok(REQUESTS, "client requests");
    assert_logged(online, online_start + REQUESTS);
}

/// Checks that `nginx` has logged exactly `expected` requests.
fn assert_logged(nginx: &Nginx, expected: usize) {
    let logged = caught_up(READY_TIMEOUT, expected, || nginx.access_count()).unwrap();
    assert_eq!(logged, expected, "access log");
}

/// Sends [`HELD_REQUESTS`] on the held connection and checks that each succeeded and was
/// logged by the online nginx.
fn held_phase(online: &Nginx, held: &mut HeldHttp) {
    let online_start = online.access_count().unwrap();
    let kept = held.get(HELD_REQUESTS);
    kept.assert_all_ok(HELD_REQUESTS, "requests on the held connection");
    assert_logged(online, online_start + HELD_REQUESTS);
}

/// A phase with no fault: [`REQUESTS`] short connections and [`HELD_REQUESTS`] on the held
/// connection; returns how many more requests the target logged than `target_start` once its
/// count has settled.
fn replayed_phase(
    lab: &Lab,
    online: &Nginx,
    target: &Nginx,
    target_start: usize,
    held: &mut HeldHttp,
    copy: &mut Proc,
) -> usize {
    client_phase(lab, online);
    held_phase(online, held);
    let target_count = settled(
        CATCH_UP,
        || target.access_count(),
        |&count| count >= target_start + REQUESTS + HELD_REQUESTS,
    )
    .unwrap();
    copy.ensure_running()
        .unwrap_or_else(|err| panic!("{err:#}"));
    target_count - target_start
}

/// Copy's counters from its latest periodic report, after waiting for a fresh one.
fn copy_counters(copy: &mut Proc) -> BTreeMap<String, u64> {
    let reports = |log: &str| log.matches("] copy: ").count();
    let seen = reports(&copy.stderr());
    wait_for_log(copy, READY_TIMEOUT, "a fresh copy counter report", |log| {
        reports(log) > seen
    })
    .unwrap();
    last_counters(&copy.stderr(), "copy").unwrap_or_default()
}

/// Connections copy counts as refused by the target.
fn refused_count(counters: &BTreeMap<String, u64>) -> u64 {
    counters.get("handshakes_refused").copied().unwrap_or(0)
}

/// `name +delta` for every counter that changed between two reports.
fn changes(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> String {
    after
        .iter()
        .filter_map(|(name, &value)| {
            let old = before.get(name).copied().unwrap_or(0);
            (value != old).then(|| format!("{name} +{}", value.saturating_sub(old)))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
