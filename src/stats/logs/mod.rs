//! `tcpcopy stats logs`: the loss between the online hosts' and the target's access logs,
//! window by window, as operators of TCPCopy compute it by hand (`grep '11:08' access.log |
//! wc -l` on each host).
//!
//! # Layout
//! - [`time_field`]: where a line's time is and how to read it (pure).
//! - [`window`]: windows and the `--from`/`--to` span (pure).
//! - [`tally`]: requests per window on each side, and how far each side's logs reach (pure).
//! - [`loss`]: the comparison, per window and in total (pure).
//! - [`table`], [`json`], [`chart`]: the terminal table, JSON Lines and the SVG chart (pure).
//! - [`input`]: reading plain and gzip files, line by line (I/O).
//!
//! This file is the edge: it reads the files, prints, writes the chart and decides the
//! verdict of `--max-loss`.

pub mod chart;
mod input;
pub mod json;
pub mod loss;
pub mod table;
pub mod tally;
pub mod time_field;
pub mod window;

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use jiff::tz::Offset;

pub(super) use self::input::LogReader;
pub(super) use self::table::format_loss;

use self::loss::{Comparison, compare, exceeds};
use self::tally::{Side, Tally};
use self::time_field::{LineError, TimeField};
use self::window::{Span, Windows};
use super::Verdict;
use crate::cli::LogsArgs;

/// `tcpcopy stats logs`.
pub fn run(args: &LogsArgs) -> Result<Verdict> {
    let time_field = TimeField::new(args.time_field, args.time_format.as_deref())?;
    if let (Some(from), Some(to)) = (args.from, args.to) {
        if from >= to {
            bail!("--from {from} is not before --to {to}");
        }
    }
    let span = Span {
        from: args.from,
        to: args.to,
    };
    let offset = first_offset(&args.online, &time_field)?;
    let mut tally = Tally::new(Windows::new(args.window_seconds, offset), span);
    let mut files = Vec::new();
    for (side, paths) in [(Side::Online, &args.online), (Side::Target, &args.target)] {
        for path in paths {
            files.push(read_log(path, side, &time_field, &mut tally)?);
        }
    }
    let comparison = compare(&tally, args.factor, args.edges)?;

    for file in files.iter().filter(|file| file.unreadable > 0) {
        eprintln!("tcpcopy: {file}");
    }
    let report = if args.json {
        let unparsed = files.iter().map(|file| file.unreadable).sum();
        json::render(&comparison, unparsed)
    } else {
        table::render(&comparison)
    };
    std::io::stdout()
        .write_all(report.as_bytes())
        .context("writing the report to stdout")?;
    if let Some(note) = edge_note(&comparison, args.json) {
        eprintln!("tcpcopy: {note}");
    }
    if let Some(path) = &args.svg {
        fs::write(path, chart::render(&comparison, args.max_loss))
            .with_context(|| format!("writing --svg {}", path.display()))?;
    }
    verdict(&comparison, args.max_loss)
}

/// The offset of the first readable time of the online logs: windows are aligned and shown
/// in it (UTC when no line is readable; reading the files then says why).
fn first_offset(online: &[PathBuf], time_field: &TimeField) -> Result<Offset> {
    for path in online {
        let mut reader = LogReader::open(path)?;
        while let Some((_, line)) = reader
            .next_line()
            .with_context(|| format!("reading {}", path.display()))?
        {
            if let Ok(stamp) = time_field.read(line) {
                return Ok(stamp.offset);
            }
        }
    }
    Ok(Offset::UTC)
}

/// What reading one file found.
struct FileSummary {
    path: PathBuf,
    side: Side,
    lines: u64,
    unreadable: u64,
    /// The first unreadable line: its number and why.
    first_unreadable: Option<(u64, LineError)>,
}

impl fmt::Display for FileSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {} of {} lines have no time that can be read and are not counted",
            self.path.display(),
            self.side.name(),
            self.unreadable,
            self.lines
        )?;
        if let Some((number, reason)) = &self.first_unreadable {
            write!(f, " (first: line {number}: {reason})")?;
        }
        Ok(())
    }
}

