//! HTTP replication, end to end: real clients talk to nginx on the online host while `tcpcopy
//! copy` and `tcpcopy intercept` replay every connection to nginx on the target, in assistant
//! mode and in target mode (see `common::Mode`). Each test counts requests in both nginx
//! access logs: the target must log exactly the requests the online server logged (same
//! client port, method, path, status, request and response sizes), all of which the client
//! saw succeed. Copy's and intercept's own exit totals must agree with the load.
//!
//! Topology and addresses: `scripts/lab.sh`; nginx's paths and log format: `lab.sh nginx`.

mod common;

use std::net::SocketAddrV4;
use std::thread;
use std::time::Duration;

use common::{
    AccessEntry, BIG_FILE, BIG_FILE_BYTES, Capture, Host, HttpRequest, Lab, LoadReport, Mode,
    Nginx, Replication, Totals, UPLOAD, keep_alive_rounds, last_counters, open_connections,
    short_connections, wait_until,
};

/// How the client's load is named when a request fails.
const HTTP_LOAD: &str = "client requests to the online server";
/// Requests of the short-connection tests, one connection each.
const SHORT_REQUESTS: usize = 2_000;
/// Keep-alive connections of the keep-alive tests, all open together...
const KEEP_ALIVE_CONNECTIONS: usize = 20;
/// ... and the requests each one carries.
const REQUESTS_PER_CONNECTION: usize = 100;
/// Body of the large POSTs (the GETs fetch [`BIG_FILE`], [`BIG_FILE_BYTES`] long).
const LARGE_BODY_BYTES: usize = 1 << 20;
/// How long the target may take to log every replayed request once the client is done.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to keep watching once the target has caught up, so that any extra (duplicated)
/// request would show in its log before the counts are compared.
const SETTLE: Duration = Duration::from_secs(1);
/// Everything the target sends to the client host. In target mode the copies carry the
/// client's real address, so anything matching this would be a reply leaking to the client.
const FROM_TARGET: &str = "ip and src host 198.51.100.30";

#[test]
fn assistant_mode_short_connections() {
    let mut test = Deployment::start("hasho", false, Mode::Assistant);
    let load = short_load(&test);
    load.assert_all_ok(SHORT_REQUESTS, HTTP_LOAD);
    let totals = test.finish(0, SHORT_REQUESTS);
    assert_sessions(&totals, SHORT_REQUESTS);
}

#[test]
fn assistant_mode_keep_alive_connections() {
    let mut test = Deployment::start("haska", false, Mode::Assistant);
    let load = keep_alive_load(&test);
    load.assert_all_ok(KEEP_ALIVE_CONNECTIONS * REQUESTS_PER_CONNECTION, HTTP_LOAD);
    let totals = test.finish(0, KEEP_ALIVE_CONNECTIONS * REQUESTS_PER_CONNECTION);
    assert_sessions(&totals, KEEP_ALIVE_CONNECTIONS);
}

#[test]
fn target_mode_short_connections() {
    let mut test = Deployment::start("htsho", false, Mode::Target);
    let mut at_client = test.lab.capture(Host::Client, FROM_TARGET).unwrap();
    let load = short_load(&test);
    load.assert_all_ok(SHORT_REQUESTS, HTTP_LOAD);
    let totals = test.finish(0, SHORT_REQUESTS);
    assert_sessions(&totals, SHORT_REQUESTS);
    assert_nothing_from_target(&mut at_client);
}

#[test]
fn target_mode_keep_alive_connections() {
    let mut test = Deployment::start("htska", false, Mode::Target);
    let mut at_client = test.lab.capture(Host::Client, FROM_TARGET).unwrap();
    let load = keep_alive_load(&test);
    load.assert_all_ok(KEEP_ALIVE_CONNECTIONS * REQUESTS_PER_CONNECTION, HTTP_LOAD);
    let totals = test.finish(0, KEEP_ALIVE_CONNECTIONS * REQUESTS_PER_CONNECTION);
    assert_sessions(&totals, KEEP_ALIVE_CONNECTIONS);
    assert_nothing_from_target(&mut at_client);
}

