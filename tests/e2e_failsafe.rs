//! Fail safe on the target: the target's replies must never reach the real clients, whatever
//! the operator got wrong or however intercept died (docs/deployment.md, "Fail safe").
//!
//! - An assistant with `net.ipv4.ip_forward=1` would pass the replies on: intercept refuses
//!   to start there, exit 2, naming the sysctl, its fix and `--allow-forwarding`; with the
//!   flag it starts and warns; forwarding turned on while it runs is logged as an error.
//! - Target mode without the NFQUEUE rule: intercept warns at start, and once copies
//!   register flows with nothing queued, logs an error naming the missing rule and its fix.
//! - Target mode, intercept killed with SIGKILL: the kernel drops what the rule queues to a
//!   queue nobody reads (no `--queue-bypass`): the target keeps answering the copies (the
//!   rule's packet count grows) and the real client receives not one packet from it.
//! - Target mode with `--passlist`: a passlisted host talks to the target directly (its
//!   replies are let through) while, in the same queue and at the same time, every reply to
//!   the copies is dropped and the real client receives nothing.

mod common;

use std::time::Duration;

use std::thread;

use common::{
    AccessEntry, Capture, Connections, HTTP_PORT, Host, Lab, Mode, Proc, READY_TIMEOUT, caught_up,
    multiset_differences, requests, stop_copy, tcpcopy_bin, wait_for_log, wait_for_sessions_to_end,
};

/// Client connections per load.
const CONNECTIONS: usize = 5;
/// Time for intercept's guard to speak: its 5 s re-read or wait, and the load.
const GUARD_TIMEOUT: Duration = Duration::from_secs(20);
/// Time for the target's access log, or the rule's count, to catch up.
const COUNT_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn fs_forwarding_assistant_refuses_to_start_and_names_the_fix() {
    let lab = Lab::up("fsfwd", false).unwrap_or_else(|err| panic!("{err:#}"));
    set_ip_forward(&lab, 1);
    let refused = lab.run(Host::Assistant, &assistant_intercept(&[])).unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = refused.stderr.trim_end();
    assert!(
        stderr.starts_with(
            "tcpcopy: refusing to start in assistant mode: net.ipv4.ip_forward: is 1: this \
             host forwards the target's replies instead of swallowing them"
        ),
        "{stderr}"
    );
    for part in [
        "`sysctl -w net.ipv4.ip_forward=0`, and set it in /etc/sysctl.d/ to keep it",
        "(see docs/troubleshooting.md#ip-forward)",
        "--allow-forwarding starts intercept anyway",
    ] {
        assert!(stderr.contains(part), "no {part:?} in {stderr}");
    }
    assert_eq!(stderr.lines().count(), 1, "one message: {stderr}");

    // Allowed: it starts, and says what that means.
    let mut allowed = start_assistant_intercept(&lab, &["--allow-forwarding"]);
    let log = allowed.stderr();
    assert!(
        log.contains("WARN")
            && log.contains("net.ipv4.ip_forward: is 1")
            && log.contains("intercept starts anyway (--allow-forwarding)"),
        "{log}"
    );
    allowed.stop(libc::SIGINT, READY_TIMEOUT).unwrap();

    // Off at start, turned on while running: an error, at the next re-read.
    set_ip_forward(&lab, 0);
    let mut guarded = start_assistant_intercept(&lab, &[]);
    assert!(
        !guarded.stderr().contains("ip_forward"),
        "{}",
        guarded.stderr()
    );
    set_ip_forward(&lab, 1);
    wait_for_log(&mut guarded, GUARD_TIMEOUT, "the forwarding error", |log| {
        log.contains("ERROR") && log.contains("forwarding turned on while intercept runs")
    })
    .unwrap();
    assert!(
        guarded
            .stderr()
            .contains("forwarding turned on while intercept runs: net.ipv4.ip_forward: is 1"),
        "{}",
        guarded.stderr()
    );
    set_ip_forward(&lab, 0);
    wait_for_log(&mut guarded, GUARD_TIMEOUT, "forwarding off again", |log| {
        log.contains("forwarding is off again: net.ipv4.ip_forward: 0")
    })
    .unwrap();
}

