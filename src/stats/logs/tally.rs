//! [`Tally`]: requests per window on each side (online, target), and how much of each
//! window the logs cover. Pure: instants in, counts out.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use jiff::Timestamp;

use super::window::{Span, Windows, floor_second};

/// Which logs a request was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Online,
    Target,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Online => "online",
            Side::Target => "target",
        }
    }
}

/// One side's counts.
#[derive(Clone, Debug, Default)]
struct Counts {
    per_window: BTreeMap<i64, u64>,
    /// The earliest and latest request of the side's logs, inside the span or not.
    seen: Option<(Timestamp, Timestamp)>,
}

/// Requests per window of both sides.
#[derive(Clone, Debug)]
pub struct Tally {
    windows: Windows,
    span: Span,
    online: Counts,
    target: Counts,
}

impl Tally {
    pub fn new(windows: Windows, span: Span) -> Tally {
        Tally {
            windows,
            span,
            online: Counts::default(),
            target: Counts::default(),
        }
    }

    pub fn windows(&self) -> Windows {
        self.windows
    }

    /// A request of `side`'s logs at `at`: counted if inside the span; either way it shows
    /// how far the side's logs reach.
    pub fn record(&mut self, side: Side, at: Timestamp) {
        let counts = self.side_mut(side);
        counts.seen = Some(match counts.seen {
            None => (at, at),
            Some((first, last)) => (first.min(at), last.max(at)),
        });
        if self.span.contains(at) {
            let index = self.windows.index(at);
            *self.side_mut(side).per_window.entry(index).or_default() += 1;
        }
    }

    /// Every window from the first to the last with a counted request on either side.
    pub fn indexes(&self) -> Option<RangeInclusive<i64>> {
        let ends = |counts: &Counts| {
            Some((
                *counts.per_window.keys().next()?,
                *counts.per_window.keys().next_back()?,
            ))
        };
        let range = match (ends(&self.online), ends(&self.target)) {
            (Some(a), Some(b)) => (a.0.min(b.0), a.1.max(b.1)),
            (Some(only), None) | (None, Some(only)) => only,
            (None, None) => return None,
        };
        Some(range.0..=range.1)
    }

    /// Requests of `side` in window `index`.
    pub fn count(&self, side: Side, index: i64) -> u64 {
        self.side(side).per_window.get(&index).copied().unwrap_or(0)
    }

    /// True when window `index` lies wholly inside the span and both sides' logs cover it.
    /// Logs tell time to the second, so a log covers a window when it has a request in or
    /// before the window's first second and one in or after its last: the first and last
    /// windows of a log that starts or ends within them are not complete.
    pub fn is_complete(&self, index: i64) -> bool {
        let start = self.windows.start_second(index);
        let end = self.windows.start_second(index + 1);
        let in_span = self
            .span
            .from
            .is_none_or(|from| from <= self.windows.start(index))
            && self
                .span
                .to
                .is_none_or(|to| to >= self.windows.start(index + 1));
        let covered = |counts: &Counts| {
            counts.seen.is_some_and(|(first, last)| {
                floor_second(first) <= start && floor_second(last) >= end - 1
            })
        };
        in_span && covered(&self.online) && covered(&self.target)
    }

    fn side(&self, side: Side) -> &Counts {
        match side {
            Side::Online => &self.online,
            Side::Target => &self.target,
        }
    }

