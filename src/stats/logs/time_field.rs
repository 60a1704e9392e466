//! Where a log line says when its request happened, and how to read it: [`TimeField`].
//!
//! The default is the `[10/Oct/2026:13:55:36 +0000]` field of nginx's and Apache's common
//! and combined formats; `--time-field`/`--time-format` describe any other. Pure: bytes in,
//! an instant out, or a [`LineError`] saying why not.

use std::fmt;
use std::num::NonZeroUsize;

use jiff::fmt::strtime::BrokenDownTime;
use jiff::tz::Offset;
use jiff::{Timestamp, civil};

/// The time format of the common and combined log formats.
pub const DEFAULT_FORMAT: &str = "%d/%b/%Y:%H:%M:%S %z";

/// When a request happened, and the UTC offset its log wrote the time in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub at: Timestamp,
    pub offset: Offset,
}

/// Where the time of a line starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    /// Just after the first `[`.
    Bracket,
    /// At the start of this space-separated field, counted from 1.
    Field(NonZeroUsize),
}

/// How to find and read the time of a log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeField {
    start: Start,
    format: String,
}

/// Why `--time-format` cannot describe a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    format: String,
    reason: String,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "--time-format `{}` does not describe a date and time to the second: {}",
            self.format, self.reason
        )
    }
}

impl std::error::Error for FormatError {}

/// Why a line has no time that can be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// No `[` in the line.
    NoBracket,
    /// The line has fewer space-separated fields than `--time-field` names.
    TooFewFields { wanted: usize, found: usize },
    /// The text where the time should be does not match the format.
    BadTime { format: String, reason: String },
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::NoBracket => write!(f, "no `[` opens a time field"),
            LineError::TooFewFields { wanted, found } => write!(
                f,
                "the time should be field {wanted} but the line has {found} fields"
            ),
            LineError::BadTime { format, reason } => {
                write!(f, "the time does not match `{format}`: {reason}")
            }
        }
    }
}

impl std::error::Error for LineError {}

impl Default for TimeField {
    fn default() -> Self {
        TimeField {
            start: Start::Bracket,
            format: DEFAULT_FORMAT.to_owned(),
        }
    }
}

impl TimeField {
    /// The time field `--time-field`/`--time-format` describe (the defaults where `None`).
    /// The format must write and read back a full date and time to the second.
    pub fn new(
        field: Option<NonZeroUsize>,
        format: Option<&str>,
    ) -> Result<TimeField, FormatError> {
        let format = format.unwrap_or(DEFAULT_FORMAT);
        check_round_trip(format)?;
        Ok(TimeField {
            start: field.map_or(Start::Bracket, Start::Field),
            format: format.to_owned(),
        })
    }

    /// The time of `line`.
    pub fn read(&self, line: &[u8]) -> Result<Stamp, LineError> {
        let text = self.locate(line)?;
        parse(&self.format, text).map_err(|err| LineError::BadTime {
            format: self.format.clone(),
            reason: err.to_string(),
        })
    }

    /// The bytes from where the time starts to the end of the line.
    fn locate<'a>(&self, line: &'a [u8]) -> Result<&'a [u8], LineError> {
        match self.start {
            Start::Bracket => line
                .iter()
                .position(|&b| b == b'[')
                .map(|at| &line[at + 1..])
                .ok_or(LineError::NoBracket),
            Start::Field(n) => {
                let Some(start) = field_starts(line).nth(n.get() - 1) else {
                    return Err(LineError::TooFewFields {
                        wanted: n.get(),
                        found: field_starts(line).count(),
                    });
                };
                let skip = usize::from(matches!(line[start], b'[' | b'"'));
                Ok(&line[start + skip..])
            }
        }
    }
}

/// Where each space-separated field of `line` starts (runs of spaces separate one field
/// from the next).
fn field_starts(line: &[u8]) -> impl Iterator<Item = usize> + '_ {
    (0..line.len()).filter(|&i| line[i] != b' ' && (i == 0 || line[i - 1] == b' '))
}