#[test]
fn fs_target_mode_without_the_rule_warns_when_copies_register() {
    let lab = Lab::up("fsrule", false).unwrap_or_else(|err| panic!("{err:#}"));
    let _online = lab.start_nginx(Host::Online).unwrap();
    let _target = lab.start_nginx(Host::Target).unwrap();
    let args = [tcpcopy_bin(), "intercept", "--nfqueue", "0"];
    let mut intercept = lab.spawn_listening_intercept(Host::Target, &args).unwrap();
    let log = intercept.stderr();
    assert!(
        log.contains("WARN") && log.contains("no OUTPUT rule queues to queue 0"),
        "said at start:\n{log}"
    );
    assert!(!log.contains("nothing queued"), "no copy yet:\n{log}");

    let _copy = lab
        .start_copy(Host::Online, HTTP_PORT, Mode::Target, None, &[])
        .unwrap();
    client_load(&lab, "client load with no rule on the target");
    wait_for_log(
        &mut intercept,
        GUARD_TIMEOUT,
        "the nothing-queued error",
        |log| log.contains("nothing queued: copies registered"),
    )
    .unwrap();
    let log = intercept.stderr();
    let error = log
        .lines()
        .find(|line| line.contains("nothing queued"))
        .unwrap_or_default();
    assert!(error.contains("ERROR"), "{error}");
    for part in [
        "not one reply of the target was queued to NFQUEUE queue 0, so the replies may be \
         reaching the real clients",
        "(see docs/troubleshooting.md#nothing-queued)",
        "no OUTPUT rule queues to queue 0",
        "-j NFQUEUE --queue-num 0",
        "(see docs/troubleshooting.md#nfqueue-rule)",
    ] {
        assert!(error.contains(part), "no {part:?} in {error}");
    }
    let registered: u64 = error
        .split("copies registered ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_default();
    assert!(registered >= 1, "{error}");
}

#[test]
fn fs_sigkill_of_intercept_in_target_mode_leaks_nothing() {
    let lab = Lab::up("fskill", false).unwrap_or_else(|err| panic!("{err:#}"));
    let _online = lab.start_nginx(Host::Online).unwrap();
    let target = lab.start_nginx(Host::Target).unwrap();
    // Whatever the target sends the real client, the whole test long.
    let mut leaks = capture_leaks(&lab);
    let mut intercept = lab.start_intercept(Mode::Target, HTTP_PORT).unwrap();
    let _copy = lab
        .start_copy(Host::Online, HTTP_PORT, Mode::Target, None, &[])
        .unwrap();
    client_load(&lab, "client load with intercept running");
    let replayed = caught_up(COUNT_TIMEOUT, CONNECTIONS, || target.access_count()).unwrap();
    assert_eq!(replayed, CONNECTIONS, "replay works before the kill");

    intercept.signal(libc::SIGKILL).unwrap();
    let status = intercept.wait_timeout(READY_TIMEOUT).unwrap();
    assert!(status.is_some(), "intercept died of SIGKILL");
    let queued_before = queued(&lab);
    client_load(&lab, "client load after intercept was killed");
    // The target answers each new copy (SYN-ACKs, then their retransmissions): the rule
    // queues them to a queue nobody reads, and the kernel drops them.
    let queued_after = caught_up(COUNT_TIMEOUT, CONNECTIONS, || {
        Ok(usize::try_from(queued(&lab).saturating_sub(queued_before))?)
    })
    .unwrap();
    assert!(
        queued_after >= CONNECTIONS,
        "the target answered the copies after the kill: {queued_after} queued"
    );
    assert_nothing_leaked(&mut leaks);
}

#[test]
fn fs_a_passlisted_host_reaches_the_target_while_replies_to_copies_are_dropped() {
    /// Requests of each load: the client's through copy and the passlisted host's direct.
    const REQUESTS: usize = 300;
    let lab = Lab::up("fspass", false).unwrap_or_else(|err| panic!("{err:#}"));
    let online = lab.start_nginx(Host::Online).unwrap();
    let target = lab.start_nginx(Host::Target).unwrap();
    let mut leaks = capture_leaks(&lab);
    let passlisted = Host::Online2.addr().to_string();
    let _intercept = lab
        .start_intercept_with(Mode::Target, HTTP_PORT, &["--passlist", &passlisted])
        .unwrap();
    let mut copy = lab
        .start_copy(Host::Online, HTTP_PORT, Mode::Target, None, &[])
        .unwrap();
    let (replayed_load, direct_load) = thread::scope(|scope| {
        let direct = scope.spawn(|| {
            lab.http_load(
                Host::Online2,
                Host::Target.socket(HTTP_PORT),
                REQUESTS,
                Connections::Short,
            )
        });
        let replayed = lab.http_load(
            Host::Client,
            Host::Online.socket(HTTP_PORT),
            REQUESTS,
            Connections::Short,
        );
        (replayed, direct.join().expect("the direct load panicked"))
    });
    replayed_load
        .unwrap()
        .assert_all_ok(REQUESTS, "client requests to the online server");
    direct_load
        .unwrap()
        .assert_all_ok(REQUESTS, "the passlisted host's requests to the target");
    caught_up(COUNT_TIMEOUT, 2 * REQUESTS, || target.access_count()).unwrap();
    let ended = wait_for_sessions_to_end(&copy, COUNT_TIMEOUT);
    let totals = stop_copy(&mut copy).unwrap_or_else(|err| panic!("{err:#}"));
    ended.unwrap_or_else(|err| panic!("{err:#}; copy totals {totals:?}"));

    let (direct, replayed): (Vec<AccessEntry>, Vec<AccessEntry>) = target
        .access_entries()
        .unwrap()
        .into_iter()
        .partition(|entry| entry.client.ip() == Host::Online2.addr());
    assert_eq!(direct.len(), REQUESTS, "the passlisted host's requests");
    let differences = multiset_differences(
        &requests(&online.access_entries().unwrap()),
        &requests(&replayed),
        10,
    );
    assert!(
        differences.is_empty(),
        "replayed requests, online vs target: {differences:?}; copy totals {totals:?}"
    );
    assert_nothing_leaked(&mut leaks);
}

/// Captures whatever the target sends the real client, from now on.
fn capture_leaks(lab: &Lab) -> Capture {
    lab.capture(
        Host::Client,
        &format!("tcp and src host {}", Host::Target.addr()),
    )
    .unwrap()
}

/// Stops `leaks` and checks that the real client received not one packet from the target
/// (and that the capture itself lost none).
fn assert_nothing_leaked(leaks: &mut Capture) {
    let summary = leaks.stop().unwrap();
    assert_eq!(summary.dropped_by_kernel, 0, "{summary:?}");
    let leaked = leaks.packets("").unwrap();
    assert!(
        leaked.is_empty(),
        "the real client received {} packet(s) from the target: {leaked:?}",
        leaked.len()
    );
}

/// `sysctl -w net.ipv4.ip_forward=VALUE` on the assistant.
fn set_ip_forward(lab: &Lab, value: u8) {
    let setting = format!("net.ipv4.ip_forward={value}");
    lab.run_ok(Host::Assistant, &["sysctl", "-qw", &setting])
        .unwrap();
}

/// Intercept's command line on the assistant, as the lab's is, plus `extra`.
fn assistant_intercept(extra: &[&str]) -> Vec<String> {
    let filter = format!(
        "tcp and src host {} and src port {HTTP_PORT}",
        Host::Target.addr()
    );
    let args = [tcpcopy_bin(), "intercept", "-i", "eth0", "-F", &filter];
    args.iter()
        .chain(extra)
        .map(|arg| arg.to_string())
        .collect()
}

/// Starts intercept on the assistant and waits until it listens for copies.
fn start_assistant_intercept(lab: &Lab, extra: &[&str]) -> Proc {
    lab.spawn_listening_intercept(Host::Assistant, &assistant_intercept(extra))
        .unwrap()
}

/// [`CONNECTIONS`] short HTTP connections from the client to the online host, all answered.
fn client_load(lab: &Lab, what: &str) {
    let load = lab
        .http_load(
            Host::Client,
            Host::Online.socket(HTTP_PORT),
            CONNECTIONS,
            Connections::Short,
        )
        .unwrap();
    load.assert_all_ok(CONNECTIONS, what);
}

/// Packets the target's NFQUEUE rule has matched (`iptables -nvxL OUTPUT`).
fn queued(lab: &Lab) -> u64 {
    let listing = lab
        .run_ok(Host::Target, &["iptables", "-nvxL", "OUTPUT"])
        .unwrap();
    listing
        .lines()
        .find(|line| line.contains("NFQUEUE num 0"))
        .and_then(|line| line.split_whitespace().next())
        .and_then(|packets| packets.parse().ok())
        .unwrap_or_else(|| panic!("no NFQUEUE rule counted in:\n{listing}"))
}
