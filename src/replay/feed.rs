//! What an offline shard replays: the frames of `copy --offline FILE...` in replay order,
//! each with the offset the offline clock gives it, its link type and the `--loop` round it
//! belongs to.
//!
//! The files are merged by timestamp ([`FileSet`]) and read again from the start for each
//! round. No clock is read here: the shard decides when an offset is due.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};

use crate::capture::FileSet;
use crate::offline_clock::{ClockSettings, OfflineClock};
use crate::packet::LinkType;

use super::rewrite::Repetition;

/// The files of an offline replay and how to play them.
#[derive(Debug, Clone)]
pub struct FeedSettings {
    pub paths: Vec<PathBuf>,
    /// BPF filter applied while reading (`-F`).
    pub filter: Option<String>,
    /// How many times the files are played (`--loop`), at least once.
    pub rounds: u32,
    pub clock: ClockSettings,
}

/// The next frame of the replay.
#[derive(Debug, Clone, Copy)]
pub struct FeedFrame<'a> {
    /// When it is due, from the start of the replay; `None` at `--speed max`.
    pub due: Option<Duration>,
    pub repetition: Repetition,
    pub link: LinkType,
    pub data: &'a [u8],
}

/// What the replay covered, for the log line at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedSummary {
    pub frames: u64,
    pub files: usize,
    pub rounds: u32,
    /// Recorded time from the first frame to the last, over every round.
    pub recorded: Duration,
    /// How long the offline clock scheduled the replay to take.
    pub scheduled: Duration,
}

/// The frames of the files, round after round.
pub struct OfflineFeed {
    settings: FeedSettings,
    files: FileSet,
    /// Each file's link type.
    links: Vec<LinkType>,
    round: u32,
    clock: OfflineClock,
    /// The due offset of the frame the files show now, once the clock has given it.
    head_due: Option<Option<Duration>>,
    frames: u64,
    /// Bytes read in the rounds before this one.
    bytes_before: u64,
    bytes_read: Arc<AtomicU64>,
}

