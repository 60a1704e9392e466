//! The terminal report: an aligned table `window  online  target  loss`, then the total
//! line `total online=N target=M loss=R`. Pure: a [`Comparison`] in, text out.

use std::fmt::Write as _;

use super::loss::Comparison;
use crate::stats::columns;

/// What marks a window the logs cover only in part.
pub const EDGE_MARK: &str = "(edge)";

/// A loss as printed: four decimals (0.0025 is 0.25 %), `-` for none.
pub fn format_loss(loss: Option<f64>) -> String {
    loss.map_or_else(|| "-".to_owned(), |loss| format!("{loss:.4}"))
}

/// The table and the total line, each line ending in `\n`.
pub fn render(comparison: &Comparison) -> String {
    let header = ["window", "online", "target", "loss"]
        .map(str::to_owned)
        .to_vec();
    let rows: Vec<Vec<String>> = std::iter::once(header)
        .chain(comparison.rows.iter().map(|row| {
            vec![
                comparison.windows.rfc3339(row.start),
                row.online.to_string(),
                row.target.to_string(),
                format_loss(row.loss),
            ]
        }))
        .collect();
    let mut out = String::new();
    let edges = std::iter::once(false).chain(comparison.rows.iter().map(|row| row.edge));
    for (line, edge) in columns::align(&rows, 1).into_iter().zip(edges) {
        out.push_str(&line);
        if edge {
            let _ = write!(out, "  {EDGE_MARK}");
        }
        out.push('\n');
    }
    let total = &comparison.total;
    let _ = writeln!(
        out,
        "total online={} target={} loss={}",
        total.online,
        total.target,
        format_loss(total.loss)
    );
    out
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use jiff::Timestamp;
    use jiff::tz::Offset;

    use super::*;
    use crate::stats::logs::loss::{Row, Total};
    use crate::stats::logs::window::Windows;

    fn row(start: &str, online: u64, target: u64, loss: Option<f64>, edge: bool) -> Row {
        Row {
            start: start.parse::<Timestamp>().unwrap(),
            online,
            target,
            loss,
            edge,
        }
    }

    #[test]
    fn columns_align_and_the_total_comes_last() {
        let comparison = Comparison {
            windows: Windows::new(NonZeroU32::new(60).unwrap(), Offset::from_hours(8).unwrap()),
            rows: vec![
                row("2026-10-10T03:07:00Z", 120, 119, Some(1.0 / 120.0), true),
                row(
                    "2026-10-10T03:08:00Z",
                    178_625,
                    178_175,
                    Some(0.002_519_244),
                    false,
                ),
                row("2026-10-10T03:09:00Z", 0, 3, None, false),
            ],
            total: Total {
                online: 178_625,
                target: 178_175,
                factor: 1.0,
                loss: Some(0.002_519_244),
            },
            edges_counted: false,
        };
        assert_eq!(
            render(&comparison),
            "\
window                     online  target    loss
2026-10-10T11:07:00+08:00     120     119  0.0083  (edge)
2026-10-10T11:08:00+08:00  178625  178175  0.0025
2026-10-10T11:09:00+08:00       0       3       -
total online=178625 target=178175 loss=0.0025
"
        );
    }

    #[test]
    fn losses_print_four_decimals() {
        assert_eq!(format_loss(Some(0.1)), "0.1000");
        assert_eq!(format_loss(Some(-0.05)), "-0.0500");
        assert_eq!(format_loss(None), "-");
    }
}
