//! `http_load`: a bounded HTTP/1.1 load generator for the lab's client host.
//!
//! Sends `GET /` to one address from `--connections` threads, open loop at `--rate`
//! requests/s or flat out, over short connections (one per request) or keep-alive ones, and
//! stops at `--duration` or after `--requests`, whichever comes first. Prints one JSON line:
//!
//! ```text
//! {"mode":"short","connections":50,"target_rate":2700,"sent":27000,"succeeded":27000,
//!  "failed":0,"elapsed_s":10.000,"achieved_rate":2700.0,"first_error":null}
//! ```
//!
//! `achieved_rate` is successful requests per second up to the last completion. Run it inside
//! the lab only (`scripts/lab.sh exec client ...`); `scripts/load.sh` does.
//!
//! Build: `cargo build --release --example http_load`.

mod http;
mod schedule;

use std::io::BufReader;
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};

use http::RequestError;
use schedule::Schedule;

/// Longest load this tool accepts.
const MAX_DURATION: Duration = Duration::from_secs(120);

/// Bounded HTTP/1.1 GET load, open loop or flat out.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Where to send the requests
    #[arg(value_name = "ADDR:PORT")]
    addr: SocketAddr,
    /// Requests per second, spread evenly (open loop); 0 or absent: flat out
    #[arg(long, value_name = "N")]
    rate: Option<u32>,
    /// How long to send for (at most 120s)
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Requests to send at most
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    requests: u64,
    /// One connection per request, or long-lived keep-alive connections
    #[arg(long, value_enum, default_value_t = Mode::Short)]
    mode: Mode,
    /// Client threads, each with at most one request (and connection) in flight
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
    connections: u16,
    /// Limit for each connect, write and read
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// How requests use connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// `Connection: close`, a new connection per request.
    Short,
    /// `Connection: keep-alive`, one connection per thread, reopened after a failure.
    Keepalive,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Short => "short",
            Mode::Keepalive => "keepalive",
        }
    }
}

/// Counts shared by the client threads.
#[derive(Debug, Default)]
struct Totals {
    sent: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    /// Nanoseconds from the start to the latest completion.
    last_done_ns: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Totals {
    fn record(&self, outcome: Result<(), RequestError>, done_at: Duration) {
        match outcome {
            Ok(()) => {
                self.succeeded.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| err.to_string());
                }
            }
        }
        let done_ns = u64::try_from(done_at.as_nanos()).unwrap_or(u64::MAX);
        self.last_done_ns.fetch_max(done_ns, Ordering::Relaxed);
    }
}

/// What every client thread shares.
struct Load {
    args: Args,
    schedule: Schedule,
    request: Vec<u8>,
    start: Instant,
    totals: Totals,
}

impl Load {
    /// One client thread: takes tickets until the schedule ends.
    fn run_client(&self) {
        let mut open: Option<BufReader<TcpStream>> = None;
        let mut line = Vec::new();
        while let Some(ticket) = self.schedule.next_ticket(self.start.elapsed()) {
            let due = self.start + ticket.due;
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            self.totals.sent.fetch_add(1, Ordering::Relaxed);
            let outcome = match self.args.mode {
                Mode::Short => self.short_request(&mut line),
                Mode::Keepalive => self.keepalive_request(&mut open, &mut line),
            };
            self.totals.record(outcome, self.start.elapsed());
        }
    }

    fn short_request(&self, line: &mut Vec<u8>) -> Result<(), RequestError> {
        let mut stream = self.connect()?;
        http::get(&mut stream, &self.request, line)?;
        http::wait_for_close(&mut stream)
    }

    fn keepalive_request(
        &self,
        open: &mut Option<BufReader<TcpStream>>,
        line: &mut Vec<u8>,
    ) -> Result<(), RequestError> {
        let mut stream = match open.take() {
            Some(stream) => stream,
            None => self.connect()?,
        };
        http::get(&mut stream, &self.request, line)?;
        *open = Some(stream);
        Ok(())
    }

