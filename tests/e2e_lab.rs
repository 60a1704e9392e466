//! The lab and the e2e harness themselves: the topology `scripts/lab.sh` builds, that it
//! leaves nothing behind, and that the harness's servers, clients and captures count right.

mod common;

use common::{Connections, Host, Lab, READY_TIMEOUT, caught_up};

/// The first line of `ethtool -k eth0` output that starts with `feature`.
fn offload_line(lab: &Lab, host: Host, feature: &str) -> String {
    let features = lab
        .run_ok(host, &["ethtool", "-k", "eth0"])
        .unwrap_or_else(|err| panic!("{err:#}"));
    features
        .lines()
        .find(|line| line.starts_with(feature))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn lab_builds_the_topology_and_leaves_nothing_behind() {
    let lab = Lab::up("lab", false).unwrap_or_else(|err| panic!("{err:#}"));
    let prefix = lab.prefix().to_owned();

    for host in Host::ALL {
        let addrs = lab
            .run_ok(host, &["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
            .unwrap();
        assert!(
            addrs.contains(&format!("inet {}/24", host.addr())),
            "{host}: {addrs}"
        );
        assert_eq!(
            offload_line(&lab, host, "generic-receive-offload"),
            "generic-receive-offload: off"
        );
        assert_eq!(
            offload_line(&lab, host, "tcp-segmentation-offload"),
            "tcp-segmentation-offload: off"
        );
    }

    let route = lab
        .run_ok(Host::Target, &["ip", "route", "get", "203.0.113.7"])
        .unwrap();
    assert!(
        route.contains("via 198.51.100.40 dev eth0"),
        "target route: {route}"
    );
    let forward = lab
        .run_ok(Host::Assistant, &["sysctl", "-n", "net.ipv4.ip_forward"])
        .unwrap();
    assert_eq!(forward.trim(), "0");
    let rp_filter = lab
        .run_ok(
            Host::Target,
            &["sysctl", "-n", "net.ipv4.conf.all.rp_filter"],
        )
        .unwrap();
    assert_eq!(
        rp_filter.trim(),
        "1",
        "the lab tests copies against strict reverse-path filtering"
    );

    let nginx = lab.start_nginx(Host::Online).unwrap();
    let body = lab
        .run_ok(
            Host::Client,
            &["curl", "-sS", "--max-time", "2", "http://198.51.100.20/"],
        )
        .unwrap();
    assert_eq!(body, "ok\n");
    // nginx logs a request after the client has read its response.
    assert_eq!(
        caught_up(READY_TIMEOUT, 1, || nginx.access_count()).unwrap(),
        1
    );

    // No lab interface may sit in the root namespace: nothing can leave the machine.
    let root_links = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    let root_links = String::from_utf8_lossy(&root_links.stdout);
    assert!(
        !root_links.contains(&prefix),
        "root namespace links mention the lab: {root_links}"
    );

    drop(nginx);
    drop(lab);
    let namespaces = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let namespaces = String::from_utf8_lossy(&namespaces.stdout);
    assert!(
        !namespaces
            .lines()
            .any(|line| line.starts_with(&format!("{prefix}-"))),
        "namespaces left behind: {namespaces}"
    );
}

#[test]
fn harness_counts_requests_and_packets_and_serves_caches() {
    let lab = Lab::up("harn", true).unwrap_or_else(|err| panic!("{err:#}"));
    assert_eq!(
        offload_line(&lab, Host::Target, "generic-receive-offload"),
        "generic-receive-offload: on"
    );

    let nginx = lab.start_nginx(Host::Online).unwrap();
    let mut to_online = lab
        .capture(Host::Client, "dst host 198.51.100.20 and dst port 80")
        .unwrap();

    let short = lab
        .http_load(Host::Client, Host::Online.socket(80), 5, Connections::Short)
        .unwrap();
    short.assert_all_ok(5, "short connections");
    let kept = lab
        .http_load(
            Host::Client,
            Host::Online.socket(80),
            20,
            Connections::KeepAlive,
        )
        .unwrap();
    kept.assert_all_ok(20, "keep-alive");
    assert_eq!(
        caught_up(READY_TIMEOUT, 25, || nginx.access_count()).unwrap(),
        25
    );

    let summary = to_online.stop().unwrap();
    assert_eq!(summary.dropped_by_kernel, 0);
    assert_eq!(summary.captured, summary.received_by_filter);
    let packets = to_online.packets("").unwrap();
    assert_eq!(packets.len() as u64, summary.captured);
    let syns = packets.iter().filter(|packet| packet.syn).count();
    assert_eq!(
        syns, 6,
        "one SYN per short connection plus one keep-alive connection"
    );
    let requests = packets
        .iter()
        .filter(|packet| packet.payload_len > 0)
        .count();
    assert_eq!(requests, 25, "one request segment per GET");
    assert_eq!(
        to_online.count("tcp[tcpflags] & tcp-syn != 0").unwrap(),
        syns
    );

    let _memcached = lab.start_memcached(Host::Target).unwrap();
    let version = lab
        .line_exchange(Host::Client, Host::Target.socket(11211), b"version\r\n")
        .unwrap();
    assert!(
        version.starts_with("VERSION "),
        "memcached answered {version:?}"
    );
    let _redis = lab.start_redis(Host::Target).unwrap();
    let pong = lab
        .line_exchange(Host::Client, Host::Target.socket(6379), b"PING\r\n")
        .unwrap();
    assert_eq!(pong, "+PONG");
}
