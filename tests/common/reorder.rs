//! [`Reorderer`]: a small NFQUEUE helper that reorders packets on a lab link. A thread of the
//! test process joins a host's network namespace, binds an NFQUEUE queue and accepts every
//! packet at once, except every n-th, which it holds a few milliseconds first: the packets
//! sent just after it overtake it. The test adds the iptables rule that queues to it once it
//! is bound ([`Reorderer::queue`]) and deletes that rule before stopping it: with no reader
//! bound the kernel drops what the rule queues (fail closed), so a packet is never lost
//! silently, only late.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use nfq::{Message, Queue, Verdict};

use super::host::Host;
use super::lab::Lab;
use super::netns::enter_netns_path;

/// How long the reader sleeps when the queue is empty.
const IDLE_SLEEP: Duration = Duration::from_micros(100);
/// How long binding the queue may take.
const BIND_TIMEOUT: Duration = Duration::from_secs(5);

/// What the reorderer did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReorderCounts {
    /// Packets queued to it.
    pub seen: u64,
    /// Of those, packets held before being let through.
    pub held: u64,
}

/// A running reorderer; stopped (every held packet let through) by [`Reorderer::stop`] or
/// on drop.
#[derive(Debug)]
pub struct Reorderer {
    queue: u16,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<Result<ReorderCounts>>>,
}

impl Reorderer {
    /// The NFQUEUE queue number it reads.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Lets every held packet through and returns the counts.
    pub fn stop(mut self) -> Result<ReorderCounts> {
        self.finish()
    }

    fn finish(&mut self) -> Result<ReorderCounts> {
        self.stop.store(true, Ordering::Relaxed);
        let worker = self
            .worker
            .take()
            .context("the reorderer was stopped already")?;
        worker
            .join()
            .map_err(|_| anyhow!("the reorderer's thread panicked"))?
    }
}

impl Drop for Reorderer {
    fn drop(&mut self) {
        if self.worker.is_some() {
            let _ = self.finish();
        }
    }
}

impl Lab {
    /// Starts a reorderer on `host` reading NFQUEUE `queue`: every `every`-th packet is held
    /// `hold` before it is let through. Returns once the queue is bound.
    pub fn reorder(&self, host: Host, queue: u16, every: u64, hold: Duration) -> Result<Reorderer> {
        let path = format!("/run/netns/{}", self.ns(host));
        let stop = Arc::new(AtomicBool::new(false));
        let (bound, bound_rx) = mpsc::channel();
        let worker = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let queue = open(&path, queue);
                let ready = queue.as_ref().map(drop).map_err(|err| format!("{err:#}"));
                let _ = bound.send(ready);
                run(queue?, every.max(1), hold, &stop)
            })
        };
        let reorderer = Reorderer {
            queue,
            stop,
            worker: Some(worker),
        };
        match bound_rx.recv_timeout(BIND_TIMEOUT) {
            Ok(Ok(())) => Ok(reorderer),
            Ok(Err(err)) => Err(anyhow!("reorderer on {host}: {err}")),
            Err(_) => Err(anyhow!(
                "reorderer on {host}: queue {queue} not bound in time"
            )),
        }
    }
}

fn open(netns: &str, number: u16) -> Result<Queue> {
    enter_netns_path(netns)?;
    let mut queue = Queue::open().context("opening a netfilter queue socket")?;
    queue
        .bind(number)
        .with_context(|| format!("binding NFQUEUE queue {number}"))?;
    queue.set_nonblocking(true);
    Ok(queue)
}

/// Accepts every packet, holding each `every`-th for `hold`, until `stop`; then lets the
/// held ones go.
fn run(mut queue: Queue, every: u64, hold: Duration, stop: &AtomicBool) -> Result<ReorderCounts> {
    let mut counts = ReorderCounts::default();
    let mut held: VecDeque<(Instant, Message)> = VecDeque::new();
    let accept = |queue: &mut Queue, mut message: Message| {
        message.set_verdict(Verdict::Accept);
        queue.verdict(message).context("giving an NFQUEUE verdict")
    };
    while !stop.load(Ordering::Relaxed) {
        let mut idle = true;
        match queue.recv() {
            Ok(message) => {
                idle = false;
                counts.seen += 1;
                if counts.seen % every == 0 {
                    counts.held += 1;
                    held.push_back((Instant::now() + hold, message));
                } else {
                    accept(&mut queue, message)?;
                }
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => {}
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return Err(err).context("reading NFQUEUE"),
        }
        while held.front().is_some_and(|(due, _)| *due <= Instant::now()) {
            if let Some((_, message)) = held.pop_front() {
                accept(&mut queue, message)?;
            }
        }
        if idle {
            thread::sleep(IDLE_SLEEP);
        }
    }
    for (_, message) in held {
        accept(&mut queue, message)?;
    }
    Ok(counts)
}
