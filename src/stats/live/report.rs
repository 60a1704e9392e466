//! How `stats live` prints an [`Interval`]: an aligned line under a header, or a JSON Lines
//! record (`interval` per interval, `summary` at the end) in the `{"type","data"}` envelope.
//! Pure.

use serde::Serialize;

use super::rates::Interval;
use crate::stats::logs::format_loss;

/// The columns of the text lines.
pub fn header() -> String {
    format!(
        "{:<20}  {:>10}  {:>10}  {:>10}  {:>9}  {:>7}  {:>6}  {:>9}  {:>10}  {:>8}\n",
        "time",
        "sessions/s",
        "requests/s",
        "replies/s",
        "sessions",
        "lost",
        "loss",
        "requests",
        "unanswered",
        "req loss"
    )
}

/// One line: `time` (RFC 3339) and the interval's numbers.
pub fn line(label: &str, interval: &Interval) -> String {
    format!(
        "{label:<20}  {:>10.1}  {:>10.1}  {:>10.1}  {:>9}  {:>7}  {:>6}  {:>9}  {:>10}  {:>8}\n",
        interval.sessions_per_second,
        interval.requests_per_second,
        interval.replies_per_second,
        interval.sessions,
        interval.sessions_lost,
        format_loss(interval.loss),
        interval.requests,
        interval.requests_unanswered,
        format_loss(interval.request_loss)
    )
}

#[derive(Serialize)]
#[serde(tag = "type", content = "data", rename_all = "lowercase")]
enum Record<'a> {
    Interval {
        /// When the interval ended, RFC 3339.
        time: &'a str,
        #[serde(flatten)]
        numbers: &'a Interval,
    },
    Summary {
        #[serde(flatten)]
        numbers: &'a Interval,
    },
}

/// The JSON Lines record of an interval that ended at `time`.
pub fn interval_json(time: &str, interval: &Interval) -> String {
    to_line(&Record::Interval {
        time,
        numbers: interval,
    })
}

/// The JSON Lines record of the whole run.
pub fn summary_json(run: &Interval) -> String {
    to_line(&Record::Summary { numbers: run })
}

fn to_line(record: &Record<'_>) -> String {
    // Strings, integers and finite floats: serializing cannot fail.
    let mut line = serde_json::to_string(record).unwrap_or_default();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers() -> Interval {
        Interval {
            seconds: 5.0,
            sessions_per_second: 10.0,
            requests_per_second: 100.5,
            replies_per_second: 201.0,
            sessions: 160,
            sessions_lost: 12,
            loss: Some(0.075),
            requests: 1000,
            requests_unanswered: 15,
            request_loss: Some(0.015),
        }
    }

    #[test]
    fn lines_align_under_the_header() {
        let header = header();
        let line = line("2026-12-02T01:40:05Z", &numbers());
        assert_eq!(
            header,
            "time                  sessions/s  requests/s   replies/s   sessions     lost    loss   \
             requests  unanswered  req loss\n"
        );
        assert_eq!(
            line,
            "2026-12-02T01:40:05Z        10.0       100.5       201.0        160       12  0.0750       \
             1000          15    0.0150\n"
        );
    }

    #[test]
    fn json_records_use_the_envelope() {
        assert_eq!(
            interval_json("2026-12-02T01:40:05Z", &numbers()),
            "{\"type\":\"interval\",\"data\":{\"time\":\"2026-12-02T01:40:05Z\",\"seconds\":5.0,\
             \"sessions_per_second\":10.0,\"requests_per_second\":100.5,\"replies_per_second\":201.0,\
             \"sessions\":160,\"sessions_lost\":12,\"loss\":0.075,\"requests\":1000,\
             \"requests_unanswered\":15,\"request_loss\":0.015}}\n"
        );
        let summary = summary_json(&Interval {
            request_loss: None,
            ..numbers()
        });
        assert!(
            summary.starts_with("{\"type\":\"summary\",\"data\":{\"seconds\":5.0,"),
            "{summary}"
        );
        assert!(summary.ends_with("\"request_loss\":null}}\n"), "{summary}");
    }
}
