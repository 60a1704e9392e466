//! Foundation acceptance: `tcpcopy copy` on the online host replays each client connection to
//! the target, with the client rewritten into 203.0.113.0/24 and the target answering it, while
//! no intercept runs (copy keeps running and retries), and without copying its own copies.
//!
//! Topology and addresses: `scripts/lab.sh`. Runs once with offloads off, once on.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::Duration;

use common::{
    Capture, Connections, Host, Lab, TcpPacket, has_bound_packet_socket, stop_copy, tcpcopy_bin,
    wait_until,
};

/// Short HTTP connections the client makes.
const CONNECTIONS: usize = 5;
/// The copy under test: port 80 to the target, clients rewritten, intercept on the assistant.
const COPY_ARGS: [&str; 9] = [
    "copy",
    "-i",
    "eth0",
    "-x",
    "80-198.51.100.30:80",
    "-c",
    "203.0.113.0/24",
    "-s",
    "198.51.100.40",
];
/// Everything the target exchanges with rewritten clients.
const AT_TARGET: &str = "tcp and (src net 203.0.113.0/24 or dst net 203.0.113.0/24)";
const FROM_REWRITTEN: &str = "tcp and src net 203.0.113.0/24";
const COPIED_SYNS: &str = "tcp and src net 203.0.113.0/24 and tcp[tcpflags] & tcp-syn != 0";
const TARGET_SYN_ACKS: &str =
    "tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack) and dst net 203.0.113.0/24";
/// What the client sends to the online service, captured on the client.
const TO_ONLINE: &str = "dst host 198.51.100.20 and dst port 80";
const SYNS: &str = "tcp[tcpflags] & tcp-syn != 0";

/// How long copy may take to open its capture, the copies to arrive, and copy to exit.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Extra time given to a self-capture loop to show itself once every copy has arrived (the
/// lab facts saw 7 packets become 144k copies in 2 s).
const LOOP_SETTLE: Duration = Duration::from_millis(500);

#[test]
fn copy_replays_client_connections_with_offloads_off() {
    copy_replays_client_connections("fndof", false);
}

#[test]
fn copy_replays_client_connections_with_offloads_on() {
    copy_replays_client_connections("fndon", true);
}

fn copy_replays_client_connections(name: &str, offloads: bool) {
    let lab = Lab::up(name, offloads).unwrap_or_else(|err| panic!("{err:#}"));
    let _online = lab.start_nginx(Host::Online).unwrap();
    let _target = lab.start_nginx(Host::Target).unwrap();
    let mut at_target = lab.capture(Host::Target, AT_TARGET).unwrap();
    let mut from_client = lab.capture(Host::Client, TO_ONLINE).unwrap();

    let mut args = vec![tcpcopy_bin()];
    args.extend(COPY_ARGS);
    let mut copy = lab.spawn(Host::Online, &args).unwrap();
    wait_until(TIMEOUT, "tcpcopy copy to capture on eth0", || {
        copy.ensure_running()?;
        has_bound_packet_socket(copy.pid())
    })
    .unwrap_or_else(|err| panic!("{err:#}"));

    let load = lab.http_load(
        Host::Client,
        Host::Online.socket(80),
        CONNECTIONS,
        Connections::Short,
    );
    load.unwrap().assert_all_ok(CONNECTIONS, "client requests");

    wait_until(
        TIMEOUT,
        "a SYN-ACK from the target for every client connection",
        || Ok(at_target.count(TARGET_SYN_ACKS)? >= CONNECTIONS),
    )
    .unwrap_or_else(|err| panic!("{err:#}\ncopy stderr:\n{}", copy.stderr()));
    thread::sleep(LOOP_SETTLE);

    copy.ensure_running()
        .unwrap_or_else(|err| panic!("copy must keep running without an intercept: {err:#}"));
    stop_copy(&mut copy).unwrap_or_else(|err| panic!("{err:#}"));

    for capture in [&mut at_target, &mut from_client] {
        let summary = capture.stop().unwrap();
        assert_eq!(summary.dropped_by_kernel, 0, "{summary:?}");
    }
    assert_each_connection_copied_and_answered(&from_client, &at_target);
    assert_no_self_capture(&from_client, &at_target, &copy.stderr());
}

/// Every client connection reached the target exactly once as a new flow from 203.0.113.0/24,
/// with the client's port and initial sequence number kept, and the target answered each.
fn assert_each_connection_copied_and_answered(from_client: &Capture, at_target: &Capture) {
    let client_syns: BTreeMap<u16, u32> = from_client
        .packets(SYNS)
        .unwrap()
        .iter()
        .map(|syn| (syn.src.port(), syn.seq))
        .collect();
    assert_eq!(
        client_syns.len(),
        CONNECTIONS,
        "client connections: {client_syns:?}"
    );

    let copied_syns = at_target.packets(COPIED_SYNS).unwrap();
    let copied_flows: BTreeSet<_> = copied_syns.iter().map(|syn| syn.src).collect();
    assert_eq!(
        copied_flows.len(),
        CONNECTIONS,
        "one copied flow per connection: {copied_flows:?}"
    );
    for syn in &copied_syns {
        assert_eq!(syn.dst, Host::Target.socket(80), "copied SYN {syn:?}");
        assert_eq!(
            client_syns.get(&syn.src.port()),
            Some(&syn.seq),
            "copied SYN {syn:?} must keep a client connection's port and sequence number"
        );
    }

    let answered: BTreeSet<_> = at_target
        .packets(TARGET_SYN_ACKS)
        .unwrap()
        .iter()
        .filter(|syn_ack| syn_ack.src == Host::Target.socket(80))
        .map(|syn_ack| syn_ack.dst)
        .collect();
    assert_eq!(
        answered, copied_flows,
        "the target answers every copied SYN with a SYN-ACK"
    );
}

/// A copy that captured its own output (its copies leave by the same `eth0`) would multiply
/// packets without end. So copy captures exactly the packets the client sent to the online
/// service, and the target receives no more packets from 203.0.113.0/24 than that.
///
/// The target's count is not asserted equal: with no intercept, copy never learns the
/// target's initial sequence number, so it must hold the client's handshake ACK and request
/// (their ACK field is rewritten from the target's reply), and only the SYNs can be sent.
fn assert_no_self_capture(from_client: &Capture, at_target: &Capture, copy_log: &str) {
    let client_sent = from_client.count("").unwrap();
    assert_eq!(
        common::counter(copy_log, "copy totals", "captured") as usize,
        client_sent,
        "copy must capture exactly what the client sent"
    );
    let copies: Vec<TcpPacket> = at_target.packets(FROM_REWRITTEN).unwrap();
    assert!(
        (CONNECTIONS..=client_sent).contains(&copies.len()),
        "the target received {} packets from rewritten clients for {client_sent} client packets: {copies:?}",
        copies.len()
    );
}
