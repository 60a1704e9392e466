//! Diagnostics in the lab: each broken set-up the troubleshooting guide names, made on
//! purpose, and what tcpcopy says about it.
//!
//! - Everything right: `copy --check` and `intercept --check` exit 0 (copy's path probe
//!   gets the target's SYN-ACK back through intercept); with no intercept listening, or a
//!   target port where nothing listens, `copy --check` exits 1 naming it. Copy stopped alone,
//!   or together with intercept, warns of nothing.
//! - The target's route for the client addresses removed: copy warns that no SYN-ACK came
//!   back, naming that route first; `copy --check`'s path probe gets no reply back and
//!   exits 1, naming the route first.
//! - Strict rp_filter on a target whose route back leaves by another link: copy's warning
//!   and `copy --check` (exit 1) name rp_filter; in loose mode the check passes again.
//! - A `-x` port where nothing listens, its RSTs outside intercept's filter: copy's warning
//!   names the closed port.
//! - Target mode, the target's route for the rule's `-d` clients removed: `intercept
//!   --check` exits 1 naming that route, and `copy --check`'s probe gets no reply back.
//! - Intercept without CAP_NET_ADMIN in target mode: the bind error names the capability.
//! - IP forwarding on the assistant: `intercept --check` exits 1 naming
//!   `net.ipv4.ip_forward` (intercept refuses to start there: e2e_failsafe.rs).
//! - Target mode without the NFQUEUE rule: `intercept --check` exits 1 naming the rule,
//!   intercept warns at start, and copy warns that no SYN-ACK came back, naming the rule
//!   first; with the rule in place `intercept --check` exits 0.

mod common;

use std::time::Duration;

use common::{
    CLIENT_NET, Connections, EXIT_TIMEOUT, HTTP_PORT, Host, Lab, Mode, Output, Proc, READY_TIMEOUT,
    has_bound_packet_socket, settled, stop_copy, tcpcopy_bin, wait_for_log, wait_until,
};

/// What copy logs when SYNs go unanswered.
const NO_SYN_ACK: &str = "no SYN-ACK came back";
/// Time for the warning: its 5 s wait, the shards' counter publishing and the load.
const WARNING_TIMEOUT: Duration = Duration::from_secs(20);
/// Client connections that make copy send SYNs.
const CONNECTIONS: usize = 5;
/// A target port where nothing listens.
const CLOSED_PORT: u16 = 8080;

