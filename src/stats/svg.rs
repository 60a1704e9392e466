//! The pieces the `stats` charts are drawn with: the document, escaped text, a legend,
//! round linear ticks, and numbers with thousands separators. Pure: strings in, SVG out.

use std::fmt::Write as _;

/// The start of an SVG document of `width` × `height` on a white background.
pub fn open(width: f64, height: f64) -> String {
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="13">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="{width}" height="{height}" fill="white"/>"#
    );
    svg
}

/// The document `svg`, ended.
pub fn close(mut svg: String) -> String {
    svg.push_str("</svg>\n");
    svg
}

/// How a legend entry is drawn.
pub enum Swatch {
    /// A line of this colour and extra style.
    Line(&'static str, &'static str),
    /// A filled box.
    Box(&'static str),
}

/// A legend of `entries`, two a row in two columns from `left` to `right`, the first row
/// at `top`.
pub fn legend(svg: &mut String, entries: &[(String, Swatch)], left: f64, right: f64, top: f64) {
    for (i, (label, swatch)) in entries.iter().enumerate() {
        let x = left + (i % 2) as f64 * (right - left) / 2.0;
        let y = top + (i / 2) as f64 * 22.0;
        match swatch {
            Swatch::Line(color, style) => {
                let _ = writeln!(
                    svg,
                    r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="2"{style}/>"#,
                    x + 30.0
                );
            }
            Swatch::Box(fill) => {
                let _ = writeln!(
                    svg,
                    r##"<rect x="{x}" y="{}" width="30" height="14" fill="{fill}" stroke="#999999"/>"##,
                    y - 7.0
                );
            }
        }
        text(svg, x + 38.0, y + 4.0, "start", "", label);
    }
}

/// A linear axis from `low` to `high` on round ticks.
pub struct Scale {
    low: f64,
    high: f64,
    step: f64,
}

impl Scale {
    /// Ticks at 1, 2 or 5 × 10ⁿ, about five of them, at least `min_step` apart, covering
    /// `low..=high`.
    pub fn new(low: f64, high: f64, min_step: f64) -> Scale {
        let raw = ((high - low) / 5.0).max(f64::MIN_POSITIVE);
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .map(|m| m * magnitude)
            .find(|&step| step >= raw)
            .unwrap_or(10.0 * magnitude)
            .max(min_step);
        Scale {
            low: (low / step).floor() * step,
            high: (high / step).ceil() * step,
            step,
        }
    }

    pub fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        let count = ((self.high - self.low) / self.step).round() as usize;
        (0..=count).map(|k| self.low + k as f64 * self.step)
    }

    /// Decimals that tell the ticks apart.
    pub fn decimals(&self) -> usize {
        (-self.step.log10().floor()).max(0.0) as usize
    }

    /// Where `value` lies between the axis' ends: 0 at `low`, 1 at `high`.
    pub fn fraction(&self, value: f64) -> f64 {
        (value - self.low) / (self.high - self.low)
    }
}

/// `n` with a comma between thousands: 178,175.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A `<text>` element; `content` is escaped.
pub fn text(svg: &mut String, x: f64, y: f64, anchor: &str, attributes: &str, content: &str) {
    let escaped = content
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let _ = writeln!(
        svg,
        r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}" {attributes}>{escaped}</text>"#
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_tick_on_round_numbers() {
        let requests = Scale::new(0.0, 178_625.0, 1.0);
        assert_eq!(
            requests.ticks().collect::<Vec<_>>(),
            [0.0, 50_000.0, 100_000.0, 150_000.0, 200_000.0]
        );
        let few = Scale::new(0.0, 3.0, 1.0);
        assert_eq!(few.ticks().collect::<Vec<_>>(), [0.0, 1.0, 2.0, 3.0]);
        let loss = Scale::new(-0.3, 1.0, 0.0);
        assert_eq!(loss.step, 0.5);
        assert_eq!((loss.low, loss.high, loss.decimals()), (-0.5, 1.0, 1));
        assert_eq!(loss.fraction(loss.low), 0.0);
        assert_eq!(loss.fraction(loss.high), 1.0);
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(178_175), "178,175");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn text_is_escaped_and_a_legend_has_every_entry() {
        let mut svg = String::new();
        text(&mut svg, 1.0, 2.0, "start", "", "a < b & c");
        assert!(svg.contains(">a &lt; b &amp; c</text>"), "{svg}");
        let entries = [
            ("one".to_owned(), Swatch::Line("#000000", "")),
            ("two".to_owned(), Swatch::Box("#eeeeee")),
        ];
        legend(&mut svg, &entries, 0.0, 100.0, 10.0);
        assert!(svg.contains(">one<") && svg.contains(">two<") && svg.contains("<rect"));
    }
}
