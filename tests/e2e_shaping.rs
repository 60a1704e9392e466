//! Shaping, end to end in assistant mode: copy multiplies (`-n`, `-f`), samples (`-r`) and
//! caps (`--max-rate`) the sessions it replays, counted in the target's own access log.
//!
//! - `-n 3`: the target logs exactly three requests per client request, every one from its
//!   own client address and port (no two replicas shared a 4-tuple), none reset.
//! - two copies of the same traffic with `-n 2` and different `-f`: four times; with the
//!   same flags, twice (intercept tells them apart, and one of them moves each session).
//! - `-r 50` over 2,000 sessions: 45–55 % of them, and copy's own counts add up.
//! - `--max-rate`: no more sessions than the rate allows over the load's duration (plus the
//!   bucket's burst), and every session either replayed or counted as refused.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use common::{
    CLIENT_NET, Connections, HTTP_PORT, Host, Lab, Mode, Nginx, Proc, settled, stable, stop_copy,
};

/// How long the target may take to log every replayed request once the client is done.
const CATCH_UP: Duration = Duration::from_secs(60);
/// A count that has not moved for this long is final.
const QUIET: Duration = Duration::from_secs(3);

/// A lab with nginx on the online host and the target, intercept on the assistant and one
/// copy per entry of `copies` (each with those extra flags), all copying port 80.
struct Shaped {
    lab: Lab,
    target: Nginx,
    _online: Nginx,
    _intercept: Proc,
    copies: Vec<Proc>,
}

impl Shaped {
    fn start(name: &str, copies: &[&[&str]]) -> Shaped {
        let lab = Lab::up(name, false).unwrap_or_else(|err| panic!("{err:#}"));
        let online = lab.start_nginx(Host::Online).unwrap();
        let target = lab.start_nginx(Host::Target).unwrap();
        let intercept = lab.start_intercept(Mode::Assistant, HTTP_PORT).unwrap();
        let copies = copies
            .iter()
            .map(|extra| {
                lab.start_copy(
                    Host::Online,
                    HTTP_PORT,
                    Mode::Assistant,
                    Some(CLIENT_NET),
                    extra,
                )
                .unwrap()
            })
            .collect();
        Shaped {
            lab,
            target,
            _online: online,
            _intercept: intercept,
            copies,
        }
    }

    /// `connections` short requests from the client, all answered.
    fn load(&self, connections: usize) {
        let load = self
            .lab
            .http_load(
                Host::Client,
                Host::Online.socket(HTTP_PORT),
                connections,
                Connections::Short,
            )
            .unwrap();
        load.assert_all_ok(connections, "client requests to the online server");
    }

    /// How many distinct client ends (address and port) the target logged requests from.
    fn distinct_target_clients(&self) -> usize {
        let entries = self.target.access_entries().unwrap();
        let clients: HashSet<_> = entries.iter().map(|entry| entry.client).collect();
        clients.len()
    }

    /// Stops every copy and returns their exit totals.
    fn stop_copies(&mut self) -> Vec<BTreeMap<String, u64>> {
        self.copies
            .iter_mut()
            .map(|copy| stop_copy(copy).unwrap())
            .collect()
    }
}

/// Every copy instance opened `sessions` sessions and the target reset none.
fn assert_each_opened_without_resets(totals: &[BTreeMap<String, u64>], sessions: usize) {
    for instance in totals {
        assert_eq!(instance["sessions_opened"], sessions as u64, "{instance:?}");
        assert_eq!(instance["sessions_reset"], 0, "{instance:?}");
    }
}

#[test]
fn three_copies_of_every_session_each_on_its_own_port() {
    const CONNECTIONS: usize = 200;
    let mut test = Shaped::start("shapen", &[&["-n", "3"]]);
    test.load(CONNECTIONS);
    let expected = 3 * CONNECTIONS;
    let logged = settled(CATCH_UP, || test.target.access_count(), |&n| n >= expected).unwrap();
    let totals = test.stop_copies().remove(0);

    assert_eq!(
        logged, expected,
        "three requests at the target per client request"
    );
    let entries = test.target.access_entries().unwrap();
    assert!(
        entries.iter().all(|entry| entry.status == 200),
        "{entries:?}"
    );
    assert_eq!(
        test.distinct_target_clients(),
        expected,
        "every replica from its own address and port"
    );
    assert_each_opened_without_resets(std::slice::from_ref(&totals), expected);
    assert_eq!(totals["handshakes_refused"], 0, "{totals:?}");
    assert_eq!(totals["sessions_no_port"], 0, "{totals:?}");
    assert!(totals.contains_key("ports_remapped"), "{totals:?}");
}

