//! A live shard's intake: its captures, and the backlog their frames wait in once they are
//! out of the kernel's rings.
//!
//! A ring holds a few MiB; a client uploading over a fast link fills that in milliseconds,
//! while a shard sending the copies of a large body may be busy for longer (in a lab, each
//! send also runs the target's receive path). So the shard empties the rings into the
//! larger backlog often: before each chunk of work and between the sends of a long flush.
//! What neither the backlog nor a ring can hold, the kernel counts as dropped.

use anyhow::{Context, Result};

use crate::capture::{Next, PacketSource};
use crate::packet::LinkType;
use crate::stats::{Counter, Counters};

use crate::replay::backlog::Backlog;

/// Bytes of captured frames a shard holds in memory at most (a burst; see [`Backlog`]).
const BACKLOG_BYTES: usize = 32 << 20;

/// A live capture and what the shard knows about it.
struct Source {
    capture: Box<dyn PacketSource>,
    link: LinkType,
    /// Frames may wait in it: the last wait found it readable, or the shard has not waited
    /// since it last found frames there. Reading an empty libpcap ring costs a `poll(2)`.
    ready: bool,
    /// The kernel's drop count already added to the counters.
    dropped_reported: u64,
}

/// The captures of a shard and its backlog.
pub struct Intake {
    sources: Vec<Source>,
    backlog: Backlog,
    /// The largest frame a capture can deliver (its snap length).
    max_frame: usize,
}

impl Intake {
    pub fn new(captures: Vec<Box<dyn PacketSource>>) -> Result<Intake> {
        let max_frame = captures
            .iter()
            .map(|c| c.max_frame_len())
            .max()
            .unwrap_or(0);
        let mut sources = Vec::with_capacity(captures.len());
        for capture in captures {
            let dlt = capture.datalink();
            let link = LinkType::from_dlt(dlt)
                .with_context(|| format!("{}: unsupported link type {dlt}", capture.name()))?;
            sources.push(Source {
                capture,
                link,
                ready: true,
                dropped_reported: 0,
            });
        }
        Ok(Intake {
            sources,
            backlog: Backlog::new(BACKLOG_BYTES),
            max_frame,
        })
    }

    /// Moves every frame waiting in the rings that may hold some into the backlog, as long
    /// as it has room for a whole frame (beyond that, frames wait in the ring).
    pub fn empty_rings(&mut self) -> Result<()> {
        for source in &mut self.sources {
            while source.ready && self.backlog.has_room(self.max_frame) {
                match source.capture.next_frame()? {
                    Next::Frame(frame) => {
                        self.backlog.push(source.link, frame.timestamp, frame.data)
                    }
                    Next::Idle => source.ready = false,
                }
            }
        }
        Ok(())
    }

    /// Takes every ring to hold frames until it is found empty: when the shard has been busy
    /// long enough for more to arrive, or nothing is known of them (a wait cut short).
    pub fn look_again(&mut self) {
        for source in &mut self.sources {
            source.ready = true;
        }
    }

    pub fn backlog(&mut self) -> &mut Backlog {
        &mut self.backlog
    }

    /// Adds what the kernel dropped since the last call to `counters`.
    pub fn report_drops(&mut self, counters: &Counters) {
        for source in &mut self.sources {
            let dropped = source.capture.stats().dropped;
            if dropped > source.dropped_reported {
                counters.add(Counter::KernelDropped, dropped - source.dropped_reported);
                source.dropped_reported = dropped;
            }
        }
    }

    /// Appends a `poll(2)` entry for each capture that has a descriptor.
    pub fn push_poll_fds(&self, pollfds: &mut Vec<libc::pollfd>) {
        for source in &self.sources {
            if let Some(fd) = source.capture.poll_fd() {
                pollfds.push(crate::poll::pollfd(fd, libc::POLLIN));
            }
        }
    }

    /// Takes each capture's readiness from the entries [`push_poll_fds`](Self::push_poll_fds)
    /// appended, after a `poll(2)` over them (`polled` starts with them).
    pub fn note_readiness(&mut self, polled: &[libc::pollfd]) {
        let mut polled = polled.iter();
        for source in &mut self.sources {
            if source.capture.poll_fd().is_some() {
                source.ready = polled.next().is_some_and(|fd| fd.revents != 0);
            }
        }
    }
}