#[test]
fn diag_everything_right_passes_both_checks() {
    let lab = Lab::up("diagok", false).unwrap_or_else(|err| panic!("{err:#}"));
    let _target = lab.start_nginx(Host::Target).unwrap();

    let intercept_check = check_intercept(&lab, Mode::Assistant);
    assert_exit(&intercept_check, 0);
    assert_line(&intercept_check, "ok    net.ipv4.ip_forward: 0");
    assert_line(&intercept_check, "ok    CAP_NET_RAW: held");
    assert_line(&intercept_check, "info  rp_filter: all=1");

    let intercept_addr = format!("intercept {}:36524", Host::Assistant.addr());
    let nothing_listens = check_copy(&lab, HTTP_PORT);
    assert_exit(&nothing_listens, 1);
    assert_line(
        &nothing_listens,
        &format!("FAIL  {intercept_addr}: refused the connection: no intercept listens there"),
    );
    assert!(
        nothing_listens
            .stderr
            .contains(&format!("1 check failed: {intercept_addr}")),
        "{nothing_listens:?}"
    );

    let mut intercept = lab.start_intercept(Mode::Assistant, HTTP_PORT).unwrap();
    let all_right = check_copy(&lab, HTTP_PORT);
    assert_exit(&all_right, 0);
    for line in [
        "ok    CAP_NET_RAW: held".to_string(),
        "ok    interface eth0: up, 198.51.100.20".into(),
        format!(
            "ok    -x online address {}: is this host's",
            Host::Online.addr()
        ),
        format!("ok    {intercept_addr}: accepts connections"),
        format!(
            "ok    route to {}: found, from {}",
            Host::Target.addr(),
            Host::Online.addr()
        ),
        format!(
            "ok    target {}: accepts connections",
            Host::Target.socket(HTTP_PORT)
        ),
    ] {
        assert_line(&all_right, &line);
    }

    assert_line(
        &all_right,
        &format!(
            "ok    replies of {}: the SYN-ACK to a SYN from 203.0.113.",
            Host::Target.socket(HTTP_PORT)
        ),
    );
    assert!(
        !all_right.stdout.contains("no reply from the target"),
        "{all_right:?}"
    );

    // Intercept's filter names port 80: the closed port's RSTs do not come back either.
    let closed = check_copy(&lab, CLOSED_PORT);
    assert_exit(&closed, 1);
    let target = Host::Target.socket(CLOSED_PORT);
    assert_line(
        &closed,
        &format!("FAIL  target {target}: refused the connection: nothing listens there"),
    );
    assert!(
        closed.stderr.contains(&format!(
            "2 checks failed: target {target}, replies of {target}"
        )),
        "{closed:?}"
    );

    // Copy stopped alone, intercept still running: closing its links is no warning.
    let mut alone = lab
        .start_assistant_copy(Host::Online, HTTP_PORT, CLIENT_NET)
        .unwrap();
    alone.signal(libc::SIGINT).unwrap();
    stop_copy(&mut alone).unwrap();
    let log = alone.stderr();
    assert!(
        !log.contains("WARN"),
        "copy stopped alone warns of nothing:\n{log}"
    );
    intercept.ensure_running().unwrap();

    // Copy and intercept stopped together (as Ctrl-C in a terminal does): copy's links close
    // because both stop, which is no warning.
    let mut copy = lab
        .start_assistant_copy(Host::Online, HTTP_PORT, CLIENT_NET)
        .unwrap();
    intercept.signal(libc::SIGINT).unwrap();
    copy.signal(libc::SIGINT).unwrap();
    stop_copy(&mut copy).unwrap();
    let log = copy.stderr();
    assert!(
        !log.contains("WARN"),
        "a clean stop warns of nothing:\n{log}"
    );
    assert!(
        intercept.wait_timeout(EXIT_TIMEOUT).unwrap().is_some(),
        "intercept exits on SIGINT"
    );
}

#[test]
fn diag_no_route_on_the_target_is_named_first() {
    let lab = Lab::up("diagroute", false).unwrap_or_else(|err| panic!("{err:#}"));
    let _online = lab.start_nginx(Host::Online).unwrap();
    let _target = lab.start_nginx(Host::Target).unwrap();
    lab.run_ok(Host::Target, &["ip", "route", "del", CLIENT_NET])
        .unwrap();
    let _intercept = lab.start_intercept(Mode::Assistant, HTTP_PORT).unwrap();
    let mut copy = lab
        .start_assistant_copy(Host::Online, HTTP_PORT, CLIENT_NET)
        .unwrap();
    let warning = wait_for_warning(&lab, &mut copy);
    assert!(
        warning.contains("(assistant mode: -s 198.51.100.40 is not the target)"),
        "{warning}"
    );
    assert!(
        warning.contains(
            "1. on the target: no route for the copies' client addresses via the \
             assistant; check: `ip route get 203.0.113."
        ),
        "{warning}"
    );
    assert!(
        warning.contains("must say `via 198.51.100.40`"),
        "{warning}"
    );
    assert!(
        warning.contains("(see docs/troubleshooting.md#target-route)"),
        "{warning}"
    );

    // The online host cannot read the target's routes, but its path probe finds that no
    // reply comes back, and names the route first.
    let check = check_copy(&lab, HTTP_PORT);
    assert_no_reply_back(&check);
    assert_line(
        &check,
        "        1. on the target: no route for the copies' client addresses via the \
         assistant; check: `ip route get 203.0.113.",
    );
}

