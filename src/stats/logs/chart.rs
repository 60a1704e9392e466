//! `--svg`: a chart of a [`Comparison`], readable without the table: requests per window
//! online (× factor) and at the target on the left axis, the loss in percent on the right
//! one, edge windows shaded, a legend. Pure: a comparison in, SVG text out.

use std::fmt::Write as _;

use super::loss::Comparison;
use super::table::format_loss;
use crate::stats::svg::{self, Scale, Swatch, text, thousands};

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 540.0;
/// The plot area.
const LEFT: f64 = 100.0;
const RIGHT: f64 = WIDTH - 90.0;
const TOP: f64 = 70.0;
const BOTTOM: f64 = HEIGHT - 140.0;
/// At most this many labels on the time axis.
const TIME_LABELS: usize = 8;
/// Windows get a marker on each point up to this many.
const MARKERS_UP_TO: usize = 120;

const ONLINE_COLOR: &str = "#1f77b4";
const TARGET_COLOR: &str = "#ff7f0e";
const LOSS_COLOR: &str = "#d62728";
const EDGE_FILL: &str = "#e8e8e8";
const THRESHOLD_COLOR: &str = "#8c1a1a";

/// The chart of `comparison`; `max_loss` (`--max-loss`) is drawn as a line on the loss axis.
pub fn render(comparison: &Comparison, max_loss: Option<f64>) -> String {
    let chart = Chart::new(comparison, max_loss);
    let mut svg = svg::open(WIDTH, HEIGHT);
    chart.titles(&mut svg);
    chart.edges(&mut svg);
    chart.axes(&mut svg);
    chart.series(&mut svg);
    chart.legend(&mut svg);
    svg::close(svg)
}

/// A comparison laid out on the plot area.
struct Chart<'a> {
    comparison: &'a Comparison,
    max_loss: Option<f64>,
    /// Left axis: requests per window.
    requests: Scale,
    /// Right axis: loss in percent.
    loss: Scale,
}

