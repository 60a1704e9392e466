//! Services in assistant mode, counted by the servers themselves:
//! - memcached's text protocol and redis's RESP ("client speaks first" request/response over
//!   keep-alive connections): the target executes exactly the commands the online server did,
//!   compared command by command from both servers' logs (memcached's `watch`, redis's
//!   `MONITOR`), which needs copy's pacing (each request waits for the previous response);
//! - two online hosts, each with its own copy, feeding one target through one intercept;
//! - the real client never receives a packet from the target.
//!
//! Topology and addresses: `scripts/lab.sh`.

mod common;

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use common::{
    CLIENT_NET, CommandLoad, CommandLog, CommandServer, Connections, HTTP_PORT, Host, Lab,
    LoggedCommand, MEMCACHED_PORT, Mode, Proc, REDIS_PORT, caught_up, multiset,
    multiset_differences, multiset_excess, requests, settled, wait_for_sessions_to_end,
};

/// Four concurrent connections of 250 rounds: 3,000 commands per load.
const COMMAND_LOAD: CommandLoad = CommandLoad {
    connections: 4,
    rounds: 250,
};
/// How long the target may take to catch up with the online server.
const CATCH_UP: Duration = Duration::from_secs(60);
/// The online memcached's counters of the load, checked against what the load sent.
const MEMCACHED_COUNTERS: [&str; 4] = ["cmd_set", "cmd_get", "get_hits", "get_misses"];
/// The redis commands the load sends, counted by the online redis (`INFO`, which the test
/// itself sends, is not counted).
const REDIS_COMMANDS: [&str; 3] = ["set", "get", "incr"];
/// The two halves of the rewritten client network, one per copy, so no two copies can make
/// the same client address and port.
const LOWER_HALF: &str = "203.0.113.0/25";
const UPPER_HALF: &str = "203.0.113.128/25";

#[test]
fn memcached_commands_reach_the_target_exactly_once() {
    let lab = Lab::up("svcmc", false).unwrap_or_else(|err| panic!("{err:#}"));
    let _online = lab.start_memcached(Host::Online).unwrap();
    let _target = lab.start_memcached(Host::Target).unwrap();
    let mut online_log = lab
        .watch_commands(Host::Online, CommandServer::Memcached)
        .unwrap();
    let mut target_log = lab
        .watch_commands(Host::Target, CommandServer::Memcached)
        .unwrap();
    let _intercept = lab
        .start_intercept(Mode::Assistant, MEMCACHED_PORT)
        .unwrap();
    let mut copy = lab
        .start_assistant_copy(Host::Online, MEMCACHED_PORT, CLIENT_NET)
        .unwrap();

    let stats = |host| {
        let stats = lab.memcached_stats(host, MEMCACHED_PORT)?;
        MEMCACHED_COUNTERS
            .iter()
            .map(|&name| {
                let value = stats.get(name).and_then(|value| value.parse().ok());
                let value = value.ok_or_else(|| anyhow::anyhow!("memcached stats: no {name}"))?;
                Ok((name, value))
            })
            .collect::<anyhow::Result<BTreeMap<&str, u64>>>()
    };
    let online_before = stats(Host::Online).unwrap();

    let load = lab.memcached_load(
        Host::Client,
        Host::Online.socket(MEMCACHED_PORT),
        COMMAND_LOAD,
    );
    let commands = COMMAND_LOAD.total_rounds() * CommandLoad::MEMCACHED_COMMANDS_PER_ROUND;
    load.assert_all_ok(commands, "client load");

    let rounds = u64::try_from(COMMAND_LOAD.total_rounds()).unwrap();
    let expected = BTreeMap::from([
        ("cmd_set", rounds),
        ("cmd_get", 2 * rounds),
        ("get_hits", rounds),
        ("get_misses", rounds),
    ]);
    let online = delta(&stats(Host::Online).unwrap(), &online_before);
    assert_eq!(
        online, expected,
        "the online memcached's own counts of the load"
    );
    // Every command logs a line (a set also logs its lookup first).
    let online = online_log.up_to_now().unwrap();
    assert!(
        online.len() >= commands,
        "the online memcached logged {} lines for {commands} commands",
        online.len()
    );

    assert_replayed_exactly_once(&mut copy, &online, &mut target_log, "memcached");
}

