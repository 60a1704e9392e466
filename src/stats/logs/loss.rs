//! The loss arithmetic: `loss = 1 − target / (factor × online)`, per window and in total
//! ([`compare`] turns a [`Tally`] into a [`Comparison`]). Pure.

use std::fmt;

use jiff::Timestamp;

use super::tally::{Side, Tally};
use super::window::Windows;

/// One window of the comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub start: Timestamp,
    pub online: u64,
    pub target: u64,
    /// `None` when the window has no online request.
    pub loss: Option<f64>,
    /// True when the logs cover the window only in part (see [`Tally::is_complete`]).
    pub edge: bool,
}

/// The sum of the windows that count.
#[derive(Clone, Debug, PartialEq)]
pub struct Total {
    pub online: u64,
    pub target: u64,
    pub factor: f64,
    /// `None` when no counted window has an online request.
    pub loss: Option<f64>,
}

/// Every window from the first request to the last, then the total.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub windows: Windows,
    pub rows: Vec<Row>,
    pub total: Total,
    /// Whether edge windows are counted in the total (`--edges`).
    pub edges_counted: bool,
}

impl Comparison {
    /// True when some window is an edge.
    pub fn has_edges(&self) -> bool {
        self.rows.iter().any(|row| row.edge)
    }
}

/// The share of `factor × online` requests the target did not log: negative when it logged
/// more. `None` without online requests.
pub fn loss(online: u64, target: u64, factor: f64) -> Option<f64> {
    // Counts stay far below 2^53, where f64 is exact.
    (online > 0).then(|| 1.0 - target as f64 / (factor * online as f64))
}

/// Whether `loss` is above `max_loss`. Losses are ratios of counts, computed in floating
/// point: `1 − 990/1000` is a hair above 0.01. A loss within a billionth of the threshold
/// is not above it, so `--max-loss 1%` accepts exactly 1 %.
pub fn exceeds(loss: f64, max_loss: f64) -> bool {
    const TOLERANCE: f64 = 1e-9;
    loss > max_loss + TOLERANCE
}

/// The most windows a comparison shows: a day of 1-second windows, or 69 days of minutes.
/// Every window from the first request to the last gets a row, so one line with a wrong
/// year (a host that logged before its clock was set) would otherwise ask for millions.
pub const MAX_WINDOWS: u64 = 100_000;

/// The requests counted span more windows than [`MAX_WINDOWS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooManyWindows {
    pub windows: u64,
    pub window_seconds: i64,
    pub first: Timestamp,
    pub last: Timestamp,
}

impl fmt::Display for TooManyWindows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the requests counted span {} windows of {} s, from {} to {}, more than the \
             {MAX_WINDOWS} shown at most: a line may have a wrong time; narrow the span with \
             --from and --to, or give a longer --window",
            self.windows, self.window_seconds, self.first, self.last
        )
    }
}

impl std::error::Error for TooManyWindows {}