#[test]
fn assistant_mode_connections_open_before_copy_starts() {
    connections_open_before_copy_starts("hmida", Mode::Assistant);
}

#[test]
fn target_mode_connections_open_before_copy_starts() {
    connections_open_before_copy_starts("hmidt", Mode::Target);
}

/// Connections opened, and used, before copy starts: copy picks them up mid-stream and
/// replays every request sent after it started, and none from before.
fn connections_open_before_copy_starts(name: &str, mode: Mode) {
    const EARLY_REQUESTS_PER_CONNECTION: usize = 2;
    let lab = Lab::up(name, false).unwrap_or_else(|err| panic!("{err:#}"));
    let (online, target) = start_servers(&lab);
    let mut at_client = lab.capture(Host::Client, FROM_TARGET).unwrap();
    let mut connections = lab
        .in_host(Host::Client, || {
            let mut connections =
                open_connections(Host::Online.socket(80), KEEP_ALIVE_CONNECTIONS)?;
            let early = keep_alive_rounds(
                &mut connections,
                EARLY_REQUESTS_PER_CONNECTION,
                &[HttpRequest::ROOT],
            );
            early.assert_all_ok(
                KEEP_ALIVE_CONNECTIONS * EARLY_REQUESTS_PER_CONNECTION,
                HTTP_LOAD,
            );
            Ok(connections)
        })
        .unwrap();
    // nginx logs a request just after answering it.
    let logged_before_copy = KEEP_ALIVE_CONNECTIONS * EARLY_REQUESTS_PER_CONNECTION;
    wait_until(
        CATCH_UP_TIMEOUT,
        "the online server to log the early requests",
        || Ok(online.access_entries()?.len() >= logged_before_copy),
    )
    .unwrap_or_else(|err| panic!("{err:#}"));

    let mut test = Deployment::replicate(lab, online, target, mode);
    // The sockets were opened in the client's namespace and stay there.
    let load = keep_alive_rounds(
        &mut connections,
        REQUESTS_PER_CONNECTION,
        &[HttpRequest::ROOT],
    );
    load.assert_all_ok(KEEP_ALIVE_CONNECTIONS * REQUESTS_PER_CONNECTION, HTTP_LOAD);
    drop(connections);
    // The target logs the same client ports as the online server (finish compares them), so
    // these are the requests of the connections opened before copy started.
    let totals = test.finish(
        logged_before_copy,
        KEEP_ALIVE_CONNECTIONS * REQUESTS_PER_CONNECTION,
    );
    assert_sessions(&totals, KEEP_ALIVE_CONNECTIONS);
    assert_eq!(
        totals.copy("sessions_midstream"),
        KEEP_ALIVE_CONNECTIONS as u64,
        "every connection was older than copy; copy totals: {:?}",
        totals.copy
    );
    assert_nothing_from_target(&mut at_client);
}

#[test]
fn assistant_mode_large_bodies_with_offloads_off() {
    large_bodies("hbgof", false);
}

#[test]
fn assistant_mode_large_bodies_with_offloads_on() {
    large_bodies("hbgon", true);
}

