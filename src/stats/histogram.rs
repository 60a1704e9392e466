//! How long after copy read a request its first byte went to the target: a histogram with
//! fixed, log-spaced buckets, shared (atomics) and per thread (plain counts), flushed with
//! the counters.
//!
//! The wait is what the replay adds: pacing holding a keep-alive request until the target
//! answered the one before, a handshake still under way, a full target window.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds (100 µs to 10 s); one more bucket holds
/// what is longer.
pub const BOUNDS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];
const BUCKETS: usize = BOUNDS_US.len() + 1;

/// The bucket of a wait of `us` microseconds.
fn bucket_of(us: u64) -> usize {
    BOUNDS_US.partition_point(|&bound| bound < us)
}

fn micros(wait: Duration) -> u64 {
    u64::try_from(wait.as_micros()).unwrap_or(u64::MAX)
}

/// Shared, thread-safe histogram.
#[derive(Debug, Default)]
pub struct DelayHistogram {
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl DelayHistogram {
    /// Counts and sum at one moment.
    pub fn snapshot(&self) -> DelaySnapshot {
        DelaySnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

/// One thread's unshared waits, flushed into a [`DelayHistogram`].
#[derive(Debug, Clone, Default)]
pub struct LocalDelays {
    buckets: [u64; BUCKETS],
    sum_us: u64,
}

impl LocalDelays {
    pub fn record(&mut self, wait: Duration) {
        let us = micros(wait);
        self.buckets[bucket_of(us)] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Adds everything into `shared` (call [`clear`](Self::clear) once every target has it).
    pub fn add_into(&self, shared: &DelayHistogram) {
        for (total, &count) in shared.buckets.iter().zip(&self.buckets) {
            if count != 0 {
                total.fetch_add(count, Ordering::Relaxed);
            }
        }
        shared.sum_us.fetch_add(self.sum_us, Ordering::Relaxed);
    }

    pub fn clear(&mut self) {
        *self = LocalDelays::default();
    }
}

/// A histogram's counts at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelaySnapshot {
    /// Per bucket, not cumulative: bucket `i` below `BOUNDS_US[i]`, the last one above all.
    pub buckets: [u64; BUCKETS],
    pub sum_us: u64,
}

impl DelaySnapshot {
    /// Waits recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_land_in_their_buckets_and_add_up() {
        let shared = DelayHistogram::default();
        let mut local = LocalDelays::default();
        for us in [0, 100, 101, 3_000, 20_000_000] {
            local.record(Duration::from_micros(us));
        }
        local.add_into(&shared);
        local.clear();
        local.add_into(&shared);
        let snapshot = shared.snapshot();
        assert_eq!(snapshot.count(), 5);
        assert_eq!(snapshot.sum_us, 20_003_201);
        assert_eq!(snapshot.buckets[0], 2, "at most 100 µs");
        assert_eq!(snapshot.buckets[1], 1, "101 µs");
        assert_eq!(snapshot.buckets[5], 1, "3 ms: up to 5 ms");
        assert_eq!(snapshot.buckets[BUCKETS - 1], 1, "beyond 10 s");
    }
}