impl OfflineFeed {
    /// Opens the files for the first round; fails, naming the file, on one that cannot be
    /// read or whose link type copy does not parse.
    pub fn open(settings: FeedSettings) -> Result<OfflineFeed> {
        let files = FileSet::open(&settings.paths, settings.filter.as_deref())?;
        let mut links = Vec::with_capacity(files.files().len());
        for file in files.files() {
            let dlt = file.datalink();
            let Some(link) = LinkType::from_dlt(dlt) else {
                bail!(
                    "{}: link type {dlt} is not one copy reads (Ethernet, with or without \
                     VLAN tags; Linux cooked v1 or v2; raw IP; BSD loopback)",
                    file.name()
                );
            };
            links.push(link);
        }
        Ok(OfflineFeed {
            clock: OfflineClock::new(settings.clock),
            settings,
            files,
            links,
            round: 0,
            head_due: None,
            frames: 0,
            bytes_before: 0,
            bytes_read: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The next frame, `None` once the last round has ended. The same frame until
    /// [`advance`](Self::advance).
    pub fn peek(&mut self) -> Result<Option<FeedFrame<'_>>> {
        while self.files.peek().is_none() {
            if self.round + 1 >= self.settings.rounds {
                return Ok(None);
            }
            self.bytes_before += self.files.size();
            self.files = FileSet::open(&self.settings.paths, self.settings.filter.as_deref())?;
            self.round += 1;
            self.clock.next_round();
        }
        let Some(head) = self.files.peek() else {
            return Ok(None);
        };
        let due = *self
            .head_due
            .get_or_insert_with(|| self.clock.due(head.timestamp));
        Ok(Some(FeedFrame {
            due,
            repetition: Repetition { round: self.round },
            link: self.links[head.file],
            data: &head.data,
        }))
    }

    /// Moves past the frame [`peek`](Self::peek) showed.
    pub fn advance(&mut self) -> Result<()> {
        if self.head_due.take().is_some() {
            self.frames += 1;
        }
        self.files.advance()?;
        self.bytes_read.store(
            self.bytes_before + self.files.bytes_read(),
            Ordering::Relaxed,
        );
        Ok(())
    }

    /// Bytes of the files read so far, over every round, shared with whoever shows progress.
    pub fn bytes_read(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.bytes_read)
    }

    /// The bytes of every round together.
    pub fn total_bytes(&self) -> u64 {
        self.files.size() * u64::from(self.settings.rounds)
    }

    pub fn summary(&self) -> FeedSummary {
        FeedSummary {
            frames: self.frames,
            files: self.settings.paths.len(),
            rounds: self.round + 1,
            recorded: self.clock.recorded(),
            scheduled: self.clock.scheduled(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::testing::{TempFile, pcap_bytes};
    use crate::offline_clock::Speed;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn rounds_replay_the_files_with_their_timing() {
        let file = TempFile::with_bytes(
            "feed.pcap",
            &pcap_bytes(
                101,
                &[(1_000_000, vec![0x45; 20]), (1_400_000, vec![0x46; 20])],
            ),
        );
        let mut feed = OfflineFeed::open(FeedSettings {
            paths: vec![file.path().to_owned()],
            filter: None,
            rounds: 3,
            clock: ClockSettings {
                speed: Speed::Factor(2.0),
                max_gap: None,
            },
        })
        .unwrap();
        assert_eq!(feed.total_bytes(), 3 * 24 + 3 * 2 * 36);
        let mut seen = Vec::new();
        while let Some(frame) = feed.peek().unwrap() {
            assert_eq!(frame.link, LinkType::RawIp);
            seen.push((frame.due, frame.repetition.round, frame.data[0]));
            // Peeking again shows the same frame, due at the same time.
            assert_eq!(feed.peek().unwrap().unwrap().due, seen[seen.len() - 1].0);
            feed.advance().unwrap();
        }
        assert_eq!(
            seen,
            [
                (Some(ms(0)), 0, 0x45),
                (Some(ms(200)), 0, 0x46),
                (Some(ms(200)), 1, 0x45),
                (Some(ms(400)), 1, 0x46),
                (Some(ms(400)), 2, 0x45),
                (Some(ms(600)), 2, 0x46),
            ]
        );
        assert_eq!(
            feed.bytes_read().load(Ordering::Relaxed),
            feed.total_bytes()
        );
        assert_eq!(
            feed.summary(),
            FeedSummary {
                frames: 6,
                files: 1,
                rounds: 3,
                recorded: ms(1200),
                scheduled: ms(600),
            }
        );
    }

    #[test]
    fn every_link_type_copy_parses_is_accepted() {
        for (linktype, link) in [
            (1, LinkType::Ethernet),
            (113, LinkType::LinuxSll),
            (276, LinkType::LinuxSll2),
            (101, LinkType::RawIp),
            (0, LinkType::Null),
        ] {
            let file =
                TempFile::with_bytes("link.pcap", &pcap_bytes(linktype, &[(0, vec![0; 20])]));
            let mut feed = OfflineFeed::open(FeedSettings {
                paths: vec![file.path().to_owned()],
                filter: None,
                rounds: 1,
                clock: ClockSettings {
                    speed: Speed::Max,
                    max_gap: None,
                },
            })
            .unwrap();
            assert_eq!(feed.peek().unwrap().unwrap().link, link, "{linktype}");
        }
    }

    #[test]
    fn an_unknown_link_type_names_the_file() {
        let file = TempFile::with_bytes("usb.pcap", &pcap_bytes(189, &[]));
        let err = OfflineFeed::open(FeedSettings {
            paths: vec![file.path().to_owned()],
            filter: None,
            rounds: 1,
            clock: ClockSettings {
                speed: Speed::Max,
                max_gap: None,
            },
        })
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("usb.pcap") && err.contains("link type 189"),
            "{err}"
        );
    }
}
