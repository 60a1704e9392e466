//! The offline clock: when each recorded frame of `copy --offline` is replayed, as a pure
//! mapping from the files' timestamps to offsets from the start of the replay.
//!
//! Three settings shape it: `--speed` divides every gap between consecutive frames
//! (`max` drops the timing altogether), `--max-gap` shortens the gaps longer than it before
//! the division, and `--loop` plays the files again: the first frame of a round follows the
//! last frame of the round before at once. The same frames with the same settings always
//! give the same offsets, which is what makes an offline replay repeatable.
//!
//! Pure: no clock is read here. The shard turns an offset into an instant by adding it to
//! the moment the replay started.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How fast recorded time passes in the replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// Recorded gaps divided by this factor (2.0 replays twice as fast). Always positive
    /// and finite.
    Factor(f64),
    /// No timing: frames go as fast as the sessions take them.
    Max,
}

impl Speed {
    /// The recorded pace.
    pub const RECORDED: Speed = Speed::Factor(1.0);
}

/// The error of a `--speed` value that is neither a positive factor nor `max`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeedError(String);

impl fmt::Display for SpeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a speed: give a factor of the recorded pace greater than 0 (e.g. 2 or \
             0.5) or `max`",
            self.0
        )
    }
}

impl std::error::Error for SpeedError {}

/// The largest factor accepted: beyond it a gap of a second is under a microsecond, which
/// `max` says more plainly.
const MAX_FACTOR: f64 = 1e6;

impl FromStr for Speed {
    type Err = SpeedError;

    fn from_str(text: &str) -> Result<Speed, SpeedError> {
        if text.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        match text.parse::<f64>() {
            Ok(factor) if factor > 0.0 && factor <= MAX_FACTOR => Ok(Speed::Factor(factor)),
            _ => Err(SpeedError(text.to_owned())),
        }
    }
}

impl fmt::Display for Speed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Speed::Factor(factor) => write!(f, "{factor}x"),
            Speed::Max => f.write_str("max"),
        }
    }
}

/// The settings of the offline clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockSettings {
    pub speed: Speed,
    /// Gaps between frames longer than this (in recorded time) count as this long.
    pub max_gap: Option<Duration>,
}

/// Maps recorded timestamps, frame after frame, onto replay offsets.
#[derive(Debug, Clone)]
pub struct OfflineClock {
    settings: ClockSettings,
    /// The timestamp of the frame before, in this round.
    previous: Option<Duration>,
    /// The offset of the frame before.
    offset: Duration,
    /// Recorded time covered so far: every gap, uncut and unscaled.
    recorded: Duration,
}

impl OfflineClock {
    pub fn new(settings: ClockSettings) -> OfflineClock {
        OfflineClock {
            settings,
            previous: None,
            offset: Duration::ZERO,
            recorded: Duration::ZERO,
        }
    }

    /// The offset from the start of the replay at which the next frame, stamped `timestamp`
    /// in its file, is due; `None` at [`Speed::Max`], where frames are never held. The first
    /// frame is due at once; a timestamp earlier than the one before counts as no gap.
    pub fn due(&mut self, timestamp: Duration) -> Option<Duration> {
        let gap = self.previous.map_or(Duration::ZERO, |previous| {
            timestamp.saturating_sub(previous)
        });
        self.previous = Some(timestamp);
        self.recorded += gap;
        let Speed::Factor(factor) = self.settings.speed else {
            return None;
        };
        let gap = self.settings.max_gap.map_or(gap, |cap| gap.min(cap));
        self.offset += gap.div_f64(factor);
        Some(self.offset)
    }

    /// The next frame starts another round of the files: it is due right after the last
    /// frame of this one.
    pub fn next_round(&mut self) {
        self.previous = None;
    }

    /// Recorded time the frames so far spanned, over every round.
    pub fn recorded(&self) -> Duration {
        self.recorded
    }