/// Compares the two sides of `tally` window by window; the total sums the complete windows,
/// and the edges too when `count_edges`. Fails, before making a row, when the windows from
/// the first request counted to the last are more than [`MAX_WINDOWS`].
pub fn compare(
    tally: &Tally,
    factor: f64,
    count_edges: bool,
) -> Result<Comparison, TooManyWindows> {
    let windows = tally.windows();
    let indexes = tally.indexes();
    if let Some(range) = &indexes {
        let count = range.end().abs_diff(*range.start()) + 1;
        if count > MAX_WINDOWS {
            return Err(TooManyWindows {
                windows: count,
                window_seconds: windows.seconds(),
                first: windows.start(*range.start()),
                last: windows.start(*range.end()),
            });
        }
    }
    let rows: Vec<Row> = indexes
        .into_iter()
        .flatten()
        .map(|index| {
            let online = tally.count(Side::Online, index);
            let target = tally.count(Side::Target, index);
            Row {
                start: windows.start(index),
                online,
                target,
                loss: loss(online, target, factor),
                edge: !tally.is_complete(index),
            }
        })
        .collect();
    let counted = rows.iter().filter(|row| count_edges || !row.edge);
    let (online, target) = counted.fold((0, 0), |(online, target), row| {
        (online + row.online, target + row.target)
    });
    Ok(Comparison {
        windows,
        rows,
        total: Total {
            online,
            target,
            factor,
            loss: loss(online, target, factor),
        },
        edges_counted: count_edges,
    })
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use jiff::tz::Offset;

    use super::*;
    use crate::stats::logs::window::Span;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn tally(window_seconds: u32) -> Tally {
        Tally::new(
            Windows::new(NonZeroU32::new(window_seconds).unwrap(), Offset::UTC),
            Span::default(),
        )
    }

    /// `count` requests of `side` spread evenly over the minute starting at `minute`
    /// (`HH:MM` on 2026-10-10, UTC), the first in its first second and the last in its last.
    fn fill(tally: &mut Tally, side: Side, minute: &str, count: i64) {
        let start = ts(&format!("2026-10-10T{minute}:00Z")).as_second();
        for i in 0..count {
            let second = start + (i * 59) / (count - 1).max(1);
            tally.record(side, jiff::Timestamp::from_second(second).unwrap());
        }
    }

    fn assert_close(loss: Option<f64>, expected: f64) {
        let loss = loss.expect("a loss");
        assert!((loss - expected).abs() < 1e-12, "{loss} is not {expected}");
    }

    #[test]
    fn the_published_example() {
        // Hosts 13 and 14 online, host 148 the target, one minute each (`grep 'Tue 11:08'`).
        let mut tally = tally(60);
        fill(&mut tally, Side::Online, "11:08", 89_316);
        fill(&mut tally, Side::Online, "11:08", 89_309);
        fill(&mut tally, Side::Target, "11:08", 178_175);
        let comparison = compare(&tally, 1.0, false).unwrap();
        let [row] = comparison.rows.as_slice() else {
            panic!("one window: {:?}", comparison.rows)
        };
        assert!(!row.edge, "the logs cover the whole minute");
        assert_eq!((row.online, row.target), (178_625, 178_175));
        assert_eq!(comparison.total.online, 89_316 + 89_309);
        assert_eq!(comparison.total.target, 178_175);
        let loss = comparison.total.loss.unwrap();
        assert_eq!(loss, 1.0 - 178_175.0 / 178_625.0);
        assert_eq!(format!("{loss:.4}"), "0.0025");
    }

    #[test]
    fn loss_is_none_without_online_requests_and_negative_with_extra_target_ones() {
        assert_eq!(loss(0, 0, 1.0), None);
        assert_eq!(loss(0, 5, 1.0), None);
        assert_eq!(loss(100, 100, 1.0), Some(0.0));
        assert_close(loss(100, 90, 1.0), 0.1);
        assert_close(loss(100, 110, 1.0), -0.1);
        assert_eq!(
            loss(100, 200, 2.0),
            Some(0.0),
            "factor 2: the target sees twice as many"
        );
        assert_eq!(loss(100, 150, 2.0), Some(0.25));
    }

    #[test]
    fn a_loss_equal_to_the_threshold_is_not_above_it() {
        let one_percent = loss(1_000, 990, 1.0).unwrap();
        assert!(one_percent > 0.01, "the float is a hair above");
        assert!(!exceeds(one_percent, 0.01));
        assert!(exceeds(loss(1_000, 989, 1.0).unwrap(), 0.01));
        assert!(exceeds(loss(1_000_000, 999_999, 1.0).unwrap(), 0.0));
        assert!(!exceeds(0.0, 0.0));
        assert!(!exceeds(-0.5, 0.0));
    }

    #[test]
    fn edges_are_shown_but_left_out_of_the_total_unless_counted() {
        let mut tally = tally(60);
        // Online from 11:07:30, the target from 11:07:31, both up to 11:10:30.
        for (side, seconds) in [(Side::Online, 30), (Side::Target, 31)] {
            let start = ts("2026-10-10T11:07:00Z").as_second() + seconds;
            for second in start..ts("2026-10-10T11:10:30Z").as_second() {
                tally.record(side, jiff::Timestamp::from_second(second).unwrap());
            }
        }
        let comparison = compare(&tally, 1.0, false).unwrap();
        let shown: Vec<(u64, u64, bool)> = comparison
            .rows
            .iter()
            .map(|row| (row.online, row.target, row.edge))
            .collect();
        assert_eq!(
            shown,
            [
                (30, 29, true),
                (60, 60, false),
                (60, 60, false),
                (30, 30, true)
            ]
        );
        assert!(comparison.has_edges());
        assert_eq!(
            (comparison.total.online, comparison.total.target),
            (120, 120)
        );
        assert_eq!(comparison.total.loss, Some(0.0));

        let counted = compare(&tally, 1.0, true).unwrap();
        assert_eq!((counted.total.online, counted.total.target), (180, 179));
        assert!(counted.edges_counted);
    }

    #[test]
    fn empty_windows_are_shown_with_no_loss() {
        let mut tally = tally(60);
        for side in [Side::Online, Side::Target] {
            fill(&mut tally, side, "11:00", 10);
            fill(&mut tally, side, "11:02", 10);
        }
        let comparison = compare(&tally, 1.0, false).unwrap();
        let losses: Vec<Option<f64>> = comparison.rows.iter().map(|row| row.loss).collect();
        assert_eq!(losses, [Some(0.0), None, Some(0.0)]);
        assert_eq!(comparison.rows[1].start, ts("2026-10-10T11:01:00Z"));
        assert!(comparison.rows.iter().all(|row| !row.edge));
        assert_eq!(comparison.total.online, 20);
    }

    #[test]
    fn several_online_hosts_and_a_factor() {
        let mut tally = tally(60);
        for host in [400, 350, 250] {
            fill(&mut tally, Side::Online, "11:08", host);
        }
        fill(&mut tally, Side::Target, "11:08", 1_900);
        let comparison = compare(&tally, 2.0, false).unwrap();
        assert_eq!(comparison.total.online, 1_000);
        assert_eq!(comparison.total.factor, 2.0);
        assert_close(comparison.total.loss, 0.05);
    }

    /// Found by the fuzz target `access_log`: a target line dated 1998 among lines of 2026
    /// asked for 15 million one-minute rows and ran out of memory.
    #[test]
    fn a_span_of_too_many_windows_is_refused_before_any_row_is_made() {
        let mut tally = tally(60);
        fill(&mut tally, Side::Online, "11:08", 10);
        tally.record(Side::Target, ts("1998-06-17T04:08:45Z"));
        let err = compare(&tally, 1.0, false).unwrap_err();
        assert_eq!(err.windows, 14_892_901);
        assert_eq!(
            (err.first, err.last),
            (ts("1998-06-17T04:08:00Z"), ts("2026-10-10T11:08:00Z"))
        );
        let message = err.to_string();
        for flag in ["--from", "--to", "--window"] {
            assert!(message.contains(flag), "{message}");
        }

        // Exactly MAX_WINDOWS windows are still shown.
        let mut tally = self::tally(1);
        let start = ts("2026-10-10T00:00:00Z").as_second();
        for second in [start, start + MAX_WINDOWS as i64 - 1] {
            tally.record(Side::Online, jiff::Timestamp::from_second(second).unwrap());
        }
        assert_eq!(
            compare(&tally, 1.0, false).unwrap().rows.len() as u64,
            MAX_WINDOWS
        );
        tally.record(
            Side::Target,
            jiff::Timestamp::from_second(start - 1).unwrap(),
        );
        assert!(compare(&tally, 1.0, false).is_err());
    }

    #[test]
    fn nothing_counted_is_an_empty_comparison() {
        let comparison = compare(&tally(60), 1.0, false).unwrap();
        assert!(comparison.rows.is_empty());
        assert_eq!(comparison.total.loss, None);
        assert!(!comparison.has_edges());
    }
}
