//! The shard loop: one thread, one `poll(2)` loop over the shard's own capture(s), its own
//! links to every intercept and its own timers, running each packet to completion (parse,
//! session, send) with no hand-off to another thread.
//!
//! A loop turn: empty the capture rings into the shard's backlog, work through it in chunks
//! (emptying the rings again before each chunk, and sending what a chunk emitted with
//! batched calls), read what the intercepts sent, fire due timers, then send what is left and
//! queue the new registrations on every link with one write each. A long send empties the
//! rings between its batches (see the `intake` module). Only when a turn found
//! nothing to do does the loop wait, and never past the next deadline.
//!
//! Overload: the capture timestamps say how far behind the shard is. While it is more than
//! [`SHED_LAG`] behind, new sessions are shed (counted) so the open ones finish instead of
//! timing out in the backlog.
//!
//! Offline (`copy --offline`), the same loop replays capture files instead of reading
//! rings: see the `offline` module for its clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::capture::{POLL_INTERVAL, PacketSource};
use crate::poll::{poll, pollfd};
use crate::stats::{Counter, Counters, LocalCounters};

use super::core::ShardCore;
use super::feed::OfflineFeed;
use super::link::Link;
use super::rewrite::Repetition;
use super::sink::PacketSink;

mod intake;
mod offline;

use intake::Intake;
use offline::OfflineReplay;

/// Capture lag beyond which new sessions are shed. A shard sends a packet when it processes
/// it, so its retransmission timers start then and a backlog causes no spurious
/// retransmission; a lag only delays the replay. Shedding is for a shard that cannot keep up
/// at all: past a second behind, the open sessions are worth more than new ones, and the
/// backlog drains instead of growing until the ring overflows and every session loses
/// packets. Bursts (1 MB bodies in the e2e tests) stay well under it.
pub const SHED_LAG: Duration = Duration::from_secs(1);

/// What each shard says of its own share at exit: how evenly flows were spread, and whether
/// any reply reached a shard that does not own its flow.
const SHARD_REPORTED: &[Counter] = &[
    Counter::Captured,
    Counter::SessionsOpened,
    Counter::RequestsSent,
    Counter::Sent,
    Counter::RepliesReceived,
    Counter::RepliesUnmatched,
];

/// Frames taken from one source before the shard sends what they produced and looks at its
/// other descriptors: bounds the latency a burst adds to replies and timers.
const FRAMES_PER_CHUNK: usize = 64;
/// Chunks of work per loop turn.
const CHUNKS_PER_TURN: usize = 8;
/// Packets sent between two looks at the capture rings while a shard sends: one
/// `sendmmsg(2)`. Sending the copies of a 1 MB body takes ~700 packets; in a lab, where each
/// send also runs the target's receive path, thousands of them took 88 ms, in which a fast
/// upload overflowed a 16 MiB ring.
const PACKETS_PER_SEND: usize = 64;

/// Where a shard's client packets come from.
pub enum Feed {
    /// Live captures, one per device, worked through as fast as they come.
    Live(Vec<Box<dyn PacketSource>>),
    /// Capture files, replayed on the offline clock.
    Offline(Box<OfflineFeed>),
}

/// What one shard owns from the start: its feed and its sink.
pub struct ShardInputs {
    pub feed: Feed,
    pub sink: Box<dyn PacketSink>,
}

/// What the shard's owner can see of it while it runs.
#[derive(Debug, Default)]
pub struct ShardStatus {
    /// Intercept links up now.
    pub links_up: AtomicUsize,
    /// Sessions in the shard's table now: being replayed, or closed and in TIME-WAIT.
    pub sessions_tracked: AtomicUsize,
    /// Of those, sessions being replayed now (not in TIME-WAIT).
    pub sessions_open: AtomicUsize,
    /// Captured bytes waiting in the shard's backlog now.
    pub backlog_bytes: AtomicUsize,
}

/// One shard and everything it owns.
pub struct Shard {
    index: usize,
    core: ShardCore,
    /// Live captures and the frames taken from them (none offline).
    intake: Intake,
    offline: Option<OfflineReplay>,
    links: Vec<Link>,
    sink: Box<dyn PacketSink>,
    shedding: bool,
    counters: LocalCounters,
    shared: Arc<Counters>,
    /// This shard's share of the counts, for its line at exit.
    own: Counters,
    status: Arc<ShardStatus>,
    /// The descriptors of the last `poll(2)`: the sources' first, then the links'.
    pollfds: Vec<libc::pollfd>,
    /// For each link entry of `pollfds`, from `link_fds_from` on, the link it belongs to.
    polled_links: Vec<usize>,
    link_fds_from: usize,
    /// The last wait polled the links too: their readiness is known without polling again.
    links_polled: bool,
    send_error_logged: Option<Instant>,
    next_publish: Instant,
}

/// How often a persistent send error is logged again.
const SEND_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(5);
/// How often a shard adds its counts to the shared counters (and asks the kernel for its
/// drop counts): often enough for a per-second report, rarely enough to cost nothing.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

