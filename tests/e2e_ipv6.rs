//! IPv6, end to end, in both modes: copy captures IPv6 clients of the online nginx and replays
//! them to the target's nginx over IPv6; intercept catches the target's IPv6 replies and
//! sends their headers back over protocol version 7 (the only one that carries IPv6).
//!
//! - Assistant mode: clients rewritten into 2001:db8:1::/120 (`-c`), which the target routes
//!   via the assistant, where intercept captures the replies with pcap.
//! - Target mode: the real client address kept; on the target an ip6tables rule queues the
//!   replies to NFQUEUE, where intercept reads and drops them: a capture on the client shows
//!   that nothing from the target ever reaches it.
//!
//! Counts come from the target's access log: exactly the client's requests, each from an
//! IPv6 address of the expected kind. The lab (`scripts/lab.sh up --ipv6`) uses the
//! documentation range 2001:db8::/32 only.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{
    CLIENT_NET6, Connections, Family, HTTP_PORT, Host, Lab, Mode, Proc, READY_TIMEOUT, settled,
    stop_copy, stop_with_totals, wait_for_log,
};

/// Short connections of each load, one request each.
const CONNECTIONS: usize = 200;
/// How long the target may take to log every replayed request once the client is done.
const CATCH_UP: Duration = Duration::from_secs(60);

#[test]
fn ipv6_in_assistant_mode() {
    replay_ipv6("ipvas", Mode::Assistant);
}

#[test]
fn ipv6_in_target_mode_leaks_nothing_to_the_client() {
    replay_ipv6("ipvta", Mode::Target);
}

fn replay_ipv6(name: &str, mode: Mode) {
    let lab = Lab::up_ipv6(name).unwrap_or_else(|err| panic!("{err:#}"));
    let _online = lab.start_nginx(Host::Online).unwrap();
    let target = lab.start_nginx(Host::Target).unwrap();
    let mut intercept = lab
        .start_intercept_for(mode, HTTP_PORT, Family::Ipv6, &[])
        .unwrap();
    let mut copy = start_copy(&lab, mode);
    // TCP only: the target's neighbour solicitations are multicast the bridge floods.
    let from_target = format!("ip6 and tcp and src host {}", Host::Target.addr6());
    let mut leak_watch = lab.capture(Host::Client, &from_target).unwrap();

    let load = lab
        .http_load(
            Host::Client,
            Host::Online.socket6(HTTP_PORT),
            CONNECTIONS,
            Connections::Short,
        )
        .unwrap();
    load.assert_all_ok(CONNECTIONS, "IPv6 client requests to the online server");
    let logged = settled(CATCH_UP, || target.access_count(), |&n| n >= CONNECTIONS).unwrap();
    let copy_totals = stop_copy(&mut copy).unwrap();
    let intercept_totals = stop_with_totals(&mut intercept, "intercept").unwrap();
    let leaked = leak_watch.stop().unwrap();

    assert_eq!(
        logged, CONNECTIONS,
        "requests at the target; copy: {copy_totals:?}"
    );
    let clients: Vec<IpAddr> = target.client_addrs().unwrap();
    let expected_client = |ip: &IpAddr| match (mode, ip) {
        (Mode::Assistant, IpAddr::V6(ip)) => ip.segments()[..7] == [0x2001, 0xdb8, 1, 0, 0, 0, 0],
        (Mode::Target, IpAddr::V6(ip)) => *ip == Host::Client.addr6(),
        (_, IpAddr::V4(_)) => false,
    };
    assert!(
        clients.iter().all(expected_client),
        "target clients: {clients:?}"
    );
    assert_eq!(
        copy_totals["sessions_opened"], CONNECTIONS as u64,
        "{copy_totals:?}"
    );
    assert_eq!(
        copy_totals["requests_sent"], CONNECTIONS as u64,
        "{copy_totals:?}"
    );
    assert_eq!(copy_totals["sessions_reset"], 0, "{copy_totals:?}");
    assert_eq!(copy_totals["registrations_refused"], 0, "{copy_totals:?}");
    assert_eq!(
        intercept_totals["replies_unrouted"], 0,
        "{intercept_totals:?}"
    );
    assert_eq!(
        copy_totals["replies_received"], intercept_totals["replies_routed"],
        "every routed reply reached copy"
    );
    assert_eq!(
        leaked.captured, 0,
        "packets from the target reached the IPv6 client: {leaked:?}"
    );
}

/// copy on the online host, replaying its IPv6 port 80 to the target's over IPv6, once it
/// has agreed protocol version 7 (the only one that carries IPv6) with intercept.
fn start_copy(lab: &Lab, mode: Mode) -> Proc {
    let clients = (mode == Mode::Assistant).then_some(CLIENT_NET6);
    let mut copy = lab
        .start_copy_for(Host::Online, HTTP_PORT, mode, Family::Ipv6, clients, &[])
        .unwrap();
    wait_for_log(
        &mut copy,
        READY_TIMEOUT,
        "copy to agree version 7 with intercept",
        |log| log.contains("speaks protocol version 7"),
    )
    .unwrap();
    copy
}
