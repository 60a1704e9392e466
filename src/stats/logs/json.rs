//! `--json`: JSON Lines in the `{"type","data"}` envelope, one `window` record per window,
//! then one `total` record (keys documented in docs/measuring-loss.md). Pure.

use serde::Serialize;

use super::loss::Comparison;

/// One line of output.
#[derive(Serialize)]
#[serde(tag = "type", content = "data", rename_all = "lowercase")]
enum Record {
    Window {
        /// RFC 3339, in the logs' offset.
        start: String,
        online: u64,
        target: u64,
        loss: Option<f64>,
    },
    Total {
        online: u64,
        target: u64,
        factor: f64,
        loss: Option<f64>,
        /// Lines of both sides with no readable time.
        unparsed: u64,
    },
}

/// The records of `comparison`, each line ending in `\n`.
pub fn render(comparison: &Comparison, unparsed: u64) -> String {
    let windows = comparison.rows.iter().map(|row| Record::Window {
        start: comparison.windows.rfc3339(row.start),
        online: row.online,
        target: row.target,
        loss: row.loss,
    });
    let total = &comparison.total;
    let total = Record::Total {
        online: total.online,
        target: total.target,
        factor: total.factor,
        loss: total.loss,
        unparsed,
    };
    windows
        .chain(std::iter::once(total))
        .map(|record| {
            // Plain data (strings, integers, finite floats): serializing cannot fail.
            let mut line = serde_json::to_string(&record).unwrap_or_default();
            line.push('\n');
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use jiff::tz::Offset;

    use super::*;
    use crate::stats::logs::loss::{Row, Total};
    use crate::stats::logs::window::Windows;

    #[test]
    fn records_have_exactly_the_documented_keys() {
        let comparison = Comparison {
            windows: Windows::new(NonZeroU32::new(60).unwrap(), Offset::UTC),
            rows: vec![
                Row {
                    start: "2026-10-10T11:08:00Z".parse().unwrap(),
                    online: 178_625,
                    target: 178_175,
                    loss: Some(0.0025),
                    edge: false,
                },
                Row {
                    start: "2026-10-10T11:09:00Z".parse().unwrap(),
                    online: 0,
                    target: 0,
                    loss: None,
                    edge: true,
                },
            ],
            total: Total {
                online: 178_625,
                target: 178_175,
                factor: 2.0,
                loss: Some(0.0025),
            },
            edges_counted: false,
        };
        assert_eq!(
            render(&comparison, 3),
            r#"{"type":"window","data":{"start":"2026-10-10T11:08:00+00:00","online":178625,"target":178175,"loss":0.0025}}
{"type":"window","data":{"start":"2026-10-10T11:09:00+00:00","online":0,"target":0,"loss":null}}
{"type":"total","data":{"online":178625,"target":178175,"factor":2.0,"loss":0.0025,"unparsed":3}}
"#
        );
    }
}
