//! A thread that logs chosen counters every interval, and once more at the end.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::{Counter, Counters};

/// Logs `shown` counters every `interval` until dropped; the drop logs the final totals.
pub struct Reporter {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    shown: &'static [Counter],
    role: &'static str,
}

impl Reporter {
    pub fn start(
        role: &'static str,
        counters: Arc<Counters>,
        shown: &'static [Counter],
        interval: Duration,
    ) -> Reporter {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = (!interval.is_zero()).then(|| {
            let counters = Arc::clone(&counters);
            thread::Builder::new()
                .name("stats".into())
                .spawn(move || {
                    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                        log::info!("{role}: {}", counters.snapshot().format(shown));
                    }
                })
                .ok()
        });
        Reporter {
            stop: Some(stop),
            thread: thread.flatten(),
            counters,
            shown,
            role,
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        log::info!(
            "{} totals: {}",
            self.role,
            self.counters.snapshot().format(self.shown)
        );
    }
}
