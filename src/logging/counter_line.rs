//! Recognizes the counter lines copy and intercept log, `LABEL: name value, name value, ...`
//! (`copy: captured 120, sent 118`, `copy totals: ...`, `shard 0 totals: ...`, as
//! [`Snapshot::format`](crate::stats::Snapshot::format) writes them), so that the JSON format
//! carries their counters as numbers.
//!
//! A message is a counter line when everything after its first `": "` is comma-separated
//! `name value` pairs and every name is a [`Counter`]'s: other messages with a colon are never
//! taken for one. This reads back text the stats module formatted; should the reporters one day
//! log their counters as key-value pairs, those reach `fields` directly and this module can go.

use crate::stats::Counter;

/// A counter line taken apart.
#[derive(Debug, PartialEq, Eq)]
pub struct CounterLine<'a> {
    /// What the counters are of, e.g. `copy`, `copy totals`, `shard 0 totals`.
    pub label: &'a str,
    /// In the order logged.
    pub counters: Vec<(&'a str, u64)>,
}

/// `message` taken apart, if it is a counter line.
pub fn parse(message: &str) -> Option<CounterLine<'_>> {
    let (label, pairs) = message.split_once(": ")?;
    let counters = pairs
        .split(", ")
        .map(|pair| {
            let (name, value) = pair.split_once(' ')?;
            if !Counter::ALL.iter().any(|counter| counter.name() == name) {
                return None;
            }
            Some((name, value.parse().ok()?))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(CounterLine { label, counters })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Counters;

    #[test]
    fn the_reporters_format_reads_back() {
        let counters = Counters::default();
        counters.add(Counter::Captured, 120);
        counters.add(Counter::Sent, 118);
        let shown = [Counter::Captured, Counter::Sent, Counter::KernelDropped];
        let message = format!("copy totals: {}", counters.snapshot().format(&shown));
        assert_eq!(
            parse(&message),
            Some(CounterLine {
                label: "copy totals",
                counters: vec![("captured", 120), ("sent", 118), ("kernel_dropped", 0)],
            })
        );
    }

    #[test]
    fn every_counter_name_is_known() {
        let message = Counter::ALL
            .iter()
            .map(|counter| format!("{} 1", counter.name()))
            .collect::<Vec<_>>()
            .join(", ");
        let message = format!("intercept: {message}");
        let line = parse(&message).expect("a counter line");
        assert_eq!(line.counters.len(), Counter::ALL.len());
    }

    #[test]
    fn other_messages_are_not_counter_lines() {
        for message in [
            "shard 1: connected to intercept 198.51.100.40:36524",
            "copy 198.51.100.20:5000: reading failed: connection reset",
            "copy: captured 1, bogus 2",
            "copy: captured many",
            "copy: captured -1",
            "copy: ",
            "copy totals",
        ] {
            assert_eq!(parse(message), None, "{message}");
        }
    }
}
