//! The progress bar of an offline replay, on a terminal only, and the log writer that keeps
//! log lines from tearing it.
//!
//! The bar shows the bytes of the files read (over every `--loop` round), the sessions
//! opened, the requests sent per second and the time left. It appears only when stderr is a
//! terminal and info messages are logged (not with `-q`); one thread updates it a few times
//! a second from the shared counters, never the shard. While it is up, every log line is
//! written through [`LogWriter`], which lifts the bar, writes the line and draws the bar
//! again below it.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::stats::{Counter, Counters};

/// How often the bar is updated.
const UPDATE_INTERVAL: Duration = Duration::from_millis(200);
/// The span the requests-per-second figure is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(1);
const TEMPLATE: &str =
    "{bar:30} {bytes}/{total_bytes} | {msg} | {elapsed_precise} elapsed, ETA {eta}";

/// The bar on the terminal, while there is one: where [`LogWriter`] lifts it.
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Writes log lines to stderr above the progress bar, if one is shown.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let shown = SHOWN.lock().ok().and_then(|bar| bar.clone());
        match shown {
            Some(bar) => bar.suspend(|| io::stderr().write_all(buf))?,
            None => io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// A progress bar on stderr, updated until dropped.
pub struct Progress {
    bar: ProgressBar,
    stop: Arc<AtomicBool>,
    updater: Option<JoinHandle<()>>,
}

impl Progress {
    /// Shows the progress of a replay of `total_bytes` of files, of which `bytes_read` have
    /// been read, when stderr is a terminal and info messages are logged; `None` otherwise.
    pub fn start(
        total_bytes: u64,
        bytes_read: Arc<AtomicU64>,
        counters: Arc<Counters>,
    ) -> Option<Progress> {
        if !io::stderr().is_terminal() || log::max_level() < log::LevelFilter::Info {
            return None;
        }
        let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(TEMPLATE) {
            bar.set_style(style);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let updater = {
            let (bar, stop) = (bar.clone(), Arc::clone(&stop));
            thread::Builder::new()
                .name("progress".into())
                .spawn(move || update(&bar, &stop, &bytes_read, &counters))
                .ok()?
        };
        if let Ok(mut shown) = SHOWN.lock() {
            *shown = Some(bar.clone());
        }
        Some(Progress {
            bar,
            stop,
            updater: Some(updater),
        })
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(updater) = self.updater.take() {
            let _ = updater.join();
        }
        self.bar.finish();
        if let Ok(mut shown) = SHOWN.lock() {
            *shown = None;
        }
    }
}

/// Keeps `bar` up to date until `stop`.
fn update(bar: &ProgressBar, stop: &AtomicBool, bytes: &AtomicU64, counters: &Counters) {
    let mut rate = RequestRate::new(Instant::now(), counters.get(Counter::RequestsSent));
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let requests = counters.get(Counter::RequestsSent);
        bar.set_position(bytes.load(Ordering::Relaxed));
        bar.set_message(format!(
            "{} sessions, {:.0} requests/s",
            counters.get(Counter::SessionsOpened),
            rate.update(now, requests)
        ));
        thread::sleep(UPDATE_INTERVAL);
    }
    bar.set_position(bytes.load(Ordering::Relaxed));
}

/// Requests per second over the last [`RATE_WINDOW`] or so.
struct RequestRate {
    since: Instant,
    at_since: u64,
    rate: f64,
}

impl RequestRate {
    fn new(now: Instant, requests: u64) -> RequestRate {
        RequestRate {
            since: now,
            at_since: requests,
            rate: 0.0,
        }
    }

    /// The rate, given that `requests` had been sent by `now`.
    fn update(&mut self, now: Instant, requests: u64) -> f64 {
        let span = now - self.since;
        if span >= RATE_WINDOW {
            self.rate = requests.saturating_sub(self.at_since) as f64 / span.as_secs_f64();
            self.since = now;
            self.at_since = requests;
        }
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_rate_is_measured_over_a_window() {
        let t0 = Instant::now();
        let mut rate = RequestRate::new(t0, 100);
        assert_eq!(rate.update(t0 + Duration::from_millis(500), 150), 0.0);
        assert_eq!(rate.update(t0 + Duration::from_secs(2), 400), 150.0);
        assert_eq!(rate.update(t0 + Duration::from_millis(2500), 900), 150.0);
        assert_eq!(rate.update(t0 + Duration::from_secs(4), 700), 150.0);
    }

    #[test]
    fn log_lines_pass_through_without_a_bar() {
        assert_eq!(LogWriter.write(b"").unwrap(), 0);
    }
}
