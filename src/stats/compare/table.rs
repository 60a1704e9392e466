//! The terminal report of a [`Summary`]: counts, the latency table of both sides and their
//! ratio, the outcome matrix, the differing heads, the group table and the size
//! differences. Pure: a summary in, text out.

use std::fmt::Write as _;

use super::summary::{Latency, Percentiles, Summary};
use crate::cli::GroupBy;
use crate::stats::columns::align;

/// The report, each line ending in `\n`.
pub fn render(summary: &Summary, by: GroupBy) -> String {
    let mut out = String::new();
    let unmatched = summary
        .unmatched
        .iter()
        .map(|(why, n)| format!("{why} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        out,
        "requests {}: matched {}, unmatched online {}, unmatched target {}{}",
        summary.records,
        summary.matched,
        summary.unmatched_online,
        summary.unmatched_target,
        if unmatched.is_empty() {
            String::new()
        } else {
            format!(" ({unmatched})")
        }
    );
    let protocols = summary
        .protocols
        .iter()
        .map(|(protocol, n)| format!("{protocol} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(out, "protocols: {protocols}");
    if !summary.target_heads {
        let _ = writeln!(
            out,
            "the target side has no reply heads (a TCPCopy 1.x intercept, protocol version 6): \
             its classes are not known and its times are when copy received the reply headers"
        );
    }
    for (title, latency) in [
        ("first reply byte", &summary.latency_us),
        ("last reply byte", &summary.latency_last_us),
    ] {
        let _ = writeln!(
            out,
            "\nlatency to the {title} (µs, {} matched requests answered on both sides)",
            latency.count
        );
        latency_table(&mut out, latency);
    }
    let _ = writeln!(out, "\noutcomes (online → target, matched requests)");
    let rows: Vec<Vec<String>> = summary
        .outcomes
        .iter()
        .map(|(outcome, n)| vec![outcome.replace("->", " → "), n.to_string()])
        .collect();
    lines(&mut out, &rows, 1);
    match summary.mismatch {
        Some(rate) => {
            let _ = writeln!(
                out,
                "differing: {} of {} compared ({:.2} %)",
                summary.differing,
                summary.compared,
                rate * 100.0
            );
        }
        None => {
            let _ = writeln!(out, "differing: nothing could be compared");
        }
    }
    if !summary.top_differing.is_empty() {
        let _ = writeln!(out, "\nheads whose outcome differs (an example each)");
        let mut rows = vec![cells(&["head", "outcome", "requests", "example"])];
        rows.extend(summary.top_differing.iter().map(|differing| {
            vec![
                differing.key.clone(),
                differing.outcome.replace("->", " → "),
                differing.count.to_string(),
                format!(
                    "{} {} {}",
                    differing.example.time, differing.example.client, differing.example.head
                ),
            ]
        }));
        differing_lines(&mut out, &rows, 2);
    }
    let by_name = match by {
        GroupBy::Head => "request head",
        GroupBy::Status => "online status",
    };
    let _ = writeln!(out, "\nby {by_name} (first reply byte, µs)");
    let mut rows = vec![cells(&[
        by_name,
        "requests",
        "differing",
        "online p50",
        "target p50",
        "ratio",
        "online p99",
        "target p99",
    ])];
    rows.extend(summary.groups.iter().map(|group| {
        let latency = &group.latency_us;
        let p = |side: &Option<Percentiles>, pick: fn(&Percentiles) -> u64| {
            side.as_ref()
                .map_or_else(|| "-".to_owned(), |p| pick(p).to_string())
        };
        vec![
            group.key.clone(),
            group.requests.to_string(),
            group.differing.to_string(),
            p(&latency.online, |p| p.p50),
            p(&latency.target, |p| p.p50),
            ratio(latency.ratios()[0]),
            p(&latency.online, |p| p.p99),
            p(&latency.target, |p| p.p99),
        ]
    }));
    lines(&mut out, &rows, 1);
    let sizes = &summary.sizes;
    let _ = writeln!(
        out,
        "\nreply sizes: {} of {} matched differ; online {} bytes, target {} bytes",
        sizes.differing, summary.matched, sizes.online_bytes, sizes.target_bytes
    );
    if !sizes.largest.is_empty() {
        let mut rows = vec![cells(&["head", "requests", "bytes", "example"])];
        rows.extend(sizes.largest.iter().map(|difference| {
            vec![
                difference.key.clone(),
                difference.count.to_string(),
                format!("{:+}", difference.bytes),
                format!(
                    "{} → {} bytes: {} {} {}",
                    difference.online,
                    difference.target,
                    difference.example.time,
                    difference.example.client,
                    difference.example.head
                ),
            ]
        }));
        differing_lines(&mut out, &rows, 1);
    }
    out
}

fn cells(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|text| (*text).to_owned()).collect()
}

fn lines(out: &mut String, rows: &[Vec<String>], left: usize) {
    for line in align(rows, left) {
        let _ = writeln!(out, "{line}");
    }
}

/// Rows whose last column (an example) is text of its own: left-aligned after the numbers.
fn differing_lines(out: &mut String, rows: &[Vec<String>], left: usize) {
    let heads: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row[..row.len() - 1].to_vec())
        .collect();
    for (line, row) in align(&heads, left).into_iter().zip(rows) {
        let _ = writeln!(out, "{line}  {}", row[row.len() - 1]);
    }
}

fn ratio(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}"))
}

fn latency_table(out: &mut String, latency: &Latency) {
    let row = |name: &str, side: &Option<Percentiles>| {
        let mut row = vec![name.to_owned()];
        match side {
            Some(p) => row.extend([p.p50, p.p90, p.p99, p.max].map(|v| v.to_string())),
            None => row.extend(std::iter::repeat_n("-".to_owned(), 4)),
        }
        row
    };
    let mut rows = vec![
        cells(&["side", "p50", "p90", "p99", "max"]),
        row("online", &latency.online),
        row("target", &latency.target),
    ];
    let mut ratios = vec!["target/online".to_owned()];
    ratios.extend(latency.ratios().map(ratio));
    rows.push(ratios);
    lines(out, &rows, 1);
}

#[cfg(test)]
mod tests {
    use super::super::summary::summarize;
    use super::super::summary::tests::records;
    use super::*;

    #[test]
    fn the_report_has_every_part() {
        let report = render(&summarize(&records(), GroupBy::Head, 10), GroupBy::Head);
        for part in [
            "requests 11: matched 10, unmatched online 1, unmatched target 0 (online only 1)",
            "protocols: http 11",
            "latency to the first reply byte (µs, 10 matched requests answered on both sides)",
            "target/online",
            "200 → 404  2",
            "differing: 2 of 10 compared (20.00 %)",
            "GET /missing  200 → 404         2  2026-10-10T03:08:00.000001Z 198.51.100.10:40000 GET /missing HTTP/1.1",
            "by request head (first reply byte, µs)",
            "reply sizes: 2 of 10 matched differ",
        ] {
            assert!(report.contains(part), "no {part:?} in:\n{report}");
        }
        assert!(!report.contains("no reply heads"));
    }
}