#[test]
fn diag_strict_rp_filter_on_a_two_legged_target_is_named_and_loose_mode_replays() {
    // The target routes the copies' client addresses to the assistant over a second link
    // (t1 - a1, both ends inside the lab), while the copies arrive on eth0: strict rp_filter
    // drops them, since the route back leaves by the other interface. Loose mode lets them
    // in, and the replies take the second link to the assistant.
    const TARGET_LEG: &str = "198.51.100.130/30";
    const ASSISTANT_LEG: &str = "198.51.100.129";
    let lab = Lab::up("diagrp", false).unwrap_or_else(|err| panic!("{err:#}"));
    let _online = lab.start_nginx(Host::Online).unwrap();
    let target = lab.start_nginx(Host::Target).unwrap();
    let status = std::process::Command::new("ip")
        .args([
            "link",
            "add",
            "t1",
            "netns",
            &lab.ns(Host::Target),
            "type",
            "veth",
        ])
        .args(["peer", "name", "a1", "netns", &lab.ns(Host::Assistant)])
        .status()
        .unwrap();
    assert!(status.success(), "ip link add: {status}");
    let assistant_leg = format!("{ASSISTANT_LEG}/30");
    for (host, dev, addr) in [
        (Host::Target, "t1", TARGET_LEG),
        (Host::Assistant, "a1", assistant_leg.as_str()),
    ] {
        lab.run_ok(host, &["ip", "addr", "add", addr, "dev", dev])
            .unwrap();
        lab.run_ok(host, &["ip", "link", "set", dev, "up"]).unwrap();
    }
    let route = [
        "ip",
        "route",
        "replace",
        CLIENT_NET,
        "via",
        ASSISTANT_LEG,
        "dev",
        "t1",
    ];
    lab.run_ok(Host::Target, &route).unwrap();
    // ARP on t1 from t1's own address: the assistant (strict rp_filter itself) ignores a
    // request from 198.51.100.30, whose route back leaves by its eth0.
    let announce = ["sysctl", "-qw", "net.ipv4.conf.t1.arp_announce=2"];
    lab.run_ok(Host::Target, &announce).unwrap();

    let filter = format!(
        "tcp and src host {} and src port {HTTP_PORT}",
        Host::Target.addr()
    );
    let intercept_args = [tcpcopy_bin(), "intercept", "-i", "a1", "-F", &filter];
    let mut intercept = lab.spawn(Host::Assistant, &intercept_args).unwrap();
    wait_until(READY_TIMEOUT, "intercept to capture on a1", || {
        intercept.ensure_running()?;
        Ok(has_bound_packet_socket(intercept.pid())?
            && intercept.stderr().contains("waiting for copy connections"))
    })
    .unwrap();
    let mut copy = lab
        .start_assistant_copy(Host::Online, HTTP_PORT, CLIENT_NET)
        .unwrap();
    let warning = wait_for_warning(&lab, &mut copy);
    assert!(
        warning.contains("on the target: rp_filter drops the copies"),
        "{warning}"
    );
    assert!(
        warning.contains("(see docs/troubleshooting.md#rp-filter)"),
        "{warning}"
    );
    let check = check_copy(&lab, HTTP_PORT);
    assert_no_reply_back(&check);
    assert_line(
        &check,
        "        2. on the target: rp_filter drops the copies: it has no route back to their \
         source on the interface they arrive on",
    );

    // Loose mode (the effective value is the larger of `all` and the interface's).
    let loose = [
        "sysctl",
        "-qw",
        "net.ipv4.conf.all.rp_filter=2",
        "net.ipv4.conf.eth0.rp_filter=2",
    ];
    lab.run_ok(Host::Target, &loose).unwrap();
    let load = lab
        .http_load(
            Host::Client,
            Host::Online.socket(HTTP_PORT),
            CONNECTIONS,
            Connections::Short,
        )
        .unwrap();
    load.assert_all_ok(CONNECTIONS, "client load after rp_filter=2");
    let check = check_copy(&lab, HTTP_PORT);
    assert_exit(&check, 0);
    assert_line(
        &check,
        &format!(
            "ok    replies of {}: the SYN-ACK to a SYN from 203.0.113.",
            Host::Target.socket(HTTP_PORT)
        ),
    );
    let logged = settled(
        Duration::from_secs(30),
        || target.access_count(),
        |&n| n >= CONNECTIONS,
    )
    .unwrap();
    let totals = stop_copy(&mut copy).unwrap();
    assert_eq!(
        logged, CONNECTIONS,
        "only the requests after rp_filter=2 replayed; copy totals: {totals:?}"
    );
}

