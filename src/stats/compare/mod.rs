//! `tcpcopy stats compare`: the report of a comparison test, from the records `copy
//! --compare` wrote (docs/comparison.md).
//!
//! # Layout
//! - [`summary`]: matched and unmatched requests, latency percentiles, outcomes, differing
//!   heads, sizes (pure).
//! - [`table`], [`json`], [`chart`]: the terminal report, the JSON object and the SVG chart
//!   of the latency distributions (pure).
//!
//! This file is the edge: it reads the files (plain or gzip, with `stats logs`' reader),
//! prints, writes the chart and decides the verdict of `--max-mismatch`.

mod chart;
mod json;
mod summary;
mod table;

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::Verdict;
use super::logs::LogReader;
use crate::cli::CompareArgs;
use crate::compare::Record;

/// `tcpcopy stats compare`.
pub fn run(args: &CompareArgs) -> Result<Verdict> {
    let mut records = Vec::new();
    for path in &args.files {
        read_records(path, &mut records)?;
    }
    let summary = summary::summarize(&records, args.by, args.top as usize);
    let report = if args.json {
        json::render(&summary)
    } else {
        table::render(&summary, args.by)
    };
    std::io::stdout()
        .write_all(report.as_bytes())
        .context("writing the report to stdout")?;
    if let Some(path) = &args.svg {
        let (online, target) = &summary.first_byte_us;
        fs::write(path, chart::render(online, target))
            .with_context(|| format!("writing --svg {}", path.display()))?;
    }
    let Some(max) = args.max_mismatch else {
        return Ok(Verdict::Passed);
    };
    let Some(mismatch) = summary.mismatch else {
        bail!(
            "--max-mismatch cannot be checked: no matched request has outcomes that can be \
             compared{}",
            if summary.target_heads {
                ""
            } else {
                " (the target side has no reply heads: a TCPCopy 1.x intercept)"
            }
        );
    };
    Ok(if mismatch > max {
        Verdict::Failed(format!(
            "{} of {} compared requests differ ({:.2} %), above --max-mismatch {:.2} %",
            summary.differing,
            summary.compared,
            mismatch * 100.0,
            max * 100.0
        ))
    } else {
        Verdict::Passed
    })
}

/// Appends the records of `path`. Lines that are not records are counted and said; a file
/// with lines but no record fails.
fn read_records(path: &Path, records: &mut Vec<Record>) -> Result<()> {
    let mut reader = LogReader::open(path)?;
    let (mut lines, mut read, mut first_bad) = (0u64, 0u64, None);
    while let Some((number, line)) = reader
        .next_line()
        .with_context(|| format!("reading {}", path.display()))?
    {
        if line.trim_ascii().is_empty() {
            continue;
        }
        lines += 1;
        match serde_json::from_slice::<Record>(line) {
            Ok(record) => {
                records.push(record);
                read += 1;
            }
            Err(err) => {
                first_bad.get_or_insert((number, err));
            }
        }
    }
    if let Some((number, err)) = first_bad {
        let message = format!(
            "{}: {} of {lines} lines are not comparison records (first: line {number}: {err})",
            path.display(),
            lines - read
        );
        if read == 0 {
            bail!("{message}; is it a file copy --compare wrote?");
        }
        eprintln!("tcpcopy: {message}; they are not counted");
    }
    Ok(())
}