    fn side_mut(&mut self, side: Side) -> &mut Counts {
        match side {
            Side::Online => &mut self.online,
            Side::Target => &mut self.target,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use jiff::tz::Offset;

    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn minutes(span: Span) -> Tally {
        Tally::new(
            Windows::new(NonZeroU32::new(60).unwrap(), Offset::UTC),
            span,
        )
    }

    /// One request at each of `times` (`HH:MM:SS` on 2026-10-10, UTC) on `side`.
    fn record(tally: &mut Tally, side: Side, times: &[&str]) {
        for time in times {
            tally.record(side, ts(&format!("2026-10-10T{time}Z")));
        }
    }

    fn index(tally: &Tally, time: &str) -> i64 {
        tally.windows().index(ts(&format!("2026-10-10T{time}Z")))
    }

    #[test]
    fn counts_each_side_per_window() {
        let mut tally = minutes(Span::default());
        record(
            &mut tally,
            Side::Online,
            &["11:08:00", "11:08:59", "11:09:00"],
        );
        record(&mut tally, Side::Target, &["11:08:30"]);
        let w = index(&tally, "11:08:00");
        assert_eq!(tally.indexes(), Some(w..=w + 1));
        assert_eq!(
            (
                tally.count(Side::Online, w),
                tally.count(Side::Online, w + 1)
            ),
            (2, 1)
        );
        assert_eq!(
            (
                tally.count(Side::Target, w),
                tally.count(Side::Target, w + 1)
            ),
            (1, 0)
        );
    }

    #[test]
    fn nothing_counted_has_no_windows() {
        let tally = minutes(Span::default());
        assert_eq!(tally.indexes(), None);
        assert!(!tally.is_complete(0));
    }

    #[test]
    fn a_window_is_complete_when_both_logs_reach_its_first_and_last_second() {
        let mut tally = minutes(Span::default());
        // Both logs hold exactly the minute 11:08, as `grep '11:08'` would cut them.
        for side in [Side::Online, Side::Target] {
            record(&mut tally, side, &["11:08:00", "11:08:59"]);
        }
        assert!(tally.is_complete(index(&tally, "11:08:00")));

        // The target's log starts a second late: the window is an edge.
        let mut tally = minutes(Span::default());
        record(&mut tally, Side::Online, &["11:08:00", "11:08:59"]);
        record(&mut tally, Side::Target, &["11:08:01", "11:08:59"]);
        assert!(!tally.is_complete(index(&tally, "11:08:00")));

        // And one that ends early makes its last window an edge.
        let mut tally = minutes(Span::default());
        record(&mut tally, Side::Online, &["11:07:10", "11:09:50"]);
        record(&mut tally, Side::Target, &["11:07:20", "11:09:58"]);
        let w = index(&tally, "11:07:00");
        let complete: Vec<bool> = (w..=w + 2).map(|i| tally.is_complete(i)).collect();
        assert_eq!(complete, [false, true, false]);
    }

    #[test]
    fn empty_windows_between_requests_are_complete() {
        let mut tally = minutes(Span::default());
        for side in [Side::Online, Side::Target] {
            record(&mut tally, side, &["11:00:00", "11:05:59"]);
        }
        let w = index(&tally, "11:00:00");
        assert_eq!(tally.indexes(), Some(w..=w + 5));
        assert!((w..=w + 5).all(|i| tally.is_complete(i)));
        assert_eq!(tally.count(Side::Online, w + 2), 0);
    }

    #[test]
    fn the_span_counts_its_requests_and_cuts_its_windows() {
        let span = Span {
            from: Some(ts("2026-10-10T11:08:30Z")),
            to: Some(ts("2026-10-10T11:10:00Z")),
        };
        let mut tally = minutes(span);
        for side in [Side::Online, Side::Target] {
            record(
                &mut tally,
                side,
                &[
                    "11:00:00", "11:08:10", "11:08:40", "11:09:30", "11:10:00", "12:00:00",
                ],
            );
        }
        let w = index(&tally, "11:08:00");
        assert_eq!(
            tally.indexes(),
            Some(w..=w + 1),
            "only requests in the span count"
        );
        assert_eq!(
            (
                tally.count(Side::Online, w),
                tally.count(Side::Online, w + 1)
            ),
            (1, 1)
        );
        assert!(!tally.is_complete(w), "the span starts inside 11:08");
        assert!(tally.is_complete(w + 1), "the logs reach beyond the span");
    }
}