#[test]
fn diag_ip_forward_on_the_assistant_fails_its_check() {
    let lab = Lab::up("diagfwd", false).unwrap_or_else(|err| panic!("{err:#}"));
    lab.run_ok(Host::Assistant, &["sysctl", "-w", "net.ipv4.ip_forward=1"])
        .unwrap();
    let check = check_intercept(&lab, Mode::Assistant);
    assert_exit(&check, 1);
    assert_line(
        &check,
        "FAIL  net.ipv4.ip_forward: is 1: this host forwards the target's replies instead of \
         swallowing them",
    );
    assert_line(
        &check,
        "      `sysctl -w net.ipv4.ip_forward=0`, and set it in /etc/sysctl.d/ to keep it \
         (see docs/troubleshooting.md#ip-forward)",
    );
    assert!(
        check.stderr.contains("1 check failed: net.ipv4.ip_forward"),
        "{check:?}"
    );
    // Intercept itself refuses to start there: e2e_failsafe.rs.
}

#[test]
fn diag_nfqueue_rule_missing_in_target_mode_is_named_first() {
    let lab = Lab::up("diagrule", false).unwrap_or_else(|err| panic!("{err:#}"));
    let _online = lab.start_nginx(Host::Online).unwrap();
    let _target = lab.start_nginx(Host::Target).unwrap();

    let check = check_intercept(&lab, Mode::Target);
    assert_exit(&check, 1);
    assert_line(
        &check,
        "FAIL  NFQUEUE rule for queue 0: no OUTPUT rule queues to queue 0: the target's \
         replies go to the real clients, none to intercept",
    );
    assert!(
        check
            .stderr
            .contains("1 check failed: NFQUEUE rule for queue 0"),
        "{check:?}"
    );

    // Intercept without the rule: it says so, and copy hears nothing back.
    let intercept = lab
        .spawn_listening_intercept(
            Host::Target,
            &[tcpcopy_bin(), "intercept", "--nfqueue", "0"],
        )
        .unwrap();
    assert!(
        intercept
            .stderr()
            .contains("NFQUEUE rule for queue 0: no OUTPUT rule queues to queue 0"),
        "intercept warns at start:\n{}",
        intercept.stderr()
    );
    let mut copy = lab
        .start_copy(Host::Online, HTTP_PORT, Mode::Target, None, &[])
        .unwrap();
    let warning = wait_for_warning(&lab, &mut copy);
    assert!(
        warning.contains("(target mode: -s 198.51.100.30 is the target)"),
        "{warning}"
    );
    assert!(
        warning.contains(
            "1. on the target: no iptables OUTPUT rule queues the replies to intercept's \
             NFQUEUE queue; check: `iptables -S OUTPUT | grep NFQUEUE`"
        ),
        "{warning}"
    );
    drop(copy);
    drop(intercept);

    // With the rule (start_intercept inserts it) the check passes.
    let _intercept = lab.start_intercept(Mode::Target, HTTP_PORT).unwrap();
    let check = check_intercept(&lab, Mode::Target);
    assert_exit(&check, 0);
    assert_line(
        &check,
        "ok    NFQUEUE rule for queue 0: iptables `-A OUTPUT -d 198.51.100.0/24 -p tcp -m tcp \
         --sport 80 -j NFQUEUE --queue-num 0`",
    );
    assert_line(&check, "ok    CAP_NET_ADMIN: held");
}