    fn connect(&self) -> Result<BufReader<TcpStream>, RequestError> {
        let timeout = self.args.timeout;
        let io = |during| move |err| RequestError::Io { during, err };
        let stream =
            TcpStream::connect_timeout(&self.args.addr, timeout).map_err(io("connecting"))?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(io("setting timeouts"))?;
        Ok(BufReader::new(stream))
    }

    /// The one-line JSON summary.
    fn summary(&self) -> String {
        let totals = &self.totals;
        let succeeded = totals.succeeded.load(Ordering::Relaxed);
        let elapsed = Duration::from_nanos(totals.last_done_ns.load(Ordering::Relaxed));
        let achieved = if elapsed.is_zero() {
            0.0
        } else {
            succeeded as f64 / elapsed.as_secs_f64()
        };
        let first_error = totals
            .first_error
            .lock()
            .ok()
            .and_then(|first| first.as_deref().map(json_string))
            .unwrap_or_else(|| "null".to_owned());
        format!(
            concat!(
                r#"{{"mode":"{}","connections":{},"target_rate":{},"sent":{},"succeeded":{},"#,
                r#""failed":{},"elapsed_s":{:.3},"achieved_rate":{:.1},"first_error":{}}}"#
            ),
            self.args.mode.name(),
            self.args.connections,
            self.args.rate.unwrap_or(0),
            totals.sent.load(Ordering::Relaxed),
            succeeded,
            totals.failed.load(Ordering::Relaxed),
            elapsed.as_secs_f64(),
            achieved,
            first_error,
        )
    }
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn run(args: Args) -> Result<()> {
    anyhow::ensure!(
        args.duration <= MAX_DURATION,
        "--duration {} is above the limit of {}",
        humantime::format_duration(args.duration),
        humantime::format_duration(MAX_DURATION)
    );
    let load = Load {
        schedule: Schedule::new(args.rate, args.requests, args.duration),
        request: http::request_bytes(&args.addr.to_string(), args.mode == Mode::Keepalive),
        start: Instant::now(),
        totals: Totals::default(),
        args,
    };
    thread::scope(|scope| {
        for index in 0..load.args.connections {
            thread::Builder::new()
                .name(format!("client-{index}"))
                .spawn_scoped(scope, || load.run_client())
                .with_context(|| format!("cannot start client thread {index}"))?;
        }
        anyhow::Ok(())
    })?;
    println!("{}", load.summary());
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("http_load: {err:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a \"b\" \\ c\n"), r#""a \"b\" \\ c\u000a""#);
    }

    #[test]
    fn flags_parse_into_a_bounded_load() {
        let args = Args::try_parse_from([
            "http_load",
            "198.51.100.20:80",
            "--rate",
            "2700",
            "--duration",
            "10s",
            "--mode",
            "keepalive",
            "--connections",
            "4",
        ])
        .unwrap();
        assert_eq!(args.rate, Some(2700));
        assert_eq!(args.duration, Duration::from_secs(10));
        assert_eq!(args.mode, Mode::Keepalive);
        assert_eq!(args.connections, 4);
        assert_eq!(
            args.requests, 1_000_000,
            "a count bound even when not given"
        );
    }

    #[test]
    fn zero_connections_are_refused() {
        assert!(Args::try_parse_from(["http_load", "1.2.3.4:80", "--connections", "0"]).is_err());
    }

    #[test]
    fn a_summary_of_nothing_reports_zero_rate() {
        let args = Args::try_parse_from(["http_load", "198.51.100.20:80"]).unwrap();
        let load = Load {
            schedule: Schedule::new(None, 0, args.duration),
            request: Vec::new(),
            start: Instant::now(),
            totals: Totals::default(),
            args,
        };
        assert_eq!(
            load.summary(),
            r#"{"mode":"short","connections":50,"target_rate":0,"sent":0,"succeeded":0,"failed":0,"elapsed_s":0.000,"achieved_rate":0.0,"first_error":null}"#
        );
    }
}