#[test]
fn redis_commands_reach_the_target_exactly_once() {
    let lab = Lab::up("svcrd", true).unwrap_or_else(|err| panic!("{err:#}"));
    let _online = lab.start_redis(Host::Online).unwrap();
    let _target = lab.start_redis(Host::Target).unwrap();
    let mut online_log = lab
        .watch_commands(Host::Online, CommandServer::Redis)
        .unwrap();
    let mut target_log = lab
        .watch_commands(Host::Target, CommandServer::Redis)
        .unwrap();
    let _intercept = lab.start_intercept(Mode::Assistant, REDIS_PORT).unwrap();
    let mut copy = lab
        .start_assistant_copy(Host::Online, REDIS_PORT, CLIENT_NET)
        .unwrap();

    let calls = |host| -> anyhow::Result<BTreeMap<&str, u64>> {
        let calls = lab.redis_command_calls(host, REDIS_PORT)?;
        Ok(REDIS_COMMANDS
            .iter()
            .map(|&name| (name, calls.get(name).copied().unwrap_or(0)))
            .collect::<BTreeMap<&str, u64>>())
    };
    let online_before = calls(Host::Online).unwrap();

    let load = lab.redis_load(Host::Client, Host::Online.socket(REDIS_PORT), COMMAND_LOAD);
    let commands = COMMAND_LOAD.total_rounds() * CommandLoad::REDIS_COMMANDS_PER_ROUND;
    load.assert_all_ok(commands, "client load");

    let rounds = u64::try_from(COMMAND_LOAD.total_rounds()).unwrap();
    let expected = BTreeMap::from([("set", rounds), ("get", rounds), ("incr", rounds)]);
    let online = delta(&calls(Host::Online).unwrap(), &online_before);
    assert_eq!(online, expected, "the online redis's own command counts");
    // One line per command (the test's own INFO comes from the server's host: left out).
    let online = online_log.up_to_now().unwrap();
    assert_eq!(
        online.len(),
        commands,
        "commands in the online redis's MONITOR"
    );

    assert_replayed_exactly_once(&mut copy, &online, &mut target_log, "redis");
}

#[test]
fn two_copies_feed_one_target_through_one_intercept() {
    /// Per online host: keep-alive requests, then short connections.
    const KEEP_ALIVE: usize = 300;
    const SHORT: usize = 100;
    let lab = Lab::up("svc2c", false).unwrap_or_else(|err| panic!("{err:#}"));
    let online = lab.start_nginx(Host::Online).unwrap();
    let online2 = lab.start_nginx(Host::Online2).unwrap();
    let target = lab.start_nginx(Host::Target).unwrap();
    let _intercept = lab.start_intercept(Mode::Assistant, HTTP_PORT).unwrap();
    let mut copy = lab
        .start_assistant_copy(Host::Online, HTTP_PORT, LOWER_HALF)
        .unwrap();
    let mut copy2 = lab
        .start_assistant_copy(Host::Online2, HTTP_PORT, UPPER_HALF)
        .unwrap();

    let load_one = |host: Host| {
        let mut kept = lab
            .http_load(
                Host::Client,
                host.socket(HTTP_PORT),
                KEEP_ALIVE,
                Connections::KeepAlive,
            )
            .unwrap();
        let short = lab
            .http_load(
                Host::Client,
                host.socket(HTTP_PORT),
                SHORT,
                Connections::Short,
            )
            .unwrap();
        kept.ok += short.ok;
        kept.failed += short.failed;
        kept.errors.extend(short.errors);
        kept
    };
    let (load, load2) = thread::scope(|scope| {
        let first = scope.spawn(|| load_one(Host::Online));
        let second = scope.spawn(|| load_one(Host::Online2));
        (first.join().unwrap(), second.join().unwrap())
    });
    load.assert_all_ok(KEEP_ALIVE + SHORT, "client load");
    load2.assert_all_ok(KEEP_ALIVE + SHORT, "client load");
    let online_count = caught_up(CATCH_UP, KEEP_ALIVE + SHORT, || online.access_count()).unwrap();
    let online2_count = caught_up(CATCH_UP, KEEP_ALIVE + SHORT, || online2.access_count()).unwrap();
    assert_eq!(
        (online_count, online2_count),
        (KEEP_ALIVE + SHORT, KEEP_ALIVE + SHORT)
    );

    settled(
        CATCH_UP,
        || target.access_count(),
        |&count| count >= online_count + online2_count,
    )
    .unwrap();
    // Final readings once both copies have ended every session and stopped: no handshake or
    // response timer of theirs can still change the target's log.
    let ended = wait_for_sessions_to_end(&copy, CATCH_UP);
    let ended2 = wait_for_sessions_to_end(&copy2, CATCH_UP);
    let totals = stop_copy(&mut copy);
    let totals2 = stop_copy(&mut copy2);
    ended.unwrap_or_else(|err| panic!("{err:#}; copy totals {totals:?}"));
    ended2.unwrap_or_else(|err| panic!("{err:#}; copy2 totals {totals2:?}"));

    // Each copy used its own half of the rewritten network: the target's requests from each
    // half are exactly its online host's, request by request.
    let target_entries = target.access_entries().unwrap();
    assert!(
        target_entries.iter().all(|entry| match entry.client.ip() {
            std::net::IpAddr::V4(v4) => v4.octets()[..3] == [203, 0, 113],
            std::net::IpAddr::V6(_) => false,
        }),
        "target clients outside {CLIENT_NET}: {target_entries:?}"
    );
    let (lower, upper): (Vec<_>, Vec<_>) = target_entries.into_iter().partition(
        |entry| matches!(entry.client.ip(), std::net::IpAddr::V4(v4) if v4.octets()[3] < 128),
    );
    for (half, target_half, online_host, totals) in [
        (LOWER_HALF, &lower, &online, &totals),
        (UPPER_HALF, &upper, &online2, &totals2),
    ] {
        let differences = multiset_differences(
            &requests(&online_host.access_entries().unwrap()),
            &requests(target_half),
            10,
        );
        assert!(
            differences.is_empty(),
            "target requests from {half} vs its online host's ((port, method, path, status, \
             request length, bytes sent), online, target): {differences:?}; copy totals \
             {totals:?}"
        );
    }
}

