//! Comparison tests (`copy --compare`, `stats compare`) in the lab, assistant mode unless
//! said: the online server and the target answer the same requests differently, and the
//! report must say exactly how.
//!
//! - The target's nginx answers 404 for one path the online one serves: the outcome matrix
//!   holds exactly that path's requests as `200 → 404`, every other one `200 → 200`; in
//!   assistant and in target mode (NFQUEUE on the target).
//! - The target is a server that sleeps 20 ms before each answer: its median time to the
//!   first reply byte exceeds the online one's by about that.
//! - memcached online, a memcached without the online keys on the target: every read of a
//!   key only the online one holds is `VALUE → END`, every read of a key neither holds is
//!   `END → END`.
//! - Without `--compare`, copy opens its one inbound capture per shard and nothing else.
//!
//! Topology and addresses: `scripts/lab.sh`; nginx's paths: `lab.sh nginx`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{
    CLIENT_NET, HTTP_PORT, Host, HttpConnection, HttpRequest, Lab, MEMCACHED_PORT, Mode, Proc,
    bound_packet_sockets, caught_up, settled,
};
use serde_json::Value;

/// How long the target may take to answer every replayed request once the client is done.
const CATCH_UP: Duration = Duration::from_secs(30);
/// The delay of the slow target.
const DELAY: Duration = Duration::from_millis(20);
/// The path the target's nginx answers with 404.
const MISSING: &str = "/missing";

/// Starts copy on the online host replaying `port` to the target in assistant mode with one
/// shard, writing its comparison to `compare` when given.
fn start_copy(lab: &Lab, port: u16, compare: Option<&Path>, extra: &[&str]) -> Proc {
    start_copy_in(lab, Mode::Assistant, port, compare, extra)
}

/// [`start_copy`] in `mode` (in target mode copy keeps the real client addresses).
fn start_copy_in(lab: &Lab, mode: Mode, port: u16, compare: Option<&Path>, extra: &[&str]) -> Proc {
    let mut args = vec!["--workers", "1"];
    let compare = compare.map(|path| path.to_string_lossy().into_owned());
    if let Some(path) = &compare {
        args.extend(["--compare", path.as_str()]);
    }
    args.extend_from_slice(extra);
    let client_ips = (mode == Mode::Assistant).then_some(CLIENT_NET);
    lab.start_copy(Host::Online, port, mode, client_ips, &args)
        .unwrap_or_else(|err| panic!("{err:#}"))
}

/// Stops copy (its records are all written once it exited) and returns its log.
fn stop_copy(copy: &mut Proc) -> String {
    let totals = common::stop_copy(copy).unwrap_or_else(|err| panic!("{err:#}"));
    assert_eq!(totals.get("kernel_dropped"), Some(&0), "{totals:?}");
    copy.stderr()
}