impl Shard {
    pub fn new(
        index: usize,
        core: ShardCore,
        inputs: ShardInputs,
        links: Vec<Link>,
        shared: Arc<Counters>,
        status: Arc<ShardStatus>,
    ) -> Result<Shard> {
        let ShardInputs { feed, sink } = inputs;
        let (captures, offline) = match feed {
            Feed::Live(captures) => (captures, None),
            Feed::Offline(feed) => (Vec::new(), Some(OfflineReplay::new(*feed, Instant::now()))),
        };
        Ok(Shard {
            index,
            core,
            intake: Intake::new(captures)?,
            offline,
            links,
            sink,
            shedding: false,
            counters: LocalCounters::default(),
            shared,
            own: Counters::default(),
            status,
            pollfds: Vec::new(),
            polled_links: Vec::new(),
            link_fds_from: 0,
            links_polled: false,
            send_error_logged: None,
            next_publish: Instant::now(),
        })
    }

    /// Runs until `stop`, or (offline) until the files are replayed and `drain` has passed
    /// since. Then resets the sessions still open on the target.
    pub fn run(mut self, stop: &AtomicBool, drain: Duration) -> Result<()> {
        let result = loop {
            if stop.load(Ordering::Relaxed) {
                break Ok(());
            }
            let now = Instant::now();
            let busy = match self.turn(now, drain) {
                Ok(busy) => busy,
                Err(err) => break Err(err),
            };
            if self.offline.as_ref().is_some_and(|o| o.drained(now)) {
                break Ok(());
            }
            if !busy && let Err(err) = self.wait() {
                break Err(err);
            }
        };
        let end = match &mut self.offline {
            Some(offline) => offline.end_time(Instant::now()),
            None => Instant::now(),
        };
        let reset = self.core.sessions().abort_all(end);
        if reset > 0 {
            log::info!(
                "shard {}: reset {reset} sessions still open on the target",
                self.index
            );
        }
        let flushed = self.flush(Instant::now());
        self.publish_counters();
        log::info!(
            "shard {} totals: {}",
            self.index,
            self.own.snapshot().format(SHARD_REPORTED)
        );
        if let Some(offline) = &self.offline {
            offline.log_summary(self.index);
        }
        result.and(flushed)
    }

    /// One loop turn. Returns whether it found work that may not be finished (then the
    /// loop turns again without waiting).
    fn turn(&mut self, now: Instant, drain: Duration) -> Result<bool> {
        let busy = if self.offline.is_some() {
            self.replay_files(now, drain)?
        } else {
            self.work_captures()?
        };
        for link in &mut self.links {
            link.tick(now);
        }
        let now = Instant::now();
        if self.offline.is_some() {
            self.replay_replies_and_timers(now, busy);
        } else {
            self.poll_links(now);
            self.core.sessions().fire_timers(Instant::now());
        }
        let now = Instant::now();
        self.flush(now)?;
        if now >= self.next_publish {
            self.publish_counters();
            self.next_publish = now + PUBLISH_INTERVAL;
        }
        Ok(busy)
    }

    /// Live captures: before each chunk of work, empty the rings into the backlog, so a
    /// burst waits in memory instead of overflowing a ring while the shard sends. Returns
    /// whether work is left for the next turn.
    fn work_captures(&mut self) -> Result<bool> {
        for _ in 0..CHUNKS_PER_TURN {
            self.intake.empty_rings()?;
            if self.intake.backlog().is_empty() {
                return Ok(false);
            }
            let now = Instant::now();
            let mut taken = 0;
            while taken < FRAMES_PER_CHUNK {
                let Some(frame) = self.intake.backlog().pop() else {
                    break;
                };
                if taken == 0 {
                    self.shedding = capture_lag(frame.timestamp) > SHED_LAG;
                }
                self.core.on_frame(
                    now,
                    frame.link,
                    &frame.data,
                    Repetition::default(),
                    self.shedding,
                );
                self.intake.backlog().recycle(frame);
                taken += 1;
            }
            self.flush(now)?;
            if taken == FRAMES_PER_CHUNK {
                // Under load: more arrived while this chunk was sent.
                self.intake.look_again();
            }
        }
        Ok(!self.intake.backlog().is_empty())
    }

    /// Serves the links whose descriptors are ready: as the last wait found them, or as a
    /// poll without waiting finds them now. Returns whether a connected link had something
    /// to read (replies, handed to the sessions at `now`).
    fn poll_links(&mut self, now: Instant) -> bool {
        if !std::mem::take(&mut self.links_polled) {
            self.pollfds.clear();
            self.collect_link_fds();
            if self.pollfds.is_empty() || !poll(&mut self.pollfds, Duration::ZERO).unwrap_or(false)
            {
                return false;
            }
        }
        let mut read = false;
        let ready = self.pollfds[self.link_fds_from..].iter();
        for (pollfd, &index) in ready.zip(&self.polled_links) {
            if pollfd.revents != 0 {
                let link = &mut self.links[index];
                read |= link.is_up() && pollfd.revents & libc::POLLIN != 0;
                link.on_ready(now, pollfd.revents, &mut self.core);
            }
        }
        read
    }

