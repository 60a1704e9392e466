//! `tcpcopy stats live URL...`: scrapes copy's and intercept's `/metrics` every
//! `--interval` and prints a line per interval (sessions, requests and replies per second,
//! the sessions lost so far), then, on Ctrl-C, a summary of the whole run.
//!
//! - `exposition`: the Prometheus text format, and readings summed over endpoints (pure).
//! - `rates`: what an interval's numbers are (pure).
//! - `report`: the text and JSON Lines output (pure).
//! - `scrape`: the endpoint syntax and the HTTP GET (I/O).
//!
//! This file is the loop: the clock, the signals, the prints.

pub(super) mod exposition;
mod rates;
mod report;
mod scrape;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};

use self::exposition::Reading;
use self::rates::interval;
use self::scrape::Endpoint;
use super::Verdict;
use crate::cli::LiveArgs;

/// How often the wait between scrapes looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

/// `tcpcopy stats live`: runs until SIGINT or SIGTERM.
pub fn run(args: &LiveArgs) -> Result<Verdict> {
    let endpoints: Vec<Endpoint> = args
        .urls
        .iter()
        .map(|url| url.parse().map_err(|err: String| anyhow!(err)))
        .collect::<Result<_>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install the signal handler")?;
    }
    let first = read(&endpoints)?;
    let started = Instant::now();
    let (mut last, mut last_at) = (first.clone(), started);
    if !args.json {
        print(&report::header())?;
    }
    while wait(args.interval, &stop) {
        let reading = match read(&endpoints) {
            Ok(reading) => reading,
            Err(err) => {
                eprintln!("tcpcopy: {err:#}; trying again in {:?}", args.interval);
                continue;
            }
        };
        let now = Instant::now();
        let numbers = interval(&last, &reading, (now - last_at).as_secs_f64());
        let time = jiff::Timestamp::now()
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        print(&if args.json {
            report::interval_json(&time, &numbers)
        } else {
            report::line(&time, &numbers)
        })?;
        (last, last_at) = (reading, now);
    }
    let run = interval(&first, &last, (last_at - started).as_secs_f64());
    print(&if args.json {
        report::summary_json(&run)
    } else {
        report::line("summary", &run)
    })?;
    Ok(Verdict::Passed)
}

/// Every endpoint's counters, summed; fails if any endpoint cannot be read.
fn read(endpoints: &[Endpoint]) -> Result<Reading> {
    let mut reading = Reading::default();
    for endpoint in endpoints {
        let body = endpoint.fetch()?;
        let samples = exposition::parse(&body)
            .with_context(|| format!("reading the metrics of {endpoint}"))?;
        reading.add(&samples);
    }
    Ok(reading)
}

/// Sleeps `interval`; false if `stop` was set meanwhile.
fn wait(interval: Duration, stop: &AtomicBool) -> bool {
    let deadline = Instant::now() + interval;
    while !stop.load(Ordering::Relaxed) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        thread::sleep(left.min(STOP_POLL));
    }
    false
}

fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing to stdout")
}
