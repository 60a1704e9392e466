//! `--svg`: both sides' distributions of the time to the first reply byte on one chart, as
//! cumulative curves over a logarithmic time axis, with their medians marked and a legend.
//! Pure: latencies in, SVG text out.

use std::fmt::Write as _;

use crate::stats::svg::{self, Scale, Swatch, text, thousands};

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 540.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = WIDTH - 40.0;
const TOP: f64 = 70.0;
const BOTTOM: f64 = HEIGHT - 120.0;
/// Points of a curve at most (quantiles of the latencies beyond).
const POINTS: usize = 400;

const ONLINE_COLOR: &str = "#1f77b4";
const TARGET_COLOR: &str = "#ff7f0e";

/// The chart of the matched requests' first-byte latencies (µs), online and target.
pub fn render(online: &[u64], target: &[u64]) -> String {
    let (mut online, mut target) = (online.to_vec(), target.to_vec());
    online.sort_unstable();
    target.sort_unstable();
    let axis = LogAxis::covering(online.iter().chain(&target).copied());
    let mut svg = svg::open(WIDTH, HEIGHT);
    text(
        &mut svg,
        WIDTH / 2.0,
        28.0,
        "middle",
        "font-size=\"17\" font-weight=\"bold\"",
        "Time to the first reply byte, online and at the target",
    );
    let median = |values: &[u64]| {
        values
            .get(values.len().saturating_sub(1) / 2)
            .map_or_else(|| "-".to_owned(), |v| micros(*v))
    };
    text(
        &mut svg,
        WIDTH / 2.0,
        50.0,
        "middle",
        "",
        &format!(
            "{} matched requests answered on both sides; median online {}, target {}",
            thousands(online.len() as u64),
            median(&online),
            median(&target)
        ),
    );
    let share = Scale::new(0.0, 100.0, 1.0);
    let y = |percent: f64| BOTTOM - share.fraction(percent) * (BOTTOM - TOP);
    for tick in share.ticks() {
        let at = y(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{at:.1}" x2="{RIGHT}" y2="{at:.1}" stroke="#dddddd"/>"##
        );
        text(
            &mut svg,
            LEFT - 8.0,
            at + 4.0,
            "end",
            "",
            &format!("{tick:.0} %"),
        );
    }
    for decade in axis.decades() {
        let x = axis.x(10f64.powi(decade));
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{BOTTOM}" stroke="#dddddd"/>"##
        );
        text(
            &mut svg,
            x,
            BOTTOM + 20.0,
            "middle",
            "",
            &micros(10u64.pow(decade.max(0) as u32)),
        );
    }
    let _ = writeln!(
        svg,
        r#"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="black"/>"#,
        RIGHT - LEFT,
        BOTTOM - TOP
    );
    let middle = (TOP + BOTTOM) / 2.0;
    let _ = writeln!(
        svg,
        r#"<text x="28" y="{middle}" text-anchor="middle" transform="rotate(-90 28 {middle})">requests answered within (%)</text>"#
    );
    text(
        &mut svg,
        (LEFT + RIGHT) / 2.0,
        BOTTOM + 44.0,
        "middle",
        "",
        "time from the request's first byte to the reply's first byte (log scale)",
    );
    for (values, color) in [(&online, ONLINE_COLOR), (&target, TARGET_COLOR)] {
        curve(&mut svg, values, &axis, &y, color);
    }
    let entries = [
        (
            format!("online ({})", thousands(online.len() as u64)),
            Swatch::Line(ONLINE_COLOR, ""),
        ),
        (
            format!("target ({})", thousands(target.len() as u64)),
            Swatch::Line(TARGET_COLOR, ""),
        ),
    ];
    svg::legend(&mut svg, &entries, LEFT, RIGHT, BOTTOM + 74.0);
    svg::close(svg)
}

/// A cumulative step curve of the sorted `values`, with its median marked.
fn curve(svg: &mut String, values: &[u64], axis: &LogAxis, y: &dyn Fn(f64) -> f64, color: &str) {
    if values.is_empty() {
        return;
    }
    let n = values.len();
    let step = n.div_ceil(POINTS).max(1);
    let mut path = format!("M{:.1} {:.1} ", axis.x(values[0] as f64), y(0.0));
    let mut previous = y(0.0);
    for index in (0..n).step_by(step).chain(std::iter::once(n - 1)) {
        let x = axis.x(values[index] as f64);
        let share = y((index + 1) as f64 / n as f64 * 100.0);
        let _ = write!(path, "L{x:.1} {previous:.1} L{x:.1} {share:.1} ");
        previous = share;
    }
    let _ = writeln!(
        svg,
        r#"<path d="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
        path.trim_end()
    );
    let median = values[(n - 1) / 2];
    let _ = writeln!(
        svg,
        r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{color}"/>"#,
        axis.x(median as f64),
        y(50.0)
    );
}

/// A logarithmic axis over whole decades of µs.
struct LogAxis {
    low: i32,
    high: i32,
}

impl LogAxis {
    /// The decades that cover `values` (at least one; 1 µs when there are none).
    fn covering(values: impl Iterator<Item = u64>) -> LogAxis {
        let (min, max) = values.fold((u64::MAX, 0), |(min, max), v| {
            (min.min(v.max(1)), max.max(v.max(1)))
        });
        if max == 0 {
            return LogAxis { low: 0, high: 1 };
        }
        let low = (min as f64).log10().floor() as i32;
        let high = ((max as f64).log10().ceil() as i32).max(low + 1);
        LogAxis { low, high }
    }

    fn decades(&self) -> impl Iterator<Item = i32> {
        self.low..=self.high
    }

    fn x(&self, us: f64) -> f64 {
        let decade = us.max(1.0).log10();
        LEFT + (decade - f64::from(self.low)) / f64::from(self.high - self.low) * (RIGHT - LEFT)
    }
}

/// µs as a short duration: `500 µs`, `20 ms`, `1.5 s`.
fn micros(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => trim(us as f64 / 1e3, "ms"),
        _ => trim(us as f64 / 1e6, "s"),
    }
}

fn trim(value: f64, unit: &str) -> String {
    let text = format!("{value:.1}");
    format!("{} {unit}", text.strip_suffix(".0").unwrap_or(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_has_both_curves_their_axis_and_legend() {
        let online: Vec<u64> = (0..100).map(|i| 200 + i).collect();
        let target: Vec<u64> = (0..100).map(|i| 20_200 + i).collect();
        let svg = render(&online, &target);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        for part in [
            "Time to the first reply byte",
            "median online 249 µs, target 20.2 ms",
            "online (100)",
            "target (100)",
            ">100 µs<",
            ">100 ms<",
            "(log scale)",
        ] {
            assert!(svg.contains(part), "no {part:?} in:\n{svg}");
        }
        assert_eq!(svg.matches("<path").count(), 2);
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }

    #[test]
    fn no_latencies_still_make_a_chart() {
        let svg = render(&[], &[]);
        assert!(svg.contains("0 matched requests") && !svg.contains("<path"));
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(micros(450), "450 µs");
        assert_eq!(micros(20_000), "20 ms");
        assert_eq!(micros(1_500_000), "1.5 s");
    }
}
