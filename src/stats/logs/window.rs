//! How time is cut into windows ([`Windows`]) and which requests count at all ([`Span`],
//! `--from`/`--to`). Pure arithmetic on instants.

use std::num::NonZeroU32;

use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};

/// Windows of a fixed length, aligned on midnight at one UTC offset (so that `1h` windows
/// start on the hour and `1d` windows at midnight in the logs' own time zone). A window is
/// named by its index: the number of whole windows since 1970-01-01T00:00 at that offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows {
    seconds: i64,
    offset: Offset,
}

impl Windows {
    pub fn new(length: NonZeroU32, offset: Offset) -> Windows {
        Windows {
            seconds: i64::from(length.get()),
            offset,
        }
    }

    /// The length of a window, in seconds.
    pub fn seconds(&self) -> i64 {
        self.seconds
    }

    /// The window `at` falls in.
    pub fn index(&self, at: Timestamp) -> i64 {
        (floor_second(at) + i64::from(self.offset.seconds())).div_euclid(self.seconds)
    }

    /// The second window `index` starts at, since the Unix epoch.
    pub fn start_second(&self, index: i64) -> i64 {
        index * self.seconds - i64::from(self.offset.seconds())
    }

    /// When window `index` starts.
    pub fn start(&self, index: i64) -> Timestamp {
        let second = self.start_second(index);
        // Indexes come from `index` of a valid timestamp, so the start is one too (at most
        // one window earlier than that timestamp); saturate rather than fail.
        Timestamp::from_second(second).unwrap_or(if second < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        })
    }

    /// `at` in the windows' offset, formatted with strftime's `format`.
    pub fn format(&self, at: Timestamp, format: &str) -> String {
        let zoned = at.to_zoned_datetime(TimeZone::fixed(self.offset));
        // The formats are ours and every field they name is set: this cannot fail.
        jiff::fmt::strtime::format(format, &zoned).unwrap_or_else(|_| at.to_string())
    }

    /// `at` as RFC 3339, in the windows' offset (`2026-10-10T11:08:00+08:00`).
    pub fn rfc3339(&self, at: Timestamp) -> String {
        self.format(at, "%Y-%m-%dT%H:%M:%S%:z")
    }
}

/// The whole second `at` falls in, since the Unix epoch (rounded down, also before 1970).
pub fn floor_second(at: Timestamp) -> i64 {
    at.as_second() - i64::from(at.subsec_nanosecond() < 0)
}

/// The requests that count: from `--from` (inclusive) to `--to` (exclusive), either open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

impl Span {
    pub fn contains(&self, at: Timestamp) -> bool {
        self.from.is_none_or(|from| at >= from) && self.to.is_none_or(|to| at < to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn windows(seconds: u32, offset_hours: i8) -> Windows {
        Windows::new(
            NonZeroU32::new(seconds).unwrap(),
            Offset::from_hours(offset_hours).unwrap(),
        )
    }

    #[test]
    fn a_window_holds_its_start_and_not_its_end() {
        let minutes = windows(60, 0);
        let start = ts("2026-10-10T11:08:00Z");
        let i = minutes.index(start);
        assert_eq!(minutes.start(i), start);
        assert_eq!(minutes.index(ts("2026-10-10T11:08:59.999Z")), i);
        assert_eq!(minutes.index(ts("2026-10-10T11:09:00Z")), i + 1);
        assert_eq!(minutes.index(ts("2026-10-10T11:07:59Z")), i - 1);
    }

    #[test]
    fn windows_align_on_the_offsets_midnight() {
        let days = windows(86_400, 8);
        let i = days.index(ts("2026-10-10T15:59:59Z"));
        assert_eq!(
            days.start(i),
            ts("2026-10-09T16:00:00Z"),
            "midnight at +08:00"
        );
        assert_eq!(days.index(ts("2026-10-10T16:00:00Z")), i + 1);

        let hours = windows(3600, 0);
        let half = Windows::new(
            NonZeroU32::new(3600).unwrap(),
            Offset::from_seconds(19_800).unwrap(),
        );
        let at = ts("2026-10-10T13:55:36Z");
        assert_eq!(hours.start(hours.index(at)), ts("2026-10-10T13:00:00Z"));
        assert_eq!(
            half.start(half.index(at)),
            ts("2026-10-10T13:30:00Z"),
            "on the hour at +05:30"
        );
    }

    #[test]
    fn before_1970_still_counts_down() {
        let minutes = windows(60, 0);
        assert_eq!(minutes.index(ts("1969-12-31T23:59:59Z")), -1);
        assert_eq!(minutes.start(-1), ts("1969-12-31T23:59:00Z"));
    }

    #[test]
    fn starts_are_shown_in_the_windows_offset() {
        let at = ts("2026-10-10T03:08:00Z");
        assert_eq!(windows(60, 8).rfc3339(at), "2026-10-10T11:08:00+08:00");
        assert_eq!(windows(60, 0).rfc3339(at), "2026-10-10T03:08:00+00:00");
        assert_eq!(windows(60, -5).format(at, "%H:%M"), "22:08");
    }

    #[test]
    fn seconds_round_down() {
        assert_eq!(floor_second(ts("1970-01-01T00:00:01.5Z")), 1);
        assert_eq!(floor_second(ts("1969-12-31T23:59:59.5Z")), -1);
        assert_eq!(floor_second(ts("1970-01-01T00:00:00Z")), 0);
    }

    #[test]
    fn span_is_half_open() {
        let span = Span {
            from: Some(ts("2026-10-10T11:08:00Z")),
            to: Some(ts("2026-10-10T11:09:00Z")),
        };
        assert!(span.contains(ts("2026-10-10T11:08:00Z")));
        assert!(span.contains(ts("2026-10-10T11:08:59Z")));
        assert!(!span.contains(ts("2026-10-10T11:09:00Z")));
        assert!(!span.contains(ts("2026-10-10T11:07:59Z")));
        assert!(Span::default().contains(ts("1970-01-01T00:00:00Z")));
    }
}