    /// The offset of the last frame so far: how long the replay of the frames is scheduled
    /// to take (zero at [`Speed::Max`]).
    pub fn scheduled(&self) -> Duration {
        self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn clock(speed: Speed, max_gap: Option<Duration>) -> OfflineClock {
        OfflineClock::new(ClockSettings { speed, max_gap })
    }

    /// The offsets of `timestamps` (in ms), played `rounds` times.
    fn offsets(clock: &mut OfflineClock, timestamps: &[u64], rounds: usize) -> Vec<Duration> {
        let mut out = Vec::new();
        for round in 0..rounds {
            if round > 0 {
                clock.next_round();
            }
            out.extend(timestamps.iter().filter_map(|&ts| clock.due(ms(ts))));
        }
        out
    }

    #[test]
    fn speed_syntax() {
        assert_eq!("2".parse(), Ok(Speed::Factor(2.0)));
        assert_eq!("0.5".parse(), Ok(Speed::Factor(0.5)));
        assert_eq!("MAX".parse(), Ok(Speed::Max));
        for bad in ["0", "-1", "fast", "", "inf", "NaN", "1e9"] {
            let err = bad.parse::<Speed>().unwrap_err().to_string();
            assert!(
                err.contains(&format!("`{bad}`")) && err.contains("max"),
                "{err}"
            );
        }
        assert_eq!(Speed::Factor(2.0).to_string(), "2x");
    }

    #[test]
    fn speed_divides_gaps_and_the_cap_cuts_them_first() {
        let stamps = [1000, 1100, 1100, 4100, 4200];
        let mut c = clock(Speed::Factor(2.0), None);
        assert_eq!(
            offsets(&mut c, &stamps, 1),
            [ms(0), ms(50), ms(50), ms(1550), ms(1600)]
        );
        assert_eq!((c.recorded(), c.scheduled()), (ms(3200), ms(1600)));

        let mut c = clock(Speed::Factor(2.0), Some(ms(1000)));
        assert_eq!(
            offsets(&mut c, &stamps, 1),
            [ms(0), ms(50), ms(50), ms(550), ms(600)]
        );
        assert_eq!(c.recorded(), ms(3200), "the recorded span is not cut");
    }

    #[test]
    fn timestamps_going_back_count_as_no_gap() {
        let mut c = clock(Speed::RECORDED, None);
        assert_eq!(
            offsets(&mut c, &[500, 400, 600], 1),
            [ms(0), ms(0), ms(200)]
        );
    }

    #[test]
    fn max_speed_holds_nothing_but_still_measures() {
        let mut c = clock(Speed::Max, Some(ms(1)));
        assert_eq!(c.due(ms(10)), None);
        assert_eq!(c.due(ms(30)), None);
        assert_eq!((c.recorded(), c.scheduled()), (ms(20), Duration::ZERO));
    }

    #[test]
    fn a_round_follows_the_last_frame_of_the_one_before() {
        let mut c = clock(Speed::RECORDED, None);
        assert_eq!(
            offsets(&mut c, &[100, 300], 3),
            [ms(0), ms(200), ms(200), ms(400), ms(400), ms(600)]
        );
    }

    /// Sorted timestamps in ms and a gap cap.
    fn recording() -> impl Strategy<Value = (Vec<u64>, u64)> {
        (
            proptest::collection::vec(0u64..5_000, 1..40).prop_map(|mut gaps| {
                let mut at = 1_700_000_000_000;
                for gap in &mut gaps {
                    at += *gap;
                    *gap = at;
                }
                gaps
            }),
            1u64..3_000,
        )
    }

    /// Rounding of `div_f64` may differ by a nanosecond per frame.
    fn close(a: Duration, b: Duration, frames: usize) -> bool {
        a.abs_diff(b) <= Duration::from_nanos(frames as u64 + 1)
    }

    proptest! {
        #[test]
        fn without_a_cap_offsets_are_the_scaled_timestamps(
            (stamps, _) in recording(),
            factor in 0.1f64..50.0,
        ) {
            let mut c = clock(Speed::Factor(factor), None);
            let got = offsets(&mut c, &stamps, 1);
            for (i, (offset, ts)) in got.iter().zip(&stamps).enumerate() {
                let want = ms(ts - stamps[0]).div_f64(factor);
                prop_assert!(close(*offset, want, i), "{offset:?} vs {want:?}");
            }
        }

        #[test]
        fn offsets_never_go_back_and_no_step_exceeds_the_cap(
            (stamps, cap) in recording(),
            factor in 0.1f64..50.0,
        ) {
            let mut c = clock(Speed::Factor(factor), Some(ms(cap)));
            let got = offsets(&mut c, &stamps, 1);
            for (pair, stamp_pair) in got.windows(2).zip(stamps.windows(2)) {
                let step = pair[1] - pair[0];
                let gap = ms(stamp_pair[1] - stamp_pair[0]);
                let want = gap.min(ms(cap)).div_f64(factor);
                prop_assert!(close(step, want, 1), "step {step:?}, want {want:?}");
            }
        }

        #[test]
        fn every_round_repeats_the_first_shifted_by_its_length(
            (stamps, cap) in recording(),
            rounds in 1usize..5,
        ) {
            let mut c = clock(Speed::Factor(1.5), Some(ms(cap)));
            let got = offsets(&mut c, &stamps, rounds);
            let first = &got[..stamps.len()];
            let length = first[first.len() - 1];
            for (round, chunk) in got.chunks(stamps.len()).enumerate() {
                for (offset, base) in chunk.iter().zip(first) {
                    let want = *base + length * round as u32;
                    prop_assert!(close(*offset, want, got.len()));
                }
            }
            let span = ms(stamps[stamps.len() - 1] - stamps[0]);
            prop_assert_eq!(c.recorded(), span * rounds as u32);
        }
    }
}