/// Reads a time in `format` from the start of `text` (what follows it is ignored). Without
/// an offset in the format, the time is UTC.
fn parse(format: &str, text: &[u8]) -> Result<Stamp, jiff::Error> {
    let (time, _) = BrokenDownTime::parse_prefix(format, text)?;
    let offset = time.offset().unwrap_or(Offset::UTC);
    let at = match time.timestamp() {
        Some(at) => at,
        None => offset.to_timestamp(time.to_datetime()?)?,
    };
    Ok(Stamp { at, offset })
}

/// Fails unless a time written in `format` reads back as the same second.
fn check_round_trip(format: &str) -> Result<(), FormatError> {
    let error = |reason: String| FormatError {
        format: format.to_owned(),
        reason,
    };
    let sample = civil::date(2026, 10, 10)
        .at(13, 55, 36, 0)
        .to_zoned_datetime(jiff::tz::TimeZone::fixed(Offset::UTC))
        .map_err(|err| error(err.to_string()))?;
    let written =
        jiff::fmt::strtime::format(format, &sample).map_err(|err| error(err.to_string()))?;
    let read = parse(format, written.as_bytes()).map_err(|err| error(err.to_string()))?;
    if read.at != sample.timestamp() {
        return Err(error(format!(
            "`{written}` reads back as {}, not {}",
            read.at,
            sample.timestamp()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMBINED: &str = r#"203.0.113.7 - - [10/Oct/2026:13:55:36 +0000] "GET /a?b=[1] HTTP/1.1" 200 2326 "http://example.com/" "curl/8.0""#;
    const COMMON: &str =
        r#"127.0.0.1 - frank [10/Oct/2026:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#;

    fn utc(y: i16, mo: i8, d: i8, h: i8, mi: i8, s: i8) -> Timestamp {
        civil::date(y, mo, d)
            .at(h, mi, s, 0)
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .unwrap()
            .timestamp()
    }

    fn read(line: &str) -> Result<Stamp, LineError> {
        TimeField::default().read(line.as_bytes())
    }

    #[test]
    fn reads_the_combined_format() {
        let stamp = read(COMBINED).unwrap();
        assert_eq!(stamp.at, utc(2026, 10, 10, 13, 55, 36));
        assert_eq!(stamp.offset, Offset::UTC);
    }

    #[test]
    fn reads_the_common_format_in_its_time_zone() {
        let stamp = read(COMMON).unwrap();
        assert_eq!(stamp.at, utc(2026, 10, 10, 20, 55, 36));
        assert_eq!(stamp.offset.seconds(), -7 * 3600);
    }

    #[test]
    fn time_zones_name_the_same_instant() {
        let lines = [
            "a - - [10/Oct/2026:13:55:36 +0000] x",
            "a - - [10/Oct/2026:21:55:36 +0800] x",
            "a - - [10/Oct/2026:19:25:36 +0530] x",
            "a - - [10/Oct/2026:03:55:36 -1000] x",
            "a - - [11/Oct/2026:03:40:36 +1345] x",
        ];
        for line in lines {
            assert_eq!(
                read(line).unwrap().at,
                utc(2026, 10, 10, 13, 55, 36),
                "{line}"
            );
        }
        let crossing = read("a - - [01/Jan/2027:01:00:00 +0200] x").unwrap();
        assert_eq!(crossing.at, utc(2026, 12, 31, 23, 0, 0));
    }

    #[test]
    fn reads_every_month() {
        let months = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        for (month, name) in (1..).zip(months) {
            let line = format!("a - - [28/{name}/2026:00:00:00 +0000] \"GET / HTTP/1.1\" 200 1");
            assert_eq!(
                read(&line).unwrap().at,
                utc(2026, month, 28, 0, 0, 0),
                "{line}"
            );
        }
    }

    #[test]
    fn malformed_lines_say_why() {
        assert_eq!(read("no time here"), Err(LineError::NoBracket));
        assert_eq!(read(""), Err(LineError::NoBracket));
        for bad in [
            "a - - [10/Oct/2026:13:55:36] x",       // no offset
            "a - - [10/Okt/2026:13:55:36 +0000] x", // no such month
            "a - - [31/Feb/2026:13:55:36 +0000] x", // no such day
            "a - - [10/Oct/2026:24:55:36 +0000] x", // no such hour
            "a - - [10/Oct/2026:13:55",             // cut off
        ] {
            let err = read(bad).unwrap_err();
            assert!(matches!(err, LineError::BadTime { .. }), "{bad}: {err:?}");
            assert!(err.to_string().contains(DEFAULT_FORMAT), "{err}");
        }
    }

    #[test]
    fn a_field_and_format_describe_other_logs() {
        let iso = TimeField::new(NonZeroUsize::new(4), Some("%Y-%m-%dT%H:%M:%S%:z")).unwrap();
        let stamp = iso
            .read(b"203.0.113.7  GET 200 2026-10-10T21:55:36+08:00 0.004")
            .unwrap();
        assert_eq!(stamp.at, utc(2026, 10, 10, 13, 55, 36));
        assert_eq!(stamp.offset.seconds(), 8 * 3600);
        assert_eq!(
            iso.read(b"203.0.113.7 GET"),
            Err(LineError::TooFewFields {
                wanted: 4,
                found: 2
            })
        );

        let epoch = TimeField::new(NonZeroUsize::new(1), Some("%s%.f")).unwrap();
        let stamp = epoch.read(b"1791640536.123 203.0.113.7 GET /").unwrap();
        assert_eq!(stamp.at.as_second(), 1_791_640_536);

        let zoneless = TimeField::new(NonZeroUsize::new(2), Some("%Y-%m-%d %H:%M:%S")).unwrap();
        let stamp = zoneless.read(b"x \"2026-10-10 13:55:36\" GET").unwrap();
        assert_eq!(
            (stamp.at, stamp.offset),
            (utc(2026, 10, 10, 13, 55, 36), Offset::UTC)
        );

        let bracketed = TimeField::new(None, Some("%Y-%m-%d %H:%M:%S %z")).unwrap();
        let stamp = bracketed
            .read(b"x [2026-10-10 15:55:36 +0200] GET")
            .unwrap();
        assert_eq!(stamp.at, utc(2026, 10, 10, 13, 55, 36));
    }

    proptest::proptest! {
        #[test]
        fn any_line_is_read_or_refused_without_panicking(
            line in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
            field in 1usize..6,
        ) {
            let _ = TimeField::default().read(&line);
            let by_field = TimeField::new(NonZeroUsize::new(field), None).unwrap();
            let _ = by_field.read(&line);
        }

        #[test]
        fn every_second_in_every_offset_reads_back(
            second in 0i64..4_102_444_800, // 1970 to 2100
            offset_minutes in -(14 * 60)..=(14 * 60),
        ) {
            let at = Timestamp::from_second(second).unwrap();
            let offset = Offset::from_seconds(offset_minutes * 60).unwrap();
            let zoned = at.to_zoned_datetime(jiff::tz::TimeZone::fixed(offset));
            let time = jiff::fmt::strtime::format(DEFAULT_FORMAT, &zoned).unwrap();
            let line = format!("203.0.113.7 - - [{time}] \"GET / HTTP/1.1\" 200 3");
            proptest::prop_assert_eq!(read(&line), Ok(Stamp { at, offset }));
        }
    }

    #[test]
    fn a_format_that_cannot_name_a_second_is_refused() {
        for format in ["%H:%M:%S", "%d/%b/%Y", "%d/%b/%Y:%H:%M %z", "%Q"] {
            let err = TimeField::new(None, Some(format)).unwrap_err().to_string();
            assert!(
                err.starts_with("--time-format") && err.contains(format),
                "{err}"
            );
        }
    }
}