/// 1 MB POSTs and 1.5 MB GETs, on short and on keep-alive connections: the target logs the
/// same request lengths (every body byte replayed) and sends the same response sizes.
fn large_bodies(name: &str, offloads: bool) {
    const SHORT_EACH: usize = 10;
    const CONNECTIONS: usize = 4;
    const ROUNDS: usize = 5;
    let post = HttpRequest::Post {
        path: UPLOAD,
        body_bytes: LARGE_BODY_BYTES,
    };
    let get = HttpRequest::Get(BIG_FILE);
    let mut test = Deployment::start(name, offloads, Mode::Assistant);
    let (short, keep_alive) = test.on_client(|| {
        let short = short_connections(test.online_addr(), SHORT_EACH, &[post, get]);
        let mut connections = open_connections(test.online_addr(), CONNECTIONS)?;
        let keep_alive = keep_alive_rounds(&mut connections, ROUNDS, &[post, get]);
        Ok((short, keep_alive))
    });
    let requests = 2 * SHORT_EACH + 2 * CONNECTIONS * ROUNDS;
    short.assert_all_ok(2 * SHORT_EACH, HTTP_LOAD);
    keep_alive.assert_all_ok(2 * CONNECTIONS * ROUNDS, HTTP_LOAD);
    let totals = test.finish(0, requests);
    assert_sessions(&totals, 2 * SHORT_EACH + CONNECTIONS);

    let target = test.target.access_entries().unwrap();
    for entry in &target {
        match entry.method.as_str() {
            "POST" => assert!(
                entry.request_length > LARGE_BODY_BYTES as u64,
                "the target read every body byte: {entry:?}"
            ),
            _ => assert!(
                entry.bytes_sent > BIG_FILE_BYTES,
                "the target sent the whole file: {entry:?}"
            ),
        }
    }
}

/// A lab with nginx on the online host and on the target, and copy + intercept replicating
/// the online port 80 to the target.
struct Deployment {
    online: Nginx,
    target: Nginx,
    replication: Option<Replication>,
    lab: Lab,
}

impl Deployment {
    fn start(name: &str, offloads: bool, mode: Mode) -> Deployment {
        let lab = Lab::up(name, offloads).unwrap_or_else(|err| panic!("{err:#}"));
        let (online, target) = start_servers(&lab);
        Deployment::replicate(lab, online, target, mode)
    }

    fn replicate(lab: Lab, online: Nginx, target: Nginx, mode: Mode) -> Deployment {
        let replication = lab
            .start_replication(mode)
            .unwrap_or_else(|err| panic!("{err:#}"));
        Deployment {
            online,
            target,
            replication: Some(replication),
            lab,
        }
    }

    fn online_addr(&self) -> SocketAddrV4 {
        Host::Online.socket(80)
    }

    /// Runs `load` on a thread inside the client host.
    fn on_client<T: Send>(&self, load: impl FnOnce() -> anyhow::Result<T> + Send) -> T {
        self.lab
            .in_host(Host::Client, load)
            .unwrap_or_else(|err| panic!("{err:#}"))
    }

    /// Waits until the target has logged `expected` requests, stops copy and intercept, and
    /// asserts that the online server logged `expected` requests after its first `skipped`
    /// entries and that the target logged the very same ones.
    fn finish(&mut self, skipped: usize, expected: usize) -> Totals {
        let replication = self.replication.take().expect("finish is called once");
        let caught_up = wait_until(CATCH_UP_TIMEOUT, "the target to log every request", || {
            Ok(self.target.access_entries()?.len() >= expected)
        });
        thread::sleep(SETTLE);
        // Every client has closed its connections; give copy's last closes (held while the
        // target finishes a response) time to reach the target before stopping it.
        let all_closed = wait_until(CATCH_UP_TIMEOUT, "copy to close every session", || {
            let counts = last_counters(&replication.copy().stderr(), "copy");
            Ok(counts.is_some_and(|c| c.get("sessions_closed") == c.get("sessions_opened")))
        });
        let copy_log = replication.copy().stderr();
        let totals = replication.stop().unwrap_or_else(|err| panic!("{err:#}"));
        let online = self.online.access_entries().unwrap();
        let target = self.target.access_entries().unwrap();
        let online = online.get(skipped..).unwrap_or_default();
        eprintln!(
            "e2e: online logged {}, target logged {}\ncopy totals: {:?}\nintercept totals: {:?}",
            online.len(),
            target.len(),
            totals.copy,
            totals.intercept
        );
        assert_every_request_replayed(online, &target, expected, &totals);
        caught_up.unwrap_or_else(|err| panic!("{err:#}\ncopy log:\n{copy_log}"));
        all_closed.unwrap_or_else(|err| panic!("{err:#}\ncopy log:\n{copy_log}"));
        assert_eq!(
            totals.copy("requests_sent"),
            expected as u64,
            "copy's own count of the requests it replayed; copy totals: {:?}",
            totals.copy
        );
        totals
    }
}

