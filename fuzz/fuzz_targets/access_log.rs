//! Access-log lines as `tcpcopy stats logs` reads them (the settings byte picks the time
//! field and format, the window length and `--edges`): the online lines up to the first
//! empty one, the target's after it. Each line's time is read, counted in its window, and
//! the comparison rendered as the table, JSON Lines and the SVG chart.
#![no_main]

use std::num::NonZeroU32;

use jiff::tz::Offset;
use libfuzzer_sys::fuzz_target;
use tcpcopy::stats::logs::loss::compare;
use tcpcopy::stats::logs::tally::{Side, Tally};
use tcpcopy::stats::logs::window::{Span, Windows};
use tcpcopy::stats::logs::{chart, json, table};
use tcpcopy_fuzz::{LogSettings, settings};

/// The most rows of a comparison the target renders.
const MAX_RENDERED_ROWS: usize = 2_000;

fuzz_target!(|data: &[u8]| {
    let Some((settings, text)) = settings(data) else {
        return;
    };
    let settings = LogSettings::from_settings(settings);
    let time_field = settings.time_field();
    let mut lines = text
        .split(|&byte| byte == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let online: Vec<&[u8]> = lines.by_ref().take_while(|line| !line.is_empty()).collect();
    let target: Vec<&[u8]> = lines.collect();

    // As `stats logs` does: windows in the offset of the first readable online time.
    let offset = online
        .iter()
        .find_map(|line| time_field.read(line).ok())
        .map_or(Offset::UTC, |stamp| stamp.offset);
    let window = NonZeroU32::new(settings.window_seconds).expect("a window is not empty");
    let mut tally = Tally::new(Windows::new(window, offset), Span::default());
    let mut unparsed = 0;
    for (side, lines) in [(Side::Online, &online), (Side::Target, &target)] {
        for line in lines {
            match time_field.read(line) {
                Ok(stamp) => tally.record(side, stamp.at),
                Err(_) => unparsed += 1,
            }
        }
    }
    // More windows than a report shows is refused, as `stats logs` refuses it.
    let Ok(comparison) = compare(&tally, 1.0, settings.edges) else {
        return;
    };
    // Each row is rendered by the same code: past a few thousand, rows only slow the
    // fuzzer down (the chart's switch from markers to a plain line is at 120).
    if comparison.rows.len() > MAX_RENDERED_ROWS {
        return;
    }
    let _ = table::render(&comparison);
    let _ = json::render(&comparison, unparsed);
    let _ = chart::render(&comparison, Some(0.01));
});