/// `tcpcopy stats compare FILE --json`'s summary, and its exit code.
fn stats_compare(file: &Path, extra: &[&str]) -> (Value, Option<i32>) {
    let output = Command::new(common::tcpcopy_bin())
        .args(["stats", "compare"])
        .arg(file)
        .args(["--json"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|err| {
        panic!(
            "stats compare printed no JSON ({err}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert_eq!(value["type"], "summary", "{value}");
    (value["data"].clone(), output.status.code())
}

/// The outcome matrix of a summary.
fn outcomes(summary: &Value) -> BTreeMap<String, u64> {
    summary["outcomes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(outcome, n)| (outcome.clone(), n.as_u64().unwrap()))
        .collect()
}

/// Sends `requests` in turn on each of `connections` keep-alive connections from the
/// client to the online nginx, every response read whole (status 200).
fn http_rounds(lab: &Lab, connections: usize, requests: &[HttpRequest]) {
    let server = Host::Online.socket(HTTP_PORT);
    lab.in_host(Host::Client, || {
        let mut open: Vec<HttpConnection> = (0..connections)
            .map(|_| HttpConnection::open(server))
            .collect::<anyhow::Result<_>>()?;
        for request in requests {
            for connection in &mut open {
                connection.exchange(request)?;
            }
        }
        Ok(())
    })
    .unwrap_or_else(|err| panic!("client: {err:#}"));
}

#[test]
fn a_path_the_target_answers_404_shows_as_exactly_its_requests_200_to_404() {
    a_path_the_target_answers_404("cmpweb", Mode::Assistant);
}

#[test]
fn in_target_mode_too_a_path_answered_404_shows_as_200_to_404() {
    a_path_the_target_answers_404("cmpnfq", Mode::Target);
}

/// The target's nginx answers 404 for one path the online one serves, with intercept in
/// `mode`: exactly that path's requests show as `200 → 404`, with reply heads and timestamps
/// from intercept (version 7) in either mode.
fn a_path_the_target_answers_404(name: &str, mode: Mode) {
    let lab = Lab::up(name, false).unwrap_or_else(|err| panic!("{err:#}"));
    let _online = lab.start_nginx(Host::Online).unwrap();
    let target = lab
        .start_nginx_answering(Host::Target, &[(MISSING, 404)])
        .unwrap();
    let _intercept = lab.start_intercept(mode, HTTP_PORT).unwrap();
    let file = lab.dir().join("compare.jsonl");
    let mut copy = start_copy_in(&lab, mode, HTTP_PORT, Some(&file), &[]);

    // Three keep-alive connections, each: 6 × /, 2 × /missing, /a?x=1, /missing?y=2.
    let mut requests = vec![HttpRequest::ROOT; 6];
    requests.extend([
        HttpRequest::Get(MISSING),
        HttpRequest::Get("/a?x=1"),
        HttpRequest::Get(MISSING),
        HttpRequest::Get("/missing?y=2"),
    ]);
    http_rounds(&lab, 3, &requests);
    let sent = 3 * requests.len();
    let logged = caught_up(CATCH_UP, sent, || target.access_count()).unwrap();
    assert_eq!(logged, sent, "the target answered every request");
    let log = stop_copy(&mut copy);
    assert!(log.contains("comparing port 80 as http, guessed"), "{log}");

    let (summary, code) = stats_compare(&file, &[]);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(summary["matched"], sent, "{summary}");
    assert_eq!(
        (&summary["unmatched_online"], &summary["unmatched_target"]),
        (&0.into(), &0.into())
    );
    let missing = 3 * 3;
    assert_eq!(
        outcomes(&summary),
        BTreeMap::from([
            ("200->200".to_owned(), (sent - missing) as u64),
            ("200->404".to_owned(), missing as u64)
        ]),
        "{summary}"
    );
    let differing = &summary["top_differing"];
    assert_eq!(differing.as_array().map(Vec::len), Some(1), "{summary}");
    assert_eq!(differing[0]["key"], "GET /missing");
    assert_eq!(differing[0]["count"], missing);
    assert!(summary["target_heads"].as_bool().unwrap());

    // The gate: 9 of 30 differ.
    let (_, code) = stats_compare(&file, &["--max-mismatch", "31%"]);
    assert_eq!(code, Some(0));
    let (_, code) = stats_compare(&file, &["--max-mismatch", "29%"]);
    assert_eq!(code, Some(1));
    // The text report says the same.
    let report = Command::new(common::tcpcopy_bin())
        .args(["stats", "compare"])
        .arg(&file)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&report.stdout);
    let row = report.lines().find(|line| line.starts_with("200 → 404"));
    assert_eq!(
        row.map(|row| row.split_whitespace().last()),
        Some(Some("9")),
        "{report}"
    );
}

#[test]
fn a_target_slower_by_20_ms_shows_it_in_the_median_latency() {
    let lab = Lab::up("cmpslow", false).unwrap_or_else(|err| panic!("{err:#}"));
    let _online = lab.start_nginx(Host::Online).unwrap();
    let target = lab.start_slow_http(Host::Target, HTTP_PORT, DELAY).unwrap();
    let _intercept = lab.start_intercept(Mode::Assistant, HTTP_PORT).unwrap();
    let file = lab.dir().join("compare.jsonl");
    let mut copy = start_copy(&lab, HTTP_PORT, Some(&file), &[]);

    let requests = vec![HttpRequest::ROOT; 20];
    http_rounds(&lab, 2, &requests);
    let sent = 2 * requests.len();
    let served = caught_up(CATCH_UP, sent, || Ok(target.served())).unwrap();
    assert_eq!(served, sent, "the slow target answered every request");
    stop_copy(&mut copy);

    let (summary, _) = stats_compare(&file, &[]);
    assert_eq!(summary["matched"], sent, "{summary}");
    assert_eq!(
        outcomes(&summary),
        BTreeMap::from([("200->200".to_owned(), sent as u64)])
    );
    let p50 = |side: &str| summary["latency_us"][side]["p50"].as_u64().unwrap();
    let (online, target) = (p50("online"), p50("target"));
    let delay = DELAY.as_micros() as u64;
    eprintln!("e2e: p50 online {online} µs, target {target} µs");
    // At least the sleep; well under ten times it (a generous band for a busy machine).
    assert!(target >= online + delay * 95 / 100, "{summary}");
    assert!(target <= online + 10 * delay, "{summary}");
}

/// Reads one memcached reply (up to its `END` line) from `reader`: its first line.
fn read_get_reply(reader: &mut BufReader<TcpStream>) -> anyhow::Result<String> {
    let mut first = None;
    loop {
        let mut line = String::new();
        anyhow::ensure!(reader.read_line(&mut line)? > 0, "memcached closed");
        let line = line.trim_end().to_owned();
        first.get_or_insert_with(|| line.clone());
        if line == "END" {
            return Ok(first.unwrap_or_default());
        }
    }
}

#[test]
fn memcached_keys_the_target_lacks_show_as_value_to_end() {
    let lab = Lab::up("cmpmc", false).unwrap_or_else(|err| panic!("{err:#}"));
    let _online = lab.start_memcached(Host::Online).unwrap();
    let _target = lab.start_memcached(Host::Target).unwrap();
    let server = Host::Online.socket(MEMCACHED_PORT);
    const KEYS: usize = 12;
    const ABSENT: usize = 4;
    // The online memcached's own state, stored from its own host (over loopback: copy never
    // sees it, so the target never gets it).
    for key in 0..KEYS {
        let set = format!("set key{key} 0 0 5\r\nvalue\r\n");
        let answer = lab
            .line_exchange(Host::Online, server, set.as_bytes())
            .unwrap();
        assert_eq!(answer, "STORED");
    }
    let _intercept = lab
        .start_intercept(Mode::Assistant, MEMCACHED_PORT)
        .unwrap();
    let file = lab.dir().join("compare.jsonl");
    let mut copy = start_copy(&lab, MEMCACHED_PORT, Some(&file), &[]);

    let answers = lab
        .in_host(Host::Client, || {
            let stream = TcpStream::connect_timeout(&server.into(), Duration::from_secs(2))?;
            stream.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut writer = stream.try_clone()?;
            let mut reader = BufReader::new(stream);
            let mut answers = Vec::new();
            let keys = (0..KEYS)
                .map(|k| format!("key{k}"))
                .chain((0..ABSENT).map(|k| format!("absent{k}")));
            for key in keys {
                writer.write_all(format!("get {key}\r\n").as_bytes())?;
                answers.push(read_get_reply(&mut reader)?);
            }
            Ok(answers)
        })
        .unwrap_or_else(|err| panic!("client: {err:#}"));
    let hits = answers.iter().filter(|a| a.starts_with("VALUE")).count();
    assert_eq!((hits, answers.len()), (KEYS, KEYS + ABSENT), "{answers:?}");
    let target_gets = settled(
        CATCH_UP,
        || {
            let stats = lab.memcached_stats(Host::Target, MEMCACHED_PORT)?;
            Ok(stats
                .get("cmd_get")
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0))
        },
        |&gets| gets >= KEYS + ABSENT,
    )
    .unwrap();
    assert_eq!(target_gets, KEYS + ABSENT, "the target got every read once");
    let log = stop_copy(&mut copy);
    assert!(
        log.contains("comparing port 11211 as memcached, guessed"),
        "{log}"
    );

    let (summary, _) = stats_compare(&file, &[]);
    assert_eq!(
        outcomes(&summary),
        BTreeMap::from([
            ("VALUE->END".to_owned(), KEYS as u64),
            ("END->END".to_owned(), ABSENT as u64)
        ]),
        "{summary}"
    );
    assert_eq!(summary["protocols"]["memcached"], KEYS + ABSENT);
}

#[test]
fn without_compare_copy_captures_nothing_outbound() {
    let lab = Lab::up("cmpoff", false).unwrap_or_else(|err| panic!("{err:#}"));
    let _online = lab.start_nginx(Host::Online).unwrap();
    let target = lab.start_nginx(Host::Target).unwrap();
    let _intercept = lab.start_intercept(Mode::Assistant, HTTP_PORT).unwrap();

    let file = lab.dir().join("compare.jsonl");
    let mut copy = start_copy(&lab, HTTP_PORT, None, &[]);
    // One shard: its one capture, inbound only (copy's capture direction), and no other.
    assert_eq!(bound_packet_sockets(copy.pid()).unwrap(), 1);
    http_rounds(&lab, 1, &[HttpRequest::ROOT; 5]);
    let logged = caught_up(CATCH_UP, 5, || target.access_count()).unwrap();
    assert_eq!(logged, 5, "copy replays as ever");
    let log = stop_copy(&mut copy);
    assert!(!log.contains("--compare"), "{log}");
    assert!(!file.exists());

    // With --compare: one capture more, of both directions, and its records.
    let mut copy = start_copy(&lab, HTTP_PORT, Some(&file), &[]);
    assert_eq!(bound_packet_sockets(copy.pid()).unwrap(), 2);
    http_rounds(&lab, 1, &[HttpRequest::ROOT; 5]);
    let logged = caught_up(CATCH_UP, 10, || target.access_count()).unwrap();
    assert_eq!(logged, 10);
    let log = stop_copy(&mut copy);
    assert!(
        log.contains("--compare: capturing the online conversations on eth0"),
        "{log}"
    );
    let (summary, _) = stats_compare(&file, &[]);
    assert_eq!(summary["matched"], 5, "{summary}");
}