#[test]
fn the_client_never_receives_a_packet_from_the_target() {
    const KEEP_ALIVE: usize = 300;
    const SHORT: usize = 100;
    /// Every IPv4 packet from the target (ARP is not IP: the target's broadcasts are fine).
    const FROM_TARGET: &str = "ip and src host 198.51.100.30";
    /// The target's answers to rewritten clients, seen on the target: the replies exist.
    const TARGET_REPLIES: &str = "tcp and src host 198.51.100.30 and dst net 203.0.113.0/24";
    let lab = Lab::up("svcnc", false).unwrap_or_else(|err| panic!("{err:#}"));
    let online = lab.start_nginx(Host::Online).unwrap();
    let target = lab.start_nginx(Host::Target).unwrap();
    let mut at_client = lab.capture(Host::Client, FROM_TARGET).unwrap();
    let mut at_target = lab.capture(Host::Target, TARGET_REPLIES).unwrap();
    let _intercept = lab.start_intercept(Mode::Assistant, HTTP_PORT).unwrap();
    let mut copy = lab
        .start_assistant_copy(Host::Online, HTTP_PORT, CLIENT_NET)
        .unwrap();

    let online_addr = Host::Online.socket(HTTP_PORT);
    let kept = lab
        .http_load(
            Host::Client,
            online_addr,
            KEEP_ALIVE,
            Connections::KeepAlive,
        )
        .unwrap();
    let short = lab
        .http_load(Host::Client, online_addr, SHORT, Connections::Short)
        .unwrap();
    kept.assert_all_ok(KEEP_ALIVE, "client load");
    short.assert_all_ok(SHORT, "client load");
    let online_count = caught_up(CATCH_UP, KEEP_ALIVE + SHORT, || online.access_count()).unwrap();
    assert_eq!(online_count, KEEP_ALIVE + SHORT);
    let target_count = settled(
        CATCH_UP,
        || target.access_count(),
        |&count| count >= KEEP_ALIVE + SHORT,
    )
    .unwrap();
    let totals = stop_copy(&mut copy);
    assert_eq!(
        target_count,
        KEEP_ALIVE + SHORT,
        "the target served every request; copy totals {totals:?}"
    );

    let from_target = at_client.stop().unwrap();
    let replies = at_target.stop().unwrap();
    assert_eq!(replies.dropped_by_kernel, 0, "{replies:?}");
    assert!(
        replies.captured > 0,
        "the target answered the copies: {replies:?}"
    );
    assert_eq!(from_target.dropped_by_kernel, 0, "{from_target:?}");
    assert_eq!(
        (from_target.captured, from_target.received_by_filter),
        (0, 0),
        "IP packets from the target on the client: {:?}",
        at_client.packets("").unwrap()
    );
}

/// `after - before` for every counter of `after`.
fn delta<'a>(
    after: &BTreeMap<&'a str, u64>,
    before: &BTreeMap<&str, u64>,
) -> BTreeMap<&'a str, u64> {
    after
        .iter()
        .map(|(&name, &value)| {
            (
                name,
                value.saturating_sub(before.get(name).copied().unwrap_or(0)),
            )
        })
        .collect()
}

/// Waits until the target has logged every command of `online` (`server`'s log on the online
/// host), ends `copy` once it has ended every session, and compares the target's whole log
/// with `online` command by command: each command exactly as many times.
fn assert_replayed_exactly_once(
    copy: &mut Proc,
    online: &[LoggedCommand],
    target_log: &mut CommandLog,
    server: &str,
) {
    let online = multiset(online.iter().cloned());
    settled(
        CATCH_UP,
        || Ok(multiset(target_log.seen()?)),
        |target| multiset_excess(target, &online).is_empty(),
    )
    .unwrap();
    let totals = stop_when_sessions_ended(copy);
    let target = multiset(target_log.up_to_now().unwrap());
    let differences = multiset_differences(&online, &target, 10);
    assert!(
        differences.is_empty(),
        "{server} commands, (command, online, target): {differences:?}; copy totals: {totals:?}"
    );
}

/// Waits until copy has ended every session (the client closed its connections), then
/// stops it: a reading of the target taken after this can no longer change.
fn stop_when_sessions_ended(copy: &mut Proc) -> BTreeMap<String, u64> {
    let ended = wait_for_sessions_to_end(copy, CATCH_UP);
    let totals = stop_copy(copy);
    ended.unwrap_or_else(|err| panic!("{err:#}; copy totals {totals:?}"));
    totals
}

/// Stops copy, checking that its capture lost nothing, and returns its totals.
fn stop_copy(copy: &mut Proc) -> BTreeMap<String, u64> {
    let totals = common::stop_copy(copy).unwrap_or_else(|err| panic!("{err:#}"));
    assert_eq!(totals.get("kernel_dropped"), Some(&0), "{totals:?}");
    totals
}
