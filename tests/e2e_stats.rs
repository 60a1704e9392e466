//! The loss and the counters of a real replication: a client sends requests to nginx on
//! the online host while copy and intercept replay them to nginx on the target (assistant
//! mode).
//!
//! - `stats logs`, on both nginx's combined-format logs of a run at a known rate: its totals
//!   must be the logs' line counts, `--max-loss 0` must pass, and with the target's log cut
//!   by 10 % it must report a loss of about 0.1 and exit 1.
//! - `--metrics`: copy's and intercept's `/metrics`, scraped during and after a run, must
//!   equal their totals lines and the requests in the target's log.
//! - `stats live`, following both endpoints through a run: its lines and its summary count
//!   every session copy replayed, none lost.
//!
//! Topology: `scripts/lab.sh`; nginx's logs: `lab.sh nginx`.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    CLIENT_NET, Connections, Host, Lab, Mode, caught_up, stable, stop_with_totals, wait_until,
};
use serde_json::Value;

/// Requests per second the client sends...
const RATE: usize = 200;
/// ... for this many seconds...
const SECONDS: usize = 4;
/// ... in bursts this far apart, each on its own keep-alive connection.
const TICK: Duration = Duration::from_millis(100);
/// How long the target may take to log every replayed request once the client is done.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// Where copy and intercept serve `/metrics`, each on its own host's loopback.
const METRICS_PORT: u16 = 9361;

#[test]
fn stats_logs_count_a_lab_run_and_gate_on_its_loss() {
    let lab = Lab::up("stlog", false).unwrap_or_else(|err| panic!("{err:#}"));
    let online = lab.start_nginx(Host::Online).unwrap();
    let target = lab.start_nginx(Host::Target).unwrap();
    let replication = lab
        .start_replication(Mode::Assistant)
        .unwrap_or_else(|err| panic!("{err:#}"));
    let sent = paced_load(&lab);
    let logged = caught_up(CATCH_UP_TIMEOUT, sent, || target.access_count()).unwrap();
    let totals = replication.stop().unwrap_or_else(|err| panic!("{err:#}"));
    assert_eq!(
        logged, sent,
        "the target logged every request; copy totals: {:?}",
        totals.copy
    );

    let online_log = online.combined_log_path();
    let target_log = target.combined_log_path();
    let (online_lines, target_lines) = (line_count(&online_log), line_count(&target_log));
    assert_eq!((online_lines, target_lines), (sent, sent));

    // The whole run, edges included: the totals are the line counts and nothing was lost.
    let run = stats_logs(
        &online_log,
        &target_log,
        &["--window", "1s", "--edges", "--json", "--max-loss", "0"],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let records = run.json_lines();
    let (windows, total) = records.split_at(records.len() - 1);
    let total = &total[0];
    assert_eq!(total["type"], "total", "{run:?}");
    assert_eq!(total["data"]["online"], online_lines as u64);
    assert_eq!(total["data"]["target"], target_lines as u64);
    assert_eq!(total["data"]["loss"], 0.0);
    assert_eq!(total["data"]["unparsed"], 0);
    // The known rate: one window a second for as long as the load ran, summing to the total.
    assert!(
        (SECONDS..=SECONDS + 2).contains(&windows.len()),
        "{SECONDS} s of load make {SECONDS} to {} one-second windows: {run:?}",
        SECONDS + 2
    );
    let online_per_window: Vec<u64> = windows
        .iter()
        .map(|w| w["data"]["online"].as_u64().unwrap())
        .collect();
    assert_eq!(online_per_window.iter().sum::<u64>(), online_lines as u64);
    // The first and last windows hold part of a second of load; those between, about RATE.
    let middle = &online_per_window[1..online_per_window.len() - 1];
    let mean = middle.iter().sum::<u64>() as f64 / middle.len() as f64;
    assert!(
        (0.75..=1.25).contains(&(mean / RATE as f64)),
        "{mean} requests a second, not about {RATE}: {online_per_window:?}"
    );

    // The target's log cut by 10 %: the loss is the missing tenth, above --max-loss.
    let kept = target_lines - target_lines / 10;
    let cut_log = lab.dir().join("target-cut.log");
    let text = fs::read_to_string(&target_log).unwrap();
    let cut: Vec<&str> = text.lines().take(kept).collect();
    fs::write(&cut_log, cut.join("\n") + "\n").unwrap();
    let cut_run = stats_logs(
        &online_log,
        &cut_log,
        &["--window", "1s", "--edges", "--max-loss", "0.05"],
    );
    assert_eq!(cut_run.code, Some(1), "{cut_run:?}");
    let loss = 1.0 - kept as f64 / online_lines as f64;
    assert!((loss - 0.1).abs() < 0.005);
    let total_line = cut_run.stdout.lines().last().unwrap_or_default().to_owned();
    assert_eq!(
        total_line,
        format!("total online={online_lines} target={kept} loss={loss:.4}"),
        "{cut_run:?}"
    );
    assert!(
        cut_run.stderr.contains("above --max-loss 0.0500"),
        "{cut_run:?}"
    );
}

/// Sends `RATE` requests a second for `SECONDS` seconds from the client to the online
/// nginx, in bursts every `TICK` (late bursts catch up, so the run keeps its length), and
/// returns how many were sent. Every one must succeed.
fn paced_load(lab: &Lab) -> usize {
    let ticks = SECONDS * (Duration::from_secs(1).as_millis() / TICK.as_millis()) as usize;
    let per_tick = RATE * SECONDS / ticks;
    let start = Instant::now();
    for tick in 0..ticks {
        let due = start + TICK * tick as u32;
        thread::sleep(due.saturating_duration_since(Instant::now()));
        let load = lab
            .http_load(
                Host::Client,
                Host::Online.socket(80),
                per_tick,
                Connections::KeepAlive,
            )
            .unwrap();
        load.assert_all_ok(per_tick, "client requests to the online server");
    }
    ticks * per_tick
}

fn line_count(path: &Path) -> usize {
    fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
        .lines()
        .count()
}

/// What one `tcpcopy stats logs` run printed and how it exited.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
            .collect()
    }
}

