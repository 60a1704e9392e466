//! When each request of a load may start: an open-loop schedule shared by all client threads.
//!
//! Request `i` is due at `i / rate` seconds after the start, whether or not earlier requests
//! have finished (open loop), or at once when there is no rate (flat out). The schedule ends
//! at the request limit or at the deadline, whichever comes first. It owns no thread and does
//! not sleep: callers wait until a ticket is due.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The plan for one load: how many requests at most, for how long, at what rate.
#[derive(Debug)]
pub struct Schedule {
    /// Time between two consecutive requests; `None` sends flat out.
    interval: Option<Duration>,
    /// Requests that may be started at most.
    limit: u64,
    /// No request is started this long after the start or later.
    duration: Duration,
    /// The next ticket to hand out.
    next: AtomicU64,
}

/// Permission to start one request no earlier than `due` after the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub index: u64,
    pub due: Duration,
}

impl Schedule {
    /// A schedule of at most `limit` requests within `duration`, at `rate` requests per second
    /// (`None` or zero: flat out).
    pub fn new(rate: Option<u32>, limit: u64, duration: Duration) -> Schedule {
        let interval = rate
            .filter(|&rate| rate > 0)
            .map(|rate| Duration::from_secs(1) / rate);
        Schedule {
            interval,
            limit,
            duration,
            next: AtomicU64::new(0),
        }
    }

    /// The next request, or `None` once the limit is reached or its due time (for flat out:
    /// `elapsed`, the time since the start) is past the duration.
    pub fn next_ticket(&self, elapsed: Duration) -> Option<Ticket> {
        if elapsed >= self.duration {
            return None;
        }
        // Stop handing out tickets once the limit is reached, so the counter cannot wrap.
        let index = self
            .next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |next| {
                (next < self.limit).then_some(next + 1)
            })
            .ok()?;
        let due = match self.interval {
            Some(interval) => interval.checked_mul(u32::try_from(index).ok()?)?,
            None => elapsed,
        };
        (due < self.duration).then_some(Ticket { index, due })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paced_tickets_are_spread_evenly() {
        let schedule = Schedule::new(Some(1000), 10, Duration::from_secs(1));
        let dues: Vec<_> = (0..3)
            .filter_map(|_| schedule.next_ticket(Duration::ZERO))
            .map(|ticket| ticket.due)
            .collect();
        assert_eq!(
            dues,
            [0, 1, 2].map(Duration::from_millis),
            "1,000 requests/s are due 1 ms apart"
        );
    }

    #[test]
    fn the_count_limit_ends_the_schedule() {
        let schedule = Schedule::new(None, 2, Duration::from_secs(10));
        assert_eq!(
            schedule.next_ticket(Duration::ZERO).map(|t| t.index),
            Some(0)
        );
        assert_eq!(
            schedule.next_ticket(Duration::ZERO).map(|t| t.index),
            Some(1)
        );
        assert_eq!(schedule.next_ticket(Duration::ZERO), None);
        assert_eq!(schedule.next_ticket(Duration::ZERO), None, "stays ended");
    }

    #[test]
    fn the_duration_ends_a_paced_schedule() {
        // 10 requests/s for 1 s: tickets 0..=9 are due before the end, ticket 10 is not.
        let schedule = Schedule::new(Some(10), 100, Duration::from_secs(1));
        let issued = std::iter::from_fn(|| schedule.next_ticket(Duration::ZERO)).count();
        assert_eq!(issued, 10);
    }

    #[test]
    fn the_duration_ends_a_flat_out_schedule() {
        let schedule = Schedule::new(None, 100, Duration::from_secs(1));
        let early = schedule.next_ticket(Duration::from_millis(999));
        assert_eq!(early.map(|t| t.due), Some(Duration::from_millis(999)));
        assert_eq!(schedule.next_ticket(Duration::from_secs(1)), None);
    }

    #[test]
    fn a_zero_rate_means_flat_out() {
        let schedule = Schedule::new(Some(0), 5, Duration::from_secs(1));
        let ticket = schedule.next_ticket(Duration::from_millis(7));
        assert_eq!(ticket.map(|t| t.due), Some(Duration::from_millis(7)));
    }
}