#[test]
fn two_instances_with_their_own_port_shift_give_four_times() {
    const CONNECTIONS: usize = 200;
    let mut test = Shaped::start(
        "shapef",
        &[&["-n", "2", "-f", "1"], &["-n", "2", "-f", "2"]],
    );
    test.load(CONNECTIONS);
    let expected = 4 * CONNECTIONS;
    let logged = settled(CATCH_UP, || test.target.access_count(), |&n| n >= expected).unwrap();
    let totals = test.stop_copies();

    assert_eq!(
        logged, expected,
        "2 instances × 2 replicas per client request"
    );
    assert_eq!(
        test.distinct_target_clients(),
        expected,
        "no two sessions shared a 4-tuple"
    );
    assert_each_opened_without_resets(&totals, 2 * CONNECTIONS);
}

#[test]
fn two_instances_with_the_same_flags_are_told_apart_by_intercept() {
    // Both copies replay each client onto the same 4-tuple with the same SYN: the target
    // cannot tell them apart, intercept can (each says which process it is), and the one
    // that registered later moves its session to another port.
    const CONNECTIONS: usize = 200;
    let mut test = Shaped::start("shapes", &[&[], &[]]);
    test.load(CONNECTIONS);
    let expected = 2 * CONNECTIONS;
    let logged = settled(CATCH_UP, || test.target.access_count(), |&n| n >= expected).unwrap();
    let totals = test.stop_copies();

    assert_eq!(
        logged, expected,
        "both instances' requests at the target: {totals:?}"
    );
    assert_eq!(
        test.distinct_target_clients(),
        expected,
        "no two sessions shared a 4-tuple"
    );
    let moved: u64 = totals.iter().map(|t| t["ports_held_by_other_copy"]).sum();
    assert!(moved > 0, "the collisions were seen: {totals:?}");
    assert_each_opened_without_resets(&totals, CONNECTIONS);
}

#[test]
fn half_of_the_sessions_sampled() {
    const CONNECTIONS: usize = 2_000;
    let mut test = Shaped::start("shaper", &[&["-r", "50"]]);
    test.load(CONNECTIONS);
    let logged = stable(CATCH_UP, QUIET, || test.target.access_count()).unwrap();
    let totals = test.stop_copies().remove(0);

    let share = logged as f64 / CONNECTIONS as f64;
    assert!(
        (0.45..=0.55).contains(&share),
        "{logged} of {CONNECTIONS} replayed"
    );
    assert_eq!(totals["sessions_opened"], logged as u64, "{totals:?}");
    assert_eq!(
        totals["sessions_opened"] + totals["sessions_sampled_out"],
        CONNECTIONS as u64,
        "every session replayed or counted as sampled out: {totals:?}"
    );
}

#[test]
fn the_new_session_rate_is_capped() {
    // Bursts of connections far faster than the cap, every 50 ms for about two seconds: a
    // pause refills half the bucket, so the cap, not the burst size, decides.
    const ROUNDS: usize = 40;
    const PER_ROUND: usize = 25;
    const PAUSE: Duration = Duration::from_millis(50);
    const CONNECTIONS: usize = ROUNDS * PER_ROUND;
    const RATE: f64 = 100.0;
    let mut test = Shaped::start("shapem", &[&["--max-rate", "100/s"]]);
    let started = Instant::now();
    for _ in 0..ROUNDS {
        test.load(PER_ROUND);
        std::thread::sleep(PAUSE);
    }
    let took = started.elapsed();
    let logged = stable(CATCH_UP, QUIET, || test.target.access_count()).unwrap();
    let totals = test.stop_copies().remove(0);

    // A token bucket never lets through more than its rate over the time plus what it
    // holds when full: a tenth of a second's worth (over up to 10 shards).
    let most = RATE * took.as_secs_f64() + RATE / 10.0 + 1.0;
    eprintln!("e2e: {logged} sessions replayed while the load took {took:?} (at most {most:.0})");
    assert!(
        logged as f64 <= most,
        "{logged} replayed in {took:?} at {RATE}/s"
    );
    assert!(
        logged as f64 >= RATE * took.as_secs_f64() * 0.5,
        "the cap let through far less than its rate: {logged} in {took:?}"
    );
    assert!(
        logged < CONNECTIONS / 2,
        "the load was not faster than the cap: {took:?}"
    );
    assert_eq!(totals["sessions_opened"], logged as u64, "{totals:?}");
    assert_eq!(
        totals["sessions_opened"] + totals["sessions_rate_limited"],
        CONNECTIONS as u64,
        "every session replayed or counted as refused: {totals:?}"
    );
}
