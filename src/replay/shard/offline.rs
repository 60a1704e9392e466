//! The offline half of the shard loop (`copy --offline`): the frames of the files and the
//! sessions' timers, handled in the order of their due times, each at its due time on the
//! replay clock.
//!
//! The replay clock is what the sessions are told the time is. A frame due at offset `d` of
//! the offline clock is handed to its session at `start + d`, and a timer at its deadline,
//! even when the shard gets to them late (a busy machine); replies from an intercept come at
//! the wall time they were read. The clock never goes back. So without replies (`--output`)
//! the sessions see the same times and send the same packets in the same order on every
//! run, however busy the machine; with a target, only the replies' times differ.
//!
//! At `--speed max` frames have no due time: each is handed over as soon as the shard gets
//! to it (after the timers due by then), while each session's requests still wait for the
//! target's answers (the session's pacing). So that the files do not pile up in the sessions
//! faster than the target takes them, reading stops while the sessions hold more than
//! [`MAX_SPEED_BUFFERED`] client bytes, and goes on as the target acknowledges them (or the
//! sessions time out).

use std::time::{Duration, Instant};

use anyhow::Result;

use super::{CHUNKS_PER_TURN, FRAMES_PER_CHUNK, Shard};
use crate::replay::feed::{FeedSummary, OfflineFeed};

/// At `--speed max`, the client bytes the sessions may hold, waiting for the target, before
/// the files are read further: bounds the memory a fast file takes while the target sets the
/// pace (about a second of a 256 Mbit/s replay).
const MAX_SPEED_BUFFERED: usize = 32 << 20;

/// The time the sessions of an offline shard are told: never earlier than the last.
#[derive(Debug, Clone, Copy)]
struct ReplayClock {
    now: Instant,
}

impl ReplayClock {
    /// `at`, or the time already told if that is later; it becomes the time told.
    fn stamp(&mut self, at: Instant) -> Instant {
        self.now = self.now.max(at);
        self.now
    }
}

/// What an offline shard replays, and where the replay stands.
pub(super) struct OfflineReplay {
    feed: OfflineFeed,
    clock: ReplayClock,
    /// When the first frame was due: offsets count from here.
    start: Option<Instant>,
    /// The next frame, while it is not due yet.
    next_due: Option<Instant>,
    /// Once the files have ended: when the drain after them ends, on the replay clock.
    drain_end: Option<Instant>,
    /// Wall times the first and the latest frame were handed over.
    fed: Option<(Instant, Instant)>,
}

impl OfflineReplay {
    pub(super) fn new(feed: OfflineFeed, now: Instant) -> OfflineReplay {
        OfflineReplay {
            feed,
            clock: ReplayClock { now },
            start: None,
            next_due: None,
            drain_end: None,
            fed: None,
        }
    }

    /// When the shard must look at the files again without a descriptor being ready: the
    /// next frame's due time, or the end of the drain.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.next_due.or(self.drain_end)
    }

    /// Whether the files have ended and the drain after them has passed by `wall`.
    pub(super) fn drained(&self, wall: Instant) -> bool {
        self.drain_end.is_some_and(|end| wall >= end)
    }

    /// The time the sessions still open are reset at when the shard stops at `wall`: the end
    /// of the drain, unless stopped earlier.
    pub(super) fn end_time(&mut self, wall: Instant) -> Instant {
        let at = self.drain_end.map_or(wall, |end| end.min(wall));
        self.clock.stamp(at)
    }

    /// Logs what the replay covered: the recorded span against the time it took.
    pub(super) fn log_summary(&self, shard: usize) {
        let FeedSummary {
            frames,
            files,
            rounds,
            recorded,
            scheduled,
        } = self.feed.summary();
        let fed = self
            .fed
            .map_or(Duration::ZERO, |(first, last)| last - first);
        log::info!(
            "shard {shard}: replayed {frames} frames of {files} file(s) in {rounds} round(s): \
             recorded over {:.3}s, scheduled over {:.3}s, fed over {:.3}s",
            recorded.as_secs_f64(),
            scheduled.as_secs_f64(),
            fed.as_secs_f64()
        );
    }
}

impl Shard {
    /// Hands over the frames due by `wall`, each after the timers due before it, up to a
    /// turn's share. Returns whether frames due by then are left for the next turn.
    pub(super) fn replay_files(&mut self, wall: Instant, drain: Duration) -> Result<bool> {
        for _ in 0..CHUNKS_PER_TURN {
            let Some(offline) = self.offline.as_mut() else {
                return Ok(false);
            };
            let mut taken = 0;
            let mut waiting = false;
            while taken < FRAMES_PER_CHUNK && offline.drain_end.is_none() {
                let Some(frame) = offline.feed.peek()? else {
                    let end = offline.clock.now + drain;
                    offline.drain_end = Some(end);
                    if drain > Duration::ZERO {
                        log::info!(
                            "shard {}: the files have ended; letting sessions finish for {}",
                            self.index,
                            humantime::format_duration(drain)
                        );
                    }
                    break;
                };
                let due = match frame.due {
                    Some(offset) => *offline.start.get_or_insert(wall) + offset,
                    None if self.core.sessions().buffered_bytes() >= MAX_SPEED_BUFFERED => {
                        waiting = true;
                        break;
                    }
                    None => wall,
                };
                if due > wall {
                    offline.next_due = Some(due);
                    waiting = true;
                    break;
                }
                offline.next_due = None;
                let sessions = self.core.sessions();
                while let Some(deadline) = sessions.next_deadline().filter(|&at| at <= due) {
                    sessions.fire_timers(offline.clock.stamp(deadline));
                }
                let now = offline.clock.stamp(due);
                self.core
                    .on_frame(now, frame.link, frame.data, frame.repetition, false);
                offline.feed.advance()?;
                let first = offline.fed.map_or(wall, |(first, _)| first);
                offline.fed = Some((first, wall));
                taken += 1;
            }
            self.flush(wall)?;
            if taken < FRAMES_PER_CHUNK || waiting {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Hands the sessions what the intercepts sent, at `wall` (the clock reaches it only if
    /// a connected link had something to read); then, unless frames due by now are left for
    /// the next turn (`frames_left`), fires the timers due.
    pub(super) fn replay_replies_and_timers(&mut self, wall: Instant, frames_left: bool) {
        let Some(offline) = &self.offline else {
            return;
        };
        let replies_at = offline.clock.now.max(wall);
        if self.poll_links(replies_at)
            && let Some(offline) = &mut self.offline
        {
            offline.clock.stamp(replies_at);
        }
        if !frames_left {
            self.fire_replay_timers(Instant::now());
        }
    }

    /// Fires the session timers due by `wall` (by the end of the drain once the files have
    /// ended), each at its deadline. Called only when no frame due by `wall` is left.
    fn fire_replay_timers(&mut self, wall: Instant) {
        let Some(offline) = self.offline.as_mut() else {
            return;
        };
        let limit = offline.drain_end.map_or(wall, |end| end.min(wall));
        let sessions = self.core.sessions();
        while let Some(deadline) = sessions.next_deadline().filter(|&at| at <= limit) {
            sessions.fire_timers(offline.clock.stamp(deadline));
        }
    }
}
