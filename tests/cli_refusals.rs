//! Values and combinations refused at start, before anything is opened: each exits 2 with
//! `tcpcopy: ...` naming the flag and why (docs/troubleshooting.md, "Refused at start").
//! None needs root: every command line here fails before a capture, socket or queue opens.

use std::process::Command;

/// A live copy's command line up to its mappings (`-i` names a device no host has: a
/// refusal comes before any device is opened).
const COPY: &[&str] = &["copy", "-i", "tcpcopy-none0", "-s", "198.51.100.40"];
const MAP: &str = "80-198.51.100.30:80";

/// Runs tcpcopy with `args`; asserts it exits 2 with one `tcpcopy: ` message that contains
/// each of `says`.
fn refused(args: &[&str], says: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_tcpcopy"))
        .args(args)
        .output()
        .expect("run tcpcopy");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(output.stdout.is_empty(), "{args:?}: nothing on stdout");
    assert!(stderr.starts_with("tcpcopy: "), "{args:?}: {stderr}");
    for part in says {
        assert!(stderr.contains(part), "{args:?}: no {part:?} in {stderr}");
    }
}

fn copy<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    [COPY, extra].concat()
}

#[test]
fn a_target_of_no_host_is_refused() {
    for (target, why) in [
        (
            "80-0.0.0.0:80",
            "the target address 0.0.0.0 is the unspecified address",
        ),
        (
            "80-255.255.255.255:80",
            "the target address 255.255.255.255 is the broadcast address",
        ),
        (
            "80-239.1.2.3:80",
            "the target address 239.1.2.3 is a multicast address",
        ),
        (
            "80-[::]:80",
            "the target address :: is the unspecified address",
        ),
    ] {
        refused(&copy(&["-x", target]), &["--map", target, why]);
    }
}

#[test]
fn two_mappings_for_one_port_are_refused() {
    refused(
        &copy(&["-x", "80-198.51.100.30:80,80-198.51.100.31:80"]),
        &[
            "-x 80-198.51.100.31:80 would never apply",
            "-x 80-198.51.100.30:80 comes first",
        ],
    );
    refused(
        &copy(&["-x", MAP, "-x", "198.51.100.20:80-198.51.100.31:80"]),
        &["-x 198.51.100.20:80-198.51.100.31:80 would never apply"],
    );
}

#[test]
fn client_addresses_no_reply_can_reach_are_refused() {
    for (pool, why) in [
        ("0.0.0.0", "0.0.0.0 is the unspecified address"),
        (
            "255.255.255.255",
            "255.255.255.255 is the broadcast address",
        ),
        ("224.0.0.0/24", "224.0.0.1 is a multicast address"),
        ("127.0.0.x", "127.0.0.1 is a loopback address"),
        ("203.0.113.1,::1", "::1 is a loopback address"),
    ] {
        refused(&copy(&["-x", MAP, "-c", pool]), &["--client-ip", why]);
    }
}

#[test]
fn a_client_pool_without_the_targets_family_is_refused() {
    refused(
        &copy(&["-x", "80-[2001:db8::30]:80", "-c", "203.0.113.0/24"]),
        &[
            "-c/--client-ip has no IPv6 address for the IPv6 target",
            "would carry the real clients' addresses",
        ],
    );
}

#[test]
fn max_sessions_0_is_refused() {
    refused(
        &copy(&["-x", MAP, "--max-sessions", "0"]),
        &["--max-sessions", "0 sessions would replay nothing"],
    );
}

#[test]
fn durations_that_make_no_sense_are_refused() {
    refused(
        &copy(&["-x", MAP, "--stats-interval", "1ns"]),
        &[
            "--stats-interval",
            "`1ns` is shorter than 100ms",
            "0s turns the reports off",
        ],
    );
    refused(
        &["intercept", "--nfqueue", "0", "--stats-interval", "10ms"],
        &["--stats-interval", "shorter than 100ms"],
    );
    refused(&copy(&["-x", MAP, "-R", "0"]), &["--rtt", "leave -R out"]);
    refused(
        &[
            "copy",
            "--offline",
            "a.pcap",
            "-x",
            MAP,
            "-s",
            "h",
            "--max-gap",
            "0s",
        ],
        &["--max-gap", "--speed max"],
    );
}

#[test]
fn intercept_port_0_is_refused() {
    refused(
        &["intercept", "--nfqueue", "0", "-p", "0"],
        &["--port", "0 is not in 1..=65535"],
    );
}

#[test]
fn offline_flags_in_live_capture_are_refused() {
    // Without -i too: copy then picks its devices itself.
    for (flag, value) in [
        ("--drain", "5s"),
        ("--speed", "2"),
        ("--loop", "3"),
        ("--max-gap", "1s"),
    ] {
        refused(
            &["copy", "-x", MAP, "-s", "h", flag, value],
            &[&format!("{flag} applies only to an --offline replay")],
        );
    }
}

#[test]
fn live_capture_flags_in_an_offline_replay_are_refused() {
    for (flag, value, named) in [
        ("-B", "16", "-B/--buffer-size"),
        ("-S", "2000", "-S/--snaplen"),
        ("--workers", "2", "--workers"),
    ] {
        refused(
            &[
                "copy",
                "--offline",
                "a.pcap",
                "-x",
                MAP,
                "-s",
                "h",
                flag,
                value,
            ],
            &[&format!("{named} applies only to live capture")],
        );
    }
}

#[test]
fn intercept_flags_of_the_other_mode_are_refused() {
    for (args, says) in [
        (
            &["--nfqueue", "0", "-F", "tcp"][..],
            "-F/--filter applies only to assistant mode",
        ),
        (
            &["--nfqueue", "0", "-B", "8"],
            "-B/--buffer-size applies only to assistant mode",
        ),
        (
            &["--nfqueue", "0", "--allow-forwarding"],
            "--allow-forwarding applies only to assistant mode",
        ),
        (
            &["-i", "eth0", "-F", "tcp", "-x", "198.51.100.9"],
            "-x/--passlist applies only to target mode",
        ),
        (
            &["-i", "eth0", "-F", "tcp", "--queue-length", "9"],
            "--queue-length applies only to target mode",
        ),
    ] {
        refused(&[&["intercept"][..], args].concat(), &[says]);
    }
}