impl<'a> Chart<'a> {
    fn new(comparison: &'a Comparison, max_loss: Option<f64>) -> Chart<'a> {
        let factor = comparison.total.factor;
        let most = comparison
            .rows
            .iter()
            .map(|row| (factor * row.online as f64).max(row.target as f64))
            .fold(0.0, f64::max);
        let losses = comparison
            .rows
            .iter()
            .filter_map(|row| row.loss)
            .chain(max_loss)
            .map(|loss| loss * 100.0);
        let (low, high) = losses.fold((0.0, 0.0), |(low, high): (f64, f64), loss| {
            (low.min(loss), high.max(loss))
        });
        Chart {
            comparison,
            max_loss,
            requests: Scale::new(0.0, most.max(1.0), 1.0),
            // At least 0 to 1 %, so that no loss at all is a flat line at the bottom.
            loss: Scale::new(low, high.max(1.0), 0.0),
        }
    }

    /// The centre of window `i` on the time axis.
    fn x(&self, i: usize) -> f64 {
        LEFT + (i as f64 + 0.5) * self.slot()
    }

    /// The width of one window on the time axis.
    fn slot(&self) -> f64 {
        (RIGHT - LEFT) / self.comparison.rows.len().max(1) as f64
    }

    /// The windows' length as `--window` writes it: `1m`, `10s`, `1h`.
    fn window_length(&self) -> String {
        let seconds = self.comparison.windows.seconds().unsigned_abs();
        humantime::format_duration(std::time::Duration::from_secs(seconds)).to_string()
    }

    fn titles(&self, svg: &mut String) {
        let comparison = self.comparison;
        let total = &comparison.total;
        let window = self.window_length();
        let counted = if comparison.edges_counted {
            "all windows"
        } else {
            "complete windows"
        };
        let loss = total
            .loss
            .map_or_else(|| "-".to_owned(), |loss| format!("{:.2} %", loss * 100.0));
        text(
            svg,
            WIDTH / 2.0,
            28.0,
            "middle",
            "font-size=\"17\" font-weight=\"bold\"",
            &format!("Requests per {window} window, online and at the target, and the loss"),
        );
        text(
            svg,
            WIDTH / 2.0,
            50.0,
            "middle",
            "",
            &format!(
                "total of {counted}: online {} × factor {}, target {}, loss {loss} ({})",
                thousands(total.online),
                total.factor,
                thousands(total.target),
                format_loss(total.loss),
            ),
        );
    }

    /// Shades the windows the logs cover only in part.
    fn edges(&self, svg: &mut String) {
        for (i, row) in self.comparison.rows.iter().enumerate() {
            if row.edge {
                let _ = writeln!(
                    svg,
                    r#"<rect x="{:.1}" y="{TOP}" width="{:.1}" height="{}" fill="{EDGE_FILL}"/>"#,
                    LEFT + i as f64 * self.slot(),
                    self.slot(),
                    BOTTOM - TOP
                );
            }
        }
    }

    fn axes(&self, svg: &mut String) {
        // Grid and the left axis (requests).
        for tick in self.requests.ticks() {
            let y = y(&self.requests, tick);
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}" stroke="#dddddd"/>"##
            );
            text(svg, LEFT - 8.0, y + 4.0, "end", "", &thousands(tick as u64));
        }
        // The right axis (loss, %).
        for tick in self.loss.ticks() {
            let y = y(&self.loss, tick);
            let _ = writeln!(
                svg,
                r#"<line x1="{RIGHT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{LOSS_COLOR}"/>"#,
                RIGHT + 5.0
            );
            let label = format!("{tick:.*}", self.loss.decimals());
            text(
                svg,
                RIGHT + 8.0,
                y + 4.0,
                "start",
                &format!("fill=\"{LOSS_COLOR}\""),
                &label,
            );
        }
        let _ = writeln!(
            svg,
            r#"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="black"/>"#,
            RIGHT - LEFT,
            BOTTOM - TOP
        );
        // The time axis.
        let rows = &self.comparison.rows;
        let every = rows.len().div_ceil(TIME_LABELS).max(1);
        let format = self.time_format();
        for (i, row) in rows.iter().enumerate().step_by(every) {
            let x = self.x(i);
            let _ = writeln!(
                svg,
                r#"<line x1="{x:.1}" y1="{BOTTOM}" x2="{x:.1}" y2="{:.1}" stroke="black"/>"#,
                BOTTOM + 5.0
            );
            let label = self.comparison.windows.format(row.start, format);
            text(svg, x, BOTTOM + 20.0, "middle", "", &label);
        }
        // Axis titles.
        let middle = (TOP + BOTTOM) / 2.0;
        let window = self.window_length();
        let _ = writeln!(
            svg,
            r#"<text x="30" y="{middle}" text-anchor="middle" transform="rotate(-90 30 {middle})">requests per window ({window})</text>"#
        );
        let right = WIDTH - 22.0;
        let _ = writeln!(
            svg,
            r#"<text x="{right}" y="{middle}" text-anchor="middle" fill="{LOSS_COLOR}" transform="rotate(90 {right} {middle})">loss (%) = 1 − target / (factor × online)</text>"#
        );
        let first = rows
            .first()
            .map(|row| self.comparison.windows.format(row.start, "%Y-%m-%d"));
        let offset = self
            .comparison
            .windows
            .format(jiff::Timestamp::UNIX_EPOCH, "%:z");
        text(
            svg,
            (LEFT + RIGHT) / 2.0,
            BOTTOM + 44.0,
            "middle",
            "",
            &format!(
                "window start ({}UTC{offset})",
                first.map(|day| format!("from {day}, ")).unwrap_or_default()
            ),
        );
    }

    /// How the time axis labels a window start: the time, to the second if windows are not
    /// whole minutes; with the date when the windows span more than a day.
    fn time_format(&self) -> &'static str {
        let seconds = self.comparison.windows.seconds();
        let span = seconds * self.comparison.rows.len() as i64;
        match (seconds % 86_400 == 0, span > 86_400, seconds % 60 == 0) {
            (true, _, _) => "%Y-%m-%d",
            (false, true, _) => "%m-%d %H:%M",
            (false, false, true) => "%H:%M",
            (false, false, false) => "%H:%M:%S",
        }
    }

    fn series(&self, svg: &mut String) {
        let factor = self.comparison.total.factor;
        let rows = &self.comparison.rows;
        let online: Vec<Option<f64>> = rows
            .iter()
            .map(|r| Some(factor * r.online as f64))
            .collect();
        let target: Vec<Option<f64>> = rows.iter().map(|r| Some(r.target as f64)).collect();
        let loss: Vec<Option<f64>> = rows.iter().map(|r| r.loss.map(|l| l * 100.0)).collect();
        // Online's markers are larger, so that they still show under equal target counts.
        self.line(svg, &online, &self.requests, ONLINE_COLOR, "", 5.0);
        self.line(svg, &target, &self.requests, TARGET_COLOR, "", 3.0);
        if let Some(max_loss) = self.max_loss {
            let y = y(&self.loss, max_loss * 100.0);
            let _ = writeln!(
                svg,
                r#"<line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}" stroke="{THRESHOLD_COLOR}" stroke-width="1.5" stroke-dasharray="2 4"/>"#
            );
        }
        self.line(
            svg,
            &loss,
            &self.loss,
            LOSS_COLOR,
            r#" stroke-dasharray="6 3""#,
            3.5,
        );
    }

    /// A polyline through `values` on `scale`, broken where a value is missing, with
    /// markers of `radius` when there are few windows.
    fn line(
        &self,
        svg: &mut String,
        values: &[Option<f64>],
        scale: &Scale,
        color: &str,
        style: &str,
        radius: f64,
    ) {
        let mut path = String::new();
        let mut pen_down = false;
        for (i, value) in values.iter().enumerate() {
            match value {
                Some(value) => {
                    let command = if pen_down { 'L' } else { 'M' };
                    let _ = write!(path, "{command}{:.1} {:.1} ", self.x(i), y(scale, *value));
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let _ = writeln!(
            svg,
            r#"<path d="{}" fill="none" stroke="{color}" stroke-width="2"{style}/>"#,
            path.trim_end()
        );
        if values.len() <= MARKERS_UP_TO {
            for (i, value) in values.iter().enumerate() {
                if let Some(value) = value {
                    let _ = writeln!(
                        svg,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="{radius}" fill="{color}"/>"#,
                        self.x(i),
                        y(scale, *value)
                    );
                }
            }
        }
    }

    fn legend(&self, svg: &mut String) {
        let factor = self.comparison.total.factor;
        let online = if factor == 1.0 {
            "online requests".to_owned()
        } else {
            format!("online requests × {factor}")
        };
        let edge = if self.comparison.edges_counted {
            "edge window (logs cover part; counted: --edges)"
        } else {
            "edge window (logs cover part; not in total)"
        };
        let mut entries: Vec<(String, Swatch)> = vec![
            (online, Swatch::Line(ONLINE_COLOR, "")),
            ("target requests".to_owned(), Swatch::Line(TARGET_COLOR, "")),
            (
                "loss, right axis".to_owned(),
                Swatch::Line(LOSS_COLOR, r#" stroke-dasharray="6 3""#),
            ),
        ];
        if let Some(max_loss) = self.max_loss {
            entries.push((
                format!("--max-loss {} %, right axis", max_loss * 100.0),
                Swatch::Line(THRESHOLD_COLOR, r#" stroke-dasharray="2 4""#),
            ));
        }
        if self.comparison.has_edges() {
            entries.push((edge.to_owned(), Swatch::Box(EDGE_FILL)));
        }
        svg::legend(svg, &entries, LEFT, RIGHT, BOTTOM + 74.0);
    }
}

/// Where `value` on `scale` is on the plot's height.
fn y(scale: &Scale, value: f64) -> f64 {
    BOTTOM - scale.fraction(value) * (BOTTOM - TOP)
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use jiff::tz::Offset;

    use super::*;
    use crate::stats::logs::loss::{Row, Total};
    use crate::stats::logs::window::Windows;

    fn comparison() -> Comparison {
        let row = |minute: u32, online, target, loss, edge| Row {
            start: format!("2026-10-10T03:{minute:02}:00Z").parse().unwrap(),
            online,
            target,
            loss,
            edge,
        };
        Comparison {
            windows: Windows::new(NonZeroU32::new(60).unwrap(), Offset::from_hours(8).unwrap()),
            rows: vec![
                row(7, 50, 49, Some(0.02), true),
                row(8, 178_625, 178_175, Some(0.0025), false),
                row(9, 0, 0, None, false),
                row(10, 178_000, 177_000, Some(0.0056), false),
            ],
            total: Total {
                online: 356_625,
                target: 355_175,
                factor: 1.0,
                loss: Some(0.0041),
            },
            edges_counted: false,
        }
    }

    #[test]
    fn the_chart_names_its_axes_units_and_series() {
        let svg = render(&comparison(), Some(0.01));
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{svg}"
        );
        assert!(svg.ends_with("</svg>\n"));
        for label in [
            "requests per window (1m)",
            "loss (%)",
            "window start (from 2026-10-10, UTC+08:00)",
            "online requests",
            "target requests",
            "loss, right axis",
            "--max-loss 1 %, right axis",
            "edge window (logs cover part; not in total)",
            "online 356,625 × factor 1, target 355,175, loss 0.41 %",
            ">11:08<",
        ] {
            assert!(svg.contains(label), "no {label:?} in:\n{svg}");
        }
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }

    #[test]
    fn a_window_without_online_requests_breaks_the_loss_line() {
        let svg = render(&comparison(), None);
        let loss_path = svg
            .lines()
            .find(|line| line.starts_with("<path") && line.contains(LOSS_COLOR))
            .unwrap();
        assert_eq!(loss_path.matches('M').count(), 2, "{loss_path}");
        assert!(!svg.contains("--max-loss"));
    }
}
