//! `--json`: the summary as one `{"type":"summary","data":{...}}` object (keys documented in
//! docs/comparison.md). Pure.

use serde::Serialize;

use super::summary::Summary;

#[derive(Serialize)]
#[serde(tag = "type", content = "data", rename_all = "lowercase")]
enum Output<'a> {
    Summary(&'a Summary),
}

/// The summary's line, ending in `\n`.
pub fn render(summary: &Summary) -> String {
    // Plain data (strings, integers, finite floats): serializing cannot fail.
    let mut line = serde_json::to_string(&Output::Summary(summary)).unwrap_or_default();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::super::summary::summarize;
    use super::super::summary::tests::records;
    use super::*;
    use crate::cli::GroupBy;

    #[test]
    fn the_summary_has_the_documented_keys() {
        let line = render(&summarize(&records(), GroupBy::Head, 10));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["type"], "summary");
        let data = &value["data"];
        let keys: Vec<&str> = data
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "records",
                "matched",
                "unmatched_online",
                "unmatched_target",
                "unmatched",
                "protocols",
                "latency_us",
                "latency_last_us",
                "outcomes",
                "compared",
                "differing",
                "mismatch",
                "target_heads",
                "groups",
                "top_differing",
                "sizes"
            ]
        );
        assert_eq!(data["outcomes"]["200->404"], 2);
        assert_eq!(data["latency_us"]["online"]["p50"], 102);
        assert_eq!(data["latency_us"]["target"]["max"], 20_200);
        for key in ["p50", "p90", "p99", "max"] {
            assert!(data["latency_us"]["target"][key].is_u64(), "{key}");
        }
        assert_eq!(data["groups"][0]["latency_us"]["count"], 8);
        assert!(line.ends_with("}\n") && line.lines().count() == 1);
    }
}
