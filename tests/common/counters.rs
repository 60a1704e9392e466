//! Reading tcpcopy's own counters from its log: `copy totals: captured 30, sent 30, ...` at
//! exit and `copy: captured 30, ...` every `--stats-interval`.

use std::collections::BTreeMap;

/// The counters of the last line in `log` that starts (after the log prefix) with `label`
/// followed by `: ` — e.g. `copy totals` or `intercept`.
pub fn last_counters(log: &str, label: &str) -> Option<BTreeMap<String, u64>> {
    let marker = format!("] {label}: ");
    let line = log.lines().rev().find(|line| line.contains(&marker))?;
    let (_, list) = line.split_once(&marker)?;
    list.split(", ")
        .map(|pair| {
            let (name, value) = pair.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// One counter of the last `label` line, panicking with the log when it is missing.
pub fn counter(log: &str, label: &str, name: &str) -> u64 {
    last_counters(log, label)
        .and_then(|counters| counters.get(name).copied())
        .unwrap_or_else(|| panic!("no `{name}` in a `{label}:` line of:\n{log}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_matching_line() {
        let log =
            "[t INFO ] copy: captured 1, sent 1\n[t INFO ] copy totals: captured 30, sent 29\n";
        assert_eq!(counter(log, "copy totals", "sent"), 29);
        assert_eq!(counter(log, "copy", "captured"), 1);
        assert!(last_counters(log, "intercept").is_none());
    }
}