/// Runs `tcpcopy stats logs --online ONLINE --target TARGET EXTRA...` (in the root
/// namespace: it only reads files).
fn stats_logs(online: &Path, target: &Path, extra: &[&str]) -> Run {
    let output = Command::new(common::tcpcopy_bin())
        .args(["stats", "logs", "--online"])
        .arg(online)
        .arg("--target")
        .arg(target)
        .args(extra)
        .output()
        .expect("running tcpcopy stats logs");
    let run = Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    eprintln!("e2e: stats logs {extra:?}:\n{}{}", run.stdout, run.stderr);
    run
}

#[test]
fn stats_metrics_equal_the_totals_and_the_target_log() {
    const REQUESTS: usize = 300;
    let lab = Lab::up("stmet", false).unwrap_or_else(|err| panic!("{err:#}"));
    let _online = lab.start_nginx(Host::Online).unwrap();
    let target = lab.start_nginx(Host::Target).unwrap();
    let metrics = format!("127.0.0.1:{METRICS_PORT}");
    let extra = ["--metrics", metrics.as_str()];
    let mut intercept = lab
        .start_intercept_with(Mode::Assistant, 80, &extra)
        .unwrap_or_else(|err| panic!("{err:#}"));
    let mut copy = lab
        .start_copy(Host::Online, 80, Mode::Assistant, Some(CLIENT_NET), &extra)
        .unwrap_or_else(|err| panic!("{err:#}"));
    let online_addr = Host::Online.socket(80);

    // During the run: after a first half of the load, copy is connected and counting.
    let load = lab
        .http_load(Host::Client, online_addr, REQUESTS / 2, Connections::Short)
        .unwrap();
    load.assert_all_ok(REQUESTS / 2, "the first half");
    // Shards publish their counts every 100 ms: the scrape catches up with the target's log.
    let half = caught_up(CATCH_UP_TIMEOUT, REQUESTS / 2, || target.access_count()).unwrap();
    let scraped_sent = || {
        let sent = scrape(&lab, Host::Online)["tcpcopy_requests_sent_total{role=\"copy\"}"];
        Ok(usize::try_from(sent)?)
    };
    let during = caught_up(CATCH_UP_TIMEOUT, half, scraped_sent).unwrap();
    assert_eq!(during, half, "copy's scrape counts what the target logged");
    let during = scrape(&lab, Host::Online);
    assert_eq!(
        during.get("tcpcopy_intercepts_connected{role=\"copy\",shard=\"0\"}"),
        Some(&1),
        "{during:?}"
    );
    assert!(
        during.contains_key("tcpcopy_backlog_bytes{role=\"copy\",shard=\"0\"}"),
        "{during:?}"
    );
    let copies = scrape(&lab, Host::Assistant);
    assert_eq!(
        copies.get("tcpcopy_copies_connected{role=\"intercept\"}"),
        Some(&1),
        "{copies:?}"
    );

    // Open sessions are those being replayed: with one connection held open and the
    // first half's closed, one; once it closes too, none, while its session still counts in
    // the table (TIME-WAIT).
    let open = "tcpcopy_sessions_open{role=\"copy\",shard=\"0\"}";
    let tracked = "tcpcopy_sessions_tracked{role=\"copy\",shard=\"0\"}";
    let mut held = lab.hold_http(Host::Client, online_addr).unwrap();
    held.get(1).assert_all_ok(1, "the held connection");
    wait_until(CATCH_UP_TIMEOUT, "only the held session to be open", || {
        Ok(scrape(&lab, Host::Online)[open] == 1)
    })
    .unwrap();
    drop(held);
    let mut closed = BTreeMap::new();
    wait_until(CATCH_UP_TIMEOUT, "the held session to close", || {
        closed = scrape(&lab, Host::Online);
        Ok(closed[open] == 0)
    })
    .unwrap();
    assert!(
        closed[tracked] >= 1,
        "the closed session is still tracked in TIME-WAIT: {closed:?}"
    );

    let load = lab
        .http_load(Host::Client, online_addr, REQUESTS / 2, Connections::Short)
        .unwrap();
    load.assert_all_ok(REQUESTS / 2, "the second half");
    let requests = REQUESTS + 1;
    let logged = caught_up(CATCH_UP_TIMEOUT, requests, || target.access_count()).unwrap();
    assert_eq!(logged, requests, "the target logged every request");

    // After the run: the sessions leave the table after TIME-WAIT; once the counts stay put,
    // the last scrapes are the totals lines.
    wait_until(
        CATCH_UP_TIMEOUT,
        "copy's sessions to leave its table",
        || Ok(scrape(&lab, Host::Online)[tracked] == 0),
    )
    .unwrap();
    let quiet = Duration::from_secs(2);
    let copy_last = stable(CATCH_UP_TIMEOUT, quiet, || Ok(scrape(&lab, Host::Online))).unwrap();
    let intercept_last = stable(CATCH_UP_TIMEOUT, quiet, || {
        Ok(scrape(&lab, Host::Assistant))
    })
    .unwrap();
    let copy_totals = stop_with_totals(&mut copy, "copy").unwrap();
    let intercept_totals = stop_with_totals(&mut intercept, "intercept").unwrap();
    assert_same_counts(&copy_last, &copy_totals, "copy");
    assert_eq!(copy_last[open], 0, "no session open after the run");
    assert_same_counts(&intercept_last, &intercept_totals, "intercept");
    assert_eq!(
        copy_last["tcpcopy_requests_sent_total{role=\"copy\"}"],
        logged as u64
    );
    assert_eq!(
        copy_last["tcpcopy_request_delay_seconds_count{role=\"copy\"}"], logged as u64,
        "every request's wait after capture is in the histogram"
    );
    assert_eq!(
        copy_last["tcpcopy_request_delay_seconds_bucket{role=\"copy\",le=\"+Inf\"}"],
        logged as u64
    );
}

