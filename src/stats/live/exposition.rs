//! Reading the Prometheus text format that `--metrics` serves: the samples of one scrape,
//! and the counters of tcpcopy's roles summed over several scrapes ([`Reading`]). Pure.

use std::collections::BTreeMap;
use std::fmt;

/// One sample line: `name{label="value",...} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a line of an exposition cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub reason: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ParseError {}

/// Every sample of `text`; comments (`# HELP`, `# TYPE`) and blank lines are skipped.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|(index, line)| {
            parse_sample(line).map_err(|reason| ParseError {
                line: index + 1,
                reason,
            })
        })
        .collect()
}

fn parse_sample(line: &str) -> Result<Sample, &'static str> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .ok_or("no value after the metric name")?;
    let (name, mut rest) = line.split_at(name_end);
    if name.is_empty() {
        return Err("no metric name");
    }
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = rest.split_once("=\"").ok_or("a label without =\"value\"")?;
            let (value, after) = quoted(after)?;
            labels.push((key.trim().to_owned(), value));
            rest = after;
        }
    }
    let value = rest
        .split_ascii_whitespace()
        .next()
        .ok_or("no value")?
        .parse::<f64>()
        .map_err(|_| "the value is not a number")?;
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The label value at the start of `text` (just after its opening quote), unescaped, and
/// what follows its closing quote.
fn quoted(text: &str) -> Result<(String, &str), &'static str> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[at + 1..])),
            '\\' => match chars.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, escaped)) => value.push(escaped),
                None => break,
            },
            c => value.push(c),
        }
    }
    Err("a label value without its closing quote")
}

/// tcpcopy's samples of several scrapes, summed by role and metric name over every
/// endpoint and shard.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    sums: BTreeMap<(String, String), f64>,
}

impl Reading {
    /// Adds the samples of one scrape.
    pub fn add(&mut self, samples: &[Sample]) {
        for sample in samples {
            if let Some(role) = sample.label("role") {
                *self
                    .sums
                    .entry((role.to_owned(), sample.name.clone()))
                    .or_default() += sample.value;
            }
        }
    }

    /// The sum of `tcpcopy_<counter>_total{role}`, 0 when no endpoint has it.
    pub fn counter(&self, role: &str, counter: &str) -> f64 {
        let name = format!("tcpcopy_{counter}_total");
        self.sums
            .get(&(role.to_owned(), name))
            .copied()
            .unwrap_or(0.0)
    }

    /// Whether any endpoint of `role` was read.
    pub fn has_role(&self, role: &str) -> bool {
        self.sums.keys().any(|(r, _)| r == role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "\
# HELP tcpcopy_requests_sent_total Requests released to the target.
# TYPE tcpcopy_requests_sent_total counter
tcpcopy_requests_sent_total{role=\"copy\"} 42
tcpcopy_sessions_tracked{role=\"copy\",shard=\"0\"} 3
tcpcopy_sessions_tracked{role=\"copy\",shard=\"1\"} 4

untyped_metric 1.5e3 1700000000000
";

    #[test]
    fn parses_samples_and_labels() {
        let samples = parse(SCRAPE).unwrap();
        assert_eq!(samples.len(), 4);
        assert_eq!(samples[0].name, "tcpcopy_requests_sent_total");
        assert_eq!(samples[0].labels, [("role".to_owned(), "copy".to_owned())]);
        assert_eq!(samples[0].value, 42.0);
        assert_eq!(samples[2].label("shard"), Some("1"));
        assert_eq!(samples[3].value, 1500.0);
        assert!(samples[3].labels.is_empty());
    }

    #[test]
    fn label_values_are_unescaped() {
        let samples = parse(r#"m{a="x\"y",b="1,2}\\",c="line\nbreak"} 1"#).unwrap();
        let labels: Vec<&str> = samples[0].labels.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(labels, ["x\"y", "1,2}\\", "line\nbreak"]);
    }

    #[test]
    fn bad_lines_say_which_and_why() {
        for (text, reason) in [
            ("m", "no value after the metric name"),
            ("m{a=\"1\"}", "no value"),
            ("m{a=1} 2", "a label without =\"value\""),
            ("m{a=\"1} 2", "a label value without its closing quote"),
            ("m one", "the value is not a number"),
        ] {
            assert_eq!(
                parse(&format!("# ok\n{text}")),
                Err(ParseError { line: 2, reason }),
                "{text}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_read_or_refused_without_panicking(text in "\\PC{0,120}") {
            let _ = parse(&text);
        }
    }

    #[test]
    fn readings_sum_endpoints_and_shards_by_role() {
        let mut reading = Reading::default();
        reading.add(&parse(SCRAPE).unwrap());
        reading.add(&parse("tcpcopy_requests_sent_total{role=\"copy\"} 8\ntcpcopy_captured_total{role=\"intercept\"} 5").unwrap());
        assert_eq!(reading.counter("copy", "requests_sent"), 50.0);
        assert_eq!(reading.counter("intercept", "captured"), 5.0);
        assert_eq!(reading.counter("copy", "captured"), 0.0);
        assert!(reading.has_role("intercept") && !reading.has_role("other"));
    }
}
