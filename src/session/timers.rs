//! The session's deadlines, one slot per kind, and which of them have expired.
//!
//! A [`TimerTable`] only stores instants; what each timer means is the engine's business.

use std::time::Instant;

/// The timers a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Retransmission of the oldest unacknowledged segment or SYN, or a zero-window probe.
    Retransmit,
    /// A delayed acknowledgement of target data (RFC 9293 §3.8.6.3).
    DelayedAck,
    /// The whole handshake, retries included.
    Handshake,
    /// No activity from either side.
    Idle,
    /// Waiting for the target's FIN after ours was acknowledged.
    FinWait,
    /// The end of the time-wait that answers late target packets.
    TimeWait,
}

impl Timer {
    const ALL: [Timer; 6] = [
        Timer::Retransmit,
        Timer::DelayedAck,
        Timer::Handshake,
        Timer::Idle,
        Timer::FinWait,
        Timer::TimeWait,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// One optional deadline per [`Timer`].
#[derive(Debug, Clone, Default)]
pub struct TimerTable {
    deadlines: [Option<Instant>; Timer::ALL.len()],
}

impl TimerTable {
    /// Arms `timer` for `at`, replacing its previous deadline.
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer.index()] = Some(at);
    }

    /// Disarms `timer`.
    pub fn stop(&mut self, timer: Timer) {
        self.deadlines[timer.index()] = None;
    }

    /// Disarms every timer.
    pub fn stop_all(&mut self) {
        self.deadlines = Default::default();
    }

    /// Whether `timer` is armed.
    pub fn is_set(&self, timer: Timer) -> bool {
        self.deadline(timer).is_some()
    }

    /// When `timer` fires, if it is armed.
    pub fn deadline(&self, timer: Timer) -> Option<Instant> {
        self.deadlines[timer.index()]
    }

    /// The earliest deadline of all.
    pub fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Disarms and returns the first timer (in [`Timer`] order) due at `now`.
    pub fn pop_expired(&mut self, now: Instant) -> Option<Timer> {
        let timer = Timer::ALL
            .into_iter()
            .find(|timer| self.deadlines[timer.index()].is_some_and(|at| at <= now))?;
        self.stop(timer);
        Some(timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn next_is_the_earliest_and_expired_timers_pop_once() {
        let t0 = Instant::now();
        let mut timers = TimerTable::default();
        assert_eq!(timers.next(), None);
        timers.set(Timer::Idle, t0 + Duration::from_secs(120));
        timers.set(Timer::Retransmit, t0 + Duration::from_millis(100));
        assert_eq!(timers.next(), Some(t0 + Duration::from_millis(100)));
        assert_eq!(timers.pop_expired(t0), None);
        let later = t0 + Duration::from_millis(100);
        assert_eq!(timers.pop_expired(later), Some(Timer::Retransmit));
        assert_eq!(timers.pop_expired(later), None);
        assert!(timers.is_set(Timer::Idle));
        timers.stop_all();
        assert_eq!(timers.next(), None);
    }
}