/// Counts every request of `path` on `side`. Fails when the file cannot be read, or when it
/// has lines but not one with a readable time (a wrong `--time-format` or `--time-field`).
fn read_log(
    path: &Path,
    side: Side,
    time_field: &TimeField,
    tally: &mut Tally,
) -> Result<FileSummary> {
    let mut summary = FileSummary {
        path: path.to_owned(),
        side,
        lines: 0,
        unreadable: 0,
        first_unreadable: None,
    };
    let mut reader = LogReader::open(path)?;
    while let Some((number, line)) = reader
        .next_line()
        .with_context(|| format!("reading {}", path.display()))?
    {
        summary.lines += 1;
        match time_field.read(line) {
            Ok(stamp) => tally.record(side, stamp.at),
            Err(reason) => {
                summary.unreadable += 1;
                summary.first_unreadable.get_or_insert((number, reason));
            }
        }
    }
    if let (0, Some((number, reason))) = (
        summary.lines - summary.unreadable,
        &summary.first_unreadable,
    ) {
        bail!(
            "no line of {} ({}) has a time that can be read (line {number}: {reason}); see \
             --time-field and --time-format",
            path.display(),
            side.name()
        );
    }
    Ok(summary)
}

/// What to say about windows the logs cover only in part.
fn edge_note(comparison: &Comparison, json: bool) -> Option<String> {
    let edges = comparison.rows.iter().filter(|row| row.edge).count();
    if edges == 0 {
        return None;
    }
    let marked = if json {
        String::new()
    } else {
        format!(", marked {},", table::EDGE_MARK)
    };
    let (windows, are) = if edges == 1 {
        ("window", "is")
    } else {
        ("windows", "are")
    };
    let counted = if comparison.edges_counted {
        "counted in the total (--edges)"
    } else {
        "left out of the total; --edges counts them"
    };
    Some(format!(
        "{edges} {windows} covered only in part by the logs{marked} {are} {counted}"
    ))
}

/// Whether the total loss is within `--max-loss`.
fn verdict(comparison: &Comparison, max_loss: Option<f64>) -> Result<Verdict> {
    let Some(max_loss) = max_loss else {
        return Ok(Verdict::Passed);
    };
    let Some(loss) = comparison.total.loss else {
        bail!(
            "--max-loss cannot be checked: no window counted in the total has an online \
             request (the logs, or --from and --to, may leave only edge windows: see --edges)"
        );
    };
    Ok(if exceeds(loss, max_loss) {
        let (loss, max_loss) = distinct_decimals(loss, max_loss);
        Verdict::Failed(format!("total loss {loss} is above --max-loss {max_loss}"))
    } else {
        Verdict::Passed
    })
}

/// `a` and `b` printed with the table's four decimals, or with as many more as it takes to
/// tell them apart (`0.002519` against `0.0025`, which both print `0.0025` with four).
fn distinct_decimals(a: f64, b: f64) -> (String, String) {
    /// Beyond --max-loss's tolerance ([`exceeds`]), two losses count as equal.
    const MOST: usize = 12;
    let mut decimals = 4;
    while decimals < MOST && format!("{a:.decimals$}") == format!("{b:.decimals$}") {
        decimals += 1;
    }
    (format!("{a:.decimals$}"), format!("{b:.decimals$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loss_just_above_max_loss_is_printed_apart_from_it() {
        // The published example: 1 − 178,175 / 178,625 against --max-loss 0.25%.
        let loss = 1.0 - 178_175.0 / 178_625.0;
        assert!(exceeds(loss, 0.0025));
        assert_eq!(
            distinct_decimals(loss, 0.0025),
            ("0.00252".to_owned(), "0.00250".to_owned())
        );
        assert_eq!(
            distinct_decimals(0.01, 0.005),
            ("0.0100".to_owned(), "0.0050".to_owned())
        );
        // Just beyond the tolerance still prints two different numbers.
        let (above, max) = distinct_decimals(0.1 + 2e-9, 0.1);
        assert_ne!(above, max);
    }
}
