//! Rate-limited warnings: a message that may repeat (a refused connection, a peer sending
//! garbage) is logged the first time, then at most once per interval with how many were
//! left unsaid in between.
//!
//! Pure: the caller passes the time and writes the line.

use std::time::{Duration, Instant};

/// How often one kind of repeated message is logged.
#[derive(Debug, Clone)]
pub struct Throttle {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// At most one line per `interval`.
    pub fn new(interval: Duration) -> Throttle {
        Throttle {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// One more occurrence at `now`: `Some(n)` when it is to be logged, `n` the occurrences
    /// left unlogged since the last line; `None` when it is to be left out (and counted).
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < self.interval)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// `" (N more since the last)"` for a line that stands for N left out, or nothing.
pub fn suppressed_note(suppressed: u64) -> String {
    match suppressed {
        0 => String::new(),
        n => format!(" ({n} more like it since the last such line)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_then_once_per_interval_with_the_count_left_out() {
        let start = Instant::now();
        let mut throttle = Throttle::new(Duration::from_secs(30));
        assert_eq!(throttle.admit(start), Some(0));
        assert_eq!(throttle.admit(start + Duration::from_secs(1)), None);
        assert_eq!(throttle.admit(start + Duration::from_secs(29)), None);
        assert_eq!(throttle.admit(start + Duration::from_secs(30)), Some(2));
        assert_eq!(throttle.admit(start + Duration::from_secs(31)), None);
        assert_eq!(throttle.admit(start + Duration::from_secs(90)), Some(1));
        assert_eq!(suppressed_note(0), "");
        assert_eq!(
            suppressed_note(2),
            " (2 more like it since the last such line)"
        );
    }
}