#[test]
fn diag_closed_target_port_is_named_while_copy_runs() {
    let lab = Lab::up("diagclosed", false).unwrap_or_else(|err| panic!("{err:#}"));
    let _online = lab.start_nginx(Host::Online).unwrap();
    let _target = lab.start_nginx(Host::Target).unwrap();
    // Intercept's filter names port 80; the target's RSTs come from the closed port.
    let _intercept = lab.start_intercept(Mode::Assistant, HTTP_PORT).unwrap();
    let mut copy = lab
        .start_assistant_copy_to(Host::Online, HTTP_PORT, CLOSED_PORT, CLIENT_NET)
        .unwrap();
    let warning = wait_for_warning(&lab, &mut copy);
    assert!(
        warning.contains(&format!(
            "3. on the target: nothing listens on port {CLOSED_PORT}: the target refuses \
             every SYN with a RST, which intercept's capture filter (-F) misses when it names \
             another port"
        )),
        "{warning}"
    );
    assert!(
        warning.contains("(see docs/troubleshooting.md#target-port)"),
        "{warning}"
    );
}

#[test]
fn diag_nfqueue_without_cap_net_admin_names_the_capability() {
    let lab = Lab::up("diagcap", false).unwrap_or_else(|err| panic!("{err:#}"));
    let bin = tcpcopy_bin();
    let without = [
        "setpriv",
        "--inh-caps=-net_admin",
        "--bounding-set=-net_admin",
        "--",
    ];
    let check = lab
        .run(
            Host::Target,
            &[
                &without[..],
                &[bin, "intercept", "--check", "--nfqueue", "0"],
            ]
            .concat(),
        )
        .unwrap();
    assert_exit(&check, 1);
    assert_line(
        &check,
        "FAIL  CAP_NET_ADMIN: not held: binding an NFQUEUE queue needs it",
    );
    let intercept = lab
        .run(
            Host::Target,
            &[&without[..], &[bin, "intercept", "--nfqueue", "0"]].concat(),
        )
        .unwrap();
    assert_eq!(intercept.status.code(), Some(2), "{intercept:?}");
    assert!(
        intercept.stderr.contains(
            "cannot bind NFQUEUE queue 0: this process lacks CAP_NET_ADMIN: run intercept as \
             root or grant it the capability"
        ),
        "{intercept:?}"
    );
    assert!(
        !intercept.stderr.contains("another process"),
        "{intercept:?}"
    );
}

/// `check` exited 1 because copy's path probe got no reply back through any intercept.
fn assert_no_reply_back(check: &Output) {
    assert_exit(check, 1);
    let name = format!("replies of {}", Host::Target.socket(HTTP_PORT));
    assert_line(
        check,
        &format!(
            "FAIL  {name}: no reply from the target came back through any intercept within 2s \
             to a SYN from 203.0.113."
        ),
    );
    assert_line(check, "      likely causes, most likely first:");
    assert!(
        !check.stdout.contains("nothing listens on port"),
        "the port accepted this host's connect: no cause\n{check:?}"
    );
    assert!(
        check.stderr.contains(&format!("1 check failed: {name}")),
        "{check:?}"
    );
}