/// Every counter of the `ROLE totals` line has the same value in the scrape.
fn assert_same_counts(scrape: &BTreeMap<String, u64>, totals: &BTreeMap<String, u64>, role: &str) {
    assert!(!totals.is_empty());
    for (name, total) in totals {
        let metric = format!("tcpcopy_{name}_total{{role=\"{role}\"}}");
        assert_eq!(
            scrape.get(&metric),
            Some(total),
            "{metric} against the {role} totals line:\nscrape {scrape:?}\ntotals {totals:?}"
        );
    }
}

/// The samples of `/metrics` on `host`'s loopback, by series (name and labels).
fn scrape(lab: &Lab, host: Host) -> BTreeMap<String, u64> {
    let addr = SocketAddrV4::new([127, 0, 0, 1].into(), METRICS_PORT);
    let response = lab
        .in_host(host, || {
            let mut stream = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(2))?;
            stream.set_read_timeout(Some(Duration::from_secs(2)))?;
            write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n")?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            Ok(response)
        })
        .unwrap_or_else(|err| panic!("scraping {host}: {err:#}"));
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {response:?}"));
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        // Every value is a count but a histogram's sum (seconds).
        .filter(|line| !line.starts_with("tcpcopy_request_delay_seconds_sum"))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
            let value = value.parse().unwrap_or_else(|err| panic!("{line}: {err}"));
            (series.to_owned(), value)
        })
        .collect()
}