fn start_servers(lab: &Lab) -> (Nginx, Nginx) {
    let online = lab.start_nginx(Host::Online).unwrap();
    let target = lab.start_nginx(Host::Target).unwrap();
    (online, target)
}

/// [`SHORT_REQUESTS`] `GET /`, each on its own connection.
fn short_load(test: &Deployment) -> LoadReport {
    test.on_client(|| {
        Ok(short_connections(
            test.online_addr(),
            SHORT_REQUESTS,
            &[HttpRequest::ROOT],
        ))
    })
}

/// [`KEEP_ALIVE_CONNECTIONS`] connections from the client, all open together, each carrying
/// [`REQUESTS_PER_CONNECTION`] `GET /`.
fn keep_alive_load(test: &Deployment) -> LoadReport {
    test.on_client(|| {
        let mut connections = open_connections(test.online_addr(), KEEP_ALIVE_CONNECTIONS)?;
        Ok(keep_alive_rounds(
            &mut connections,
            REQUESTS_PER_CONNECTION,
            &[HttpRequest::ROOT],
        ))
    })
}

/// The online server logged `expected` requests, all answered 200, and the target logged the
/// same ones: same count, and the same (port, method, path, status, request length, bytes
/// sent) for each, as a multiset.
fn assert_every_request_replayed(
    online: &[AccessEntry],
    target: &[AccessEntry],
    expected: usize,
    totals: &Totals,
) {
    assert_eq!(
        online.len(),
        expected,
        "the online server logs every client request"
    );
    assert!(
        online.iter().all(|entry| entry.status == 200),
        "the online server answers every request with 200"
    );
    // The same multisets: the target logged `expected` requests too.
    common::assert_same_requests(
        online,
        target,
        &format!(
            "\ncopy totals: {:?}\nintercept totals: {:?}",
            totals.copy, totals.intercept
        ),
    );
}

/// Copy opened exactly one session per client connection and closed each normally (every
/// client closed its connection before copy stopped), every handshake with the target
/// succeeded, nothing was lost on the way, and intercept routed every reply of the target to
/// copy.
fn assert_sessions(totals: &Totals, connections: usize) {
    let copy = |name| totals.copy(name);
    for per_connection in ["sessions_opened", "sessions_closed"] {
        assert_eq!(
            copy(per_connection),
            connections as u64,
            "{per_connection}: one per client connection; copy totals: {:?}",
            totals.copy
        );
    }
    for lost in [
        "sessions_reset",
        "handshakes_failed",
        "handshakes_refused",
        "kernel_dropped",
        "replies_unmatched",
        "send_failed",
        "sessions_over_limit",
        "sessions_shed",
        "sessions_timed_out",
        "sessions_given_up",
        "buffer_overflows",
        "bytes_not_replayed",
    ] {
        assert_eq!(copy(lost), 0, "{lost}; copy totals: {:?}", totals.copy);
    }
    let intercept = |name| totals.intercept(name);
    assert!(
        intercept("replies_routed") > 0
            && intercept("replies_unrouted") == 0
            && intercept("replies_dropped_slow_peer") == 0,
        "intercept routes every reply to copy; intercept totals: {:?}",
        totals.intercept
    );
    assert_eq!(
        copy("replies_received"),
        intercept("replies_routed"),
        "copy receives every reply intercept routed"
    );
}

/// In target mode the copies carry the real client's address, yet the client host receives
/// nothing at all from the target.
fn assert_nothing_from_target(at_client: &mut Capture) {
    let summary = at_client.stop().unwrap();
    assert_eq!(
        (summary.captured, summary.received_by_filter),
        (0, 0),
        "packets from the target reached the real client: {:?}",
        at_client.packets("").unwrap()
    );
}
