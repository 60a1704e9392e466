//! Capture files as `copy --offline` reads them: one or two pcap or pcapng files (the
//! settings byte says how many, how fast and how many rounds), merged by timestamp and
//! timed by the offline clock, each frame parsed for its file's link type.
//!
//! libpcap reads the files (headers, records, pcapng blocks): it is not instrumented, so
//! the coverage that guides this target is our code's, from the link type check to the
//! frame parser; a crash inside libpcap would still stop the run.
#![no_main]

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tcpcopy::offline_clock::{ClockSettings, Speed};
use tcpcopy::packet::parse_frame;
use tcpcopy::replay::feed::{FeedSettings, OfflineFeed};
use tcpcopy_fuzz::{CaptureFiles, settings};

/// The most frames taken from one input: a file of small records repeated over two rounds
/// stays well below it, and a bug that loops forever stops here instead of timing out.
const MAX_FRAMES: usize = 100_000;

fuzz_target!(|data: &[u8]| {
    let Some((settings, bytes)) = settings(data) else {
        return;
    };
    let files = CaptureFiles::from_settings(settings);
    let paths: Vec<PathBuf> = files
        .split(bytes)
        .into_iter()
        .enumerate()
        .map(|(index, contents)| write_file(index, contents))
        .collect();
    let Ok(mut feed) = OfflineFeed::open(FeedSettings {
        paths,
        filter: None,
        rounds: files.rounds,
        clock: ClockSettings {
            speed: if files.timed {
                Speed::Factor(2.0)
            } else {
                Speed::Max
            },
            max_gap: files.timed.then_some(Duration::from_secs(1)),
        },
    }) else {
        return;
    };
    let mut frames = 0;
    while let Ok(Some(frame)) = feed.peek() {
        let _ = parse_frame(frame.link, frame.data);
        frames += 1;
        assert!(frames <= MAX_FRAMES, "more frames than the files can hold");
        if feed.advance().is_err() {
            break;
        }
    }
    let summary = feed.summary();
    assert!(summary.rounds <= files.rounds);
});

/// The `index`th file of this input, in memory (a memfd, made once per process and
/// rewritten by every input: a file on disk would cost more than the parsing), by the
/// path that opens it.
fn write_file(index: usize, contents: &[u8]) -> PathBuf {
    static FILES: OnceLock<[File; 2]> = OnceLock::new();
    let file = &FILES.get_or_init(|| [memfd(), memfd()])[index];
    file.set_len(0).expect("emptying a memfd");
    file.write_all_at(contents, 0).expect("writing a memfd");
    PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

fn memfd() -> File {
    // SAFETY: memfd_create takes a NUL-terminated name and returns a new descriptor or -1.
    let fd = unsafe { libc::memfd_create(c"tcpcopy-fuzz".as_ptr(), 0) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: the descriptor was just made and nothing else owns it.
    unsafe { File::from_raw_fd(fd) }
}