#[test]
fn diag_target_mode_without_a_route_to_the_rules_clients_is_named() {
    let lab = Lab::up("diagtroute", false).unwrap_or_else(|err| panic!("{err:#}"));
    let _online = lab.start_nginx(Host::Online).unwrap();
    let _target = lab.start_nginx(Host::Target).unwrap();
    let port = HTTP_PORT.to_string();
    let rule = [
        "iptables",
        "-I",
        "OUTPUT",
        "-p",
        "tcp",
        "--sport",
        &port,
        "-d",
        CLIENT_NET,
        "-j",
        "NFQUEUE",
        "--queue-num",
        "0",
    ];
    lab.run_ok(Host::Target, &rule).unwrap();
    lab.run_ok(Host::Target, &["ip", "route", "del", CLIENT_NET])
        .unwrap();
    let route = format!("route to {CLIENT_NET} (the NFQUEUE rule's -d)");

    let check = check_intercept(&lab, Mode::Target);
    assert_exit(&check, 1);
    assert_line(
        &check,
        &format!(
            "FAIL  {route}: none: Network is unreachable (os error 101); the replies to the \
             copies' addresses cannot be routed, so the rule never queues them"
        ),
    );
    assert!(
        check.stderr.contains(&format!("1 check failed: {route}")),
        "{check:?}"
    );

    // Copy's probe through intercept on the target gets nothing back either.
    let _intercept = lab
        .spawn_listening_intercept(
            Host::Target,
            &[tcpcopy_bin(), "intercept", "--nfqueue", "0"],
        )
        .unwrap();
    let probe = check_copy_through(&lab, HTTP_PORT, Host::Target);
    assert_no_reply_back(&probe);
    assert_line(
        &probe,
        "        2. on the target: no route at all for the copies' client addresses",
    );

    let back = ["ip", "route", "add", CLIENT_NET, "dev", "eth0"];
    lab.run_ok(Host::Target, &back).unwrap();
    let check = check_intercept(&lab, Mode::Target);
    assert_exit(&check, 0);
    assert_line(&check, &format!("ok    {route}: found, from"));
    let probe = check_copy_through(&lab, HTTP_PORT, Host::Target);
    assert_exit(&probe, 0);
    assert_line(
        &probe,
        &format!(
            "ok    replies of {}: the SYN-ACK to a SYN from 203.0.113.",
            Host::Target.socket(HTTP_PORT)
        ),
    );
}

/// `copy --check` on the online host, as the lab's assistant-mode copy is started, with the
/// target's port `port`.
fn check_copy(lab: &Lab, port: u16) -> Output {
    check_copy_through(lab, port, Host::Assistant)
}

/// [`check_copy`] with the intercept on `intercept` (the target: target mode).
fn check_copy_through(lab: &Lab, port: u16, intercept: Host) -> Output {
    let map = format!(
        "{}:{port}-{}",
        Host::Online.addr(),
        Host::Target.socket(port)
    );
    let assistant = intercept.addr().to_string();
    let args = [
        tcpcopy_bin(),
        "copy",
        "--check",
        "-i",
        "eth0",
        "-x",
        &map,
        "-s",
        &assistant,
        "-c",
        CLIENT_NET,
    ];
    lab.run(Host::Online, &args).unwrap()
}

/// `intercept --check` where `mode` runs intercept, with the lab's flags.
fn check_intercept(lab: &Lab, mode: Mode) -> Output {
    let bin = tcpcopy_bin();
    let filter = format!(
        "tcp and src host {} and src port {HTTP_PORT}",
        Host::Target.addr()
    );
    let args = match mode {
        Mode::Assistant => vec![bin, "intercept", "--check", "-i", "eth0", "-F", &filter],
        Mode::Target => vec![bin, "intercept", "--check", "--nfqueue", "0"],
    };
    lab.run(mode.intercept_host(), &args).unwrap()
}

/// Makes clients connect to the online service until copy warns that no SYN-ACK came back;
/// returns the warning, from its first line to the end of the log.
fn wait_for_warning(lab: &Lab, copy: &mut Proc) -> String {
    let load = lab
        .http_load(
            Host::Client,
            Host::Online.socket(HTTP_PORT),
            CONNECTIONS,
            Connections::Short,
        )
        .unwrap();
    load.assert_all_ok(CONNECTIONS, "client load on the online host");
    wait_for_log(copy, WARNING_TIMEOUT, "copy's no-SYN-ACK warning", |log| {
        log.contains(NO_SYN_ACK)
    })
    .unwrap();
    let log = copy.stderr();
    assert_eq!(log.matches(NO_SYN_ACK).count(), 1, "said once:\n{log}");
    let start = log.find(NO_SYN_ACK).unwrap_or_default();
    log[start..].to_string()
}

fn assert_exit(output: &Output, code: i32) {
    assert_eq!(output.status.code(), Some(code), "{output:?}");
}

/// `output`'s stdout has a line that starts with `line`.
fn assert_line(output: &Output, line: &str) {
    assert!(
        output.stdout.lines().any(|have| have.starts_with(line)),
        "no line starting {line:?} in:\n{}\nstderr:\n{}",
        output.stdout,
        output.stderr
    );
}