    /// Appends the links' descriptors to `pollfds`, remembering which link each is.
    fn collect_link_fds(&mut self) {
        self.link_fds_from = self.pollfds.len();
        self.polled_links.clear();
        for (index, link) in self.links.iter().enumerate() {
            if let Some((fd, events)) = link.interest() {
                self.pollfds.push(pollfd(fd, events));
                self.polled_links.push(index);
            }
        }
    }

    /// Sends what the sessions emitted and registers the flows they opened. Between two
    /// batches of a long send, frames that arrived meanwhile are taken out of the rings (a
    /// capture that fails then is reported once everything is sent).
    fn flush(&mut self, now: Instant) -> Result<()> {
        let emitted = self.core.emitted();
        let mut capture_failed = None;
        let mut refused = 0;
        for flow in emitted.new_flows.drain(..) {
            for link in &mut self.links {
                refused += usize::from(!link.register(flow));
            }
        }
        for link in &mut self.links {
            refused += link.flush(now);
        }
        if refused > 0 {
            emitted
                .counters
                .add(Counter::RegistrationsRefused, refused as u64);
        }
        if !emitted.outgoing.is_empty() {
            let mut failures = 0u64;
            let mut last_error = None;
            let mut sent = 0;
            for (n, batch) in emitted
                .outgoing
                .packets()
                .chunks(PACKETS_PER_SEND)
                .enumerate()
            {
                if n > 0 && capture_failed.is_none() {
                    self.intake.look_again();
                    capture_failed = self.intake.empty_rings().err();
                }
                sent += self.sink.send_batch(batch, &mut |packet, err| {
                    failures += 1;
                    last_error = Some((packet.len(), err));
                });
            }
            emitted.outgoing.clear();
            self.counters.add(Counter::Sent, sent as u64);
            if let Some((len, err)) = last_error {
                self.counters.add(Counter::SendFailed, failures);
                if self
                    .send_error_logged
                    .is_none_or(|at| now - at >= SEND_ERROR_LOG_INTERVAL)
                {
                    log::warn!(
                        "shard {}: sending a {len}-byte copy failed: {err} ({failures} in this batch; logged at most every {}s)",
                        self.index,
                        SEND_ERROR_LOG_INTERVAL.as_secs()
                    );
                    self.send_error_logged = Some(now);
                }
            }
        }
        capture_failed.map_or(Ok(()), Err)
    }

    /// Adds the shard's counts (and the kernel's drop counts) to the shared counters.
    fn publish_counters(&mut self) {
        let targets = [&*self.shared, &self.own];
        self.core.emitted().counters.flush_into_each(&targets);
        self.counters.flush_into_each(&targets);
        self.intake.report_drops(&self.shared);
        let up = self.links.iter().filter(|link| link.is_up()).count();
        self.status.links_up.store(up, Ordering::Relaxed);
        let tracked = self.core.sessions().len();
        self.status
            .sessions_tracked
            .store(tracked, Ordering::Relaxed);
        let open = self.core.sessions().open_len();
        self.status.sessions_open.store(open, Ordering::Relaxed);
        let waiting = self.intake.backlog().bytes();
        self.status.backlog_bytes.store(waiting, Ordering::Relaxed);
    }

    /// Waits until a descriptor is ready or the next deadline (a session timer, a link retry,
    /// the next frame of a file, the end of the drain) comes, at most [`POLL_INTERVAL`].
    fn wait(&mut self) -> Result<()> {
        let now = Instant::now();
        let deadline = [
            self.core.sessions().next_deadline(),
            self.offline.as_ref().and_then(OfflineReplay::deadline),
            Some(self.next_publish),
        ]
        .into_iter()
        .chain(self.links.iter().map(Link::deadline))
        .flatten()
        .min();
        let mut timeout = deadline.map_or(POLL_INTERVAL, |at| at.saturating_duration_since(now));
        timeout = timeout.min(POLL_INTERVAL);
        if timeout.is_zero() {
            self.intake.look_again();
            return Ok(());
        }
        self.pollfds.clear();
        self.intake.push_poll_fds(&mut self.pollfds);
        self.collect_link_fds();
        let completed = poll(&mut self.pollfds, timeout)
            .with_context(|| format!("shard {}: poll", self.index))?;
        if !completed {
            // A signal: nothing is known; the next turn looks at everything.
            self.intake.look_again();
            return Ok(());
        }
        self.links_polled = true;
        self.intake.note_readiness(&self.pollfds);
        Ok(())
    }
}

/// How long ago a frame stamped `timestamp` (since the Unix epoch) was captured.
fn capture_lag(timestamp: Duration) -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(timestamp)
}
