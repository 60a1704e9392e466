//! The target side's times on copy's clock. A reply's time is intercept's capture
//! timestamp (version 7), taken on intercept's host; a request's time is when copy sent it.
//! When the two hosts' clocks disagree, the replies themselves bound the offset: intercept
//! stamped a reply after copy sent the request it answers and before copy received it,
//! so `stamped - received <= offset <= stamped - sent`. The offset used is 0 (clocks in
//! step, as NTP keeps them) while 0 is within those bounds, and otherwise the nearest
//! bound, which corrects a clock that is off to within the shortest delay seen.
//!
//! Pure: times in µs since the Unix epoch come in as arguments.

/// What the replies of one target say about intercept's clock against copy's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InterceptClock {
    /// The largest `stamped - received` seen: the offset is at least this.
    at_least: Option<i64>,
    /// The smallest `stamped - sent` seen: the offset is at most this.
    at_most: Option<i64>,
}

impl InterceptClock {
    /// A reply stamped `stamped_us` by intercept that copy received at `received_us`,
    /// answering a request copy sent at `sent_us` (when known).
    pub fn observe(&mut self, stamped_us: u64, received_us: u64, sent_us: Option<u64>) {
        let stamped = stamped_us as i64;
        let low = stamped - received_us as i64;
        self.at_least = Some(self.at_least.map_or(low, |at_least| at_least.max(low)));
        if let Some(sent) = sent_us {
            let high = stamped - sent as i64;
            self.at_most = Some(self.at_most.map_or(high, |at_most| at_most.min(high)));
        }
    }

    /// How far intercept's clock is ahead of copy's, in µs, as far as the replies tell.
    pub fn offset_us(&self) -> i64 {
        let mut offset = 0;
        if let Some(at_most) = self.at_most {
            offset = offset.min(at_most);
        }
        if let Some(at_least) = self.at_least {
            // Received after stamped, whatever the other bound says.
            offset = offset.max(at_least);
        }
        offset
    }

    /// `stamped_us` on copy's clock.
    pub fn to_copy(&self, stamped_us: u64) -> u64 {
        (stamped_us as i64 - self.offset_us()).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_in_step_are_trusted() {
        let mut clock = InterceptClock::default();
        // Sent at 1000, stamped at 1300, received at 1350: all on one clock.
        clock.observe(1300, 1350, Some(1000));
        assert_eq!(clock.offset_us(), 0);
        assert_eq!(clock.to_copy(1300), 1300);
    }

    #[test]
    fn a_clock_ahead_is_moved_back_to_no_later_than_received() {
        let mut clock = InterceptClock::default();
        // Intercept is 5 s ahead; the replies took 50 µs and then 20 µs to reach copy.
        clock.observe(5_001_300, 1350, Some(1000));
        clock.observe(5_002_300, 2320, Some(2000));
        assert_eq!(clock.offset_us(), 4_999_980);
        assert_eq!(clock.to_copy(5_002_300), 2320);
    }

    #[test]
    fn a_clock_behind_is_moved_on_to_no_earlier_than_sent() {
        let mut clock = InterceptClock::default();
        // Intercept is 3 s behind; the target took 300 µs, then 100 µs.
        clock.observe(10_000_300 - 3_000_000, 10_000_350, Some(10_000_000));
        clock.observe(20_000_100 - 3_000_000, 20_000_150, Some(20_000_000));
        assert_eq!(clock.offset_us(), -2_999_900);
        assert_eq!(clock.to_copy(20_000_100 - 3_000_000), 20_000_000);
    }

    #[test]
    fn without_observations_nothing_moves() {
        assert_eq!(InterceptClock::default().to_copy(42), 42);
    }
}