#[test]
fn stats_live_follows_a_run_and_sums_it_up() {
    const REQUESTS: usize = 200;
    let lab = Lab::up("stliv", false).unwrap_or_else(|err| panic!("{err:#}"));
    let _online = lab.start_nginx(Host::Online).unwrap();
    let target = lab.start_nginx(Host::Target).unwrap();
    // On the hosts' own addresses, so that `stats live` on the client reaches both.
    let copy_metrics = SocketAddrV4::new(Host::Online.addr(), METRICS_PORT).to_string();
    let intercept_metrics = SocketAddrV4::new(Host::Assistant.addr(), METRICS_PORT).to_string();
    let mut intercept = lab
        .start_intercept_with(Mode::Assistant, 80, &["--metrics", &intercept_metrics])
        .unwrap_or_else(|err| panic!("{err:#}"));
    let mut copy = lab
        .start_copy(
            Host::Online,
            80,
            Mode::Assistant,
            Some(CLIENT_NET),
            &["--metrics", &copy_metrics],
        )
        .unwrap_or_else(|err| panic!("{err:#}"));
    let copy_url = format!("http://{copy_metrics}/metrics");
    let live_args = [
        common::tcpcopy_bin(),
        "stats",
        "live",
        &copy_url,
        &intercept_metrics,
        "--interval",
        "500ms",
        "--json",
    ];
    let mut live = lab.spawn(Host::Client, &live_args).unwrap();
    let records = |live: &common::Proc| -> Vec<Value> {
        live.stdout()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
            .collect()
    };
    // Its first line means it has read the counters it measures from: the load comes after.
    wait_until(CATCH_UP_TIMEOUT, "stats live's first interval", || {
        live.ensure_running()?;
        Ok(!records(&live).is_empty())
    })
    .unwrap_or_else(|err| panic!("{err:#}\n{}", live.stderr()));

    let load = lab
        .http_load(
            Host::Client,
            Host::Online.socket(80),
            REQUESTS,
            Connections::Short,
        )
        .unwrap();
    load.assert_all_ok(REQUESTS, "client requests to the online server");
    caught_up(CATCH_UP_TIMEOUT, REQUESTS, || target.access_count()).unwrap();
    wait_until(
        CATCH_UP_TIMEOUT,
        "stats live to count every session",
        || {
            live.ensure_running()?;
            Ok(records(&live)
                .last()
                .is_some_and(|last| last["data"]["sessions"] == REQUESTS as u64))
        },
    )
    .unwrap_or_else(|err| panic!("{err:#}\n{}{}", live.stdout(), live.stderr()));

    let status = live.stop(libc::SIGINT, Duration::from_secs(5)).unwrap();
    assert_eq!(status.code(), Some(0), "{}", live.stderr());
    let records = records(&live);
    let (summary, intervals) = records.split_last().expect("records");
    assert!(
        intervals.iter().all(|r| r["type"] == "interval"),
        "{records:?}"
    );
    assert!(
        intervals
            .iter()
            .any(|r| r["data"]["requests_per_second"].as_f64() > Some(0.0)),
        "{records:?}"
    );
    assert_eq!(summary["type"], "summary", "{records:?}");
    let copy_totals = stop_with_totals(&mut copy, "copy").unwrap();
    stop_with_totals(&mut intercept, "intercept").unwrap();
    assert_eq!(summary["data"]["sessions"], copy_totals["sessions_opened"]);
    assert_eq!(summary["data"]["sessions_lost"], 0);
    assert_eq!(summary["data"]["loss"], 0.0);
    assert_eq!(summary["data"]["requests"], REQUESTS as u64, "{summary}");
    assert_eq!(summary["data"]["requests_unanswered"], 0, "{summary}");
    assert_eq!(summary["data"]["request_loss"], 0.0, "{summary}");
    let seconds = summary["data"]["seconds"].as_f64().unwrap();
    let requests = summary["data"]["requests_per_second"].as_f64().unwrap() * seconds;
    assert!(
        (requests - copy_totals["requests_sent"] as f64).abs() < 0.5,
        "the summary's rate × its length is every request: {summary}"
    );
}
