//! Packet sources behind the [`PacketSource`] trait: copy's own TPACKET_V3 ring on Ethernet
//! devices ([`BlockRing`]), live capture with libpcap elsewhere and for intercept
//! ([`LiveCapture`]), and capture files (pcap and pcapng), one at a time ([`FileCapture`])
//! or several merged by timestamp ([`FileSet`]).
//!
//! Owns capture setup (ring layout, inbound direction, the BPF filter, fanout groups) and
//! nothing else:
//! frames leave here as raw bytes with a timestamp; parsing is the packet model's job, and
//! when a file's frames are replayed is the offline clock's.

mod file_set;
mod filter;
mod group;
mod live;
mod offline;
mod offload;
mod ring;
#[cfg(test)]
pub(crate) mod testing;

use std::time::Duration;

pub use file_set::{FileSet, Recorded};
pub use filter::{
    DeviceInfo, build_conversation_filter, build_filter, default_devices, devices, own_addresses,
};
pub use group::{Unfiltered, open_group};
pub use live::{BLOCK_TIMEOUT, Fanout, LiveCapture, LiveOptions, RingMode};
pub use offline::FileCapture;
pub use offload::{ReceiveShape, receive_shape};
pub use ring::{BlockRing, RingLayout, RingOptions};

/// One captured frame, borrowed from the source until the next call.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Capture time, since the Unix epoch.
    pub timestamp: Duration,
    /// The captured bytes (possibly fewer than went over the wire).
    pub data: &'a [u8],
}

/// What a source has next.
#[derive(Debug)]
pub enum Next<'a> {
    Frame(Frame<'a>),
    /// Nothing is waiting now: a good moment to flush batches and check for shutdown, then
    /// to poll [`poll_fd`](PacketSource::poll_fd).
    Idle,
}

/// Kernel-side counters of a source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Packets the kernel handed to the capture (before the direction filter for live capture).
    pub received: u64,
    /// Packets the kernel dropped because the capture buffer was full.
    pub dropped: u64,
}

/// A source of captured frames.
pub trait PacketSource: Send {
    /// The pcap data link type (DLT) of every frame this source yields.
    fn datalink(&self) -> i32;
    /// The next frame, or `Idle` when none is waiting. Never blocks.
    fn next_frame(&mut self) -> anyhow::Result<Next<'_>>;
    /// Kernel counters.
    fn stats(&mut self) -> SourceStats;
    /// A name for logs: the device.
    fn name(&self) -> &str;
    /// The descriptor that becomes readable when frames wait, for a loop that polls several
    /// sources; `None` for a source that is always ready.
    fn poll_fd(&self) -> Option<std::os::fd::RawFd>;
    /// The longest frame this source can deliver (its snap length).
    fn max_frame_len(&self) -> usize;
}

/// How long a reader waits on an idle source before it looks at its stop flag again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

impl<'a> Frame<'a> {
    /// The frame of a packet libpcap delivered.
    fn from_pcap(packet: pcap::Packet<'a>) -> Frame<'a> {
        Frame {
            timestamp: timeval_to_duration(&packet.header.ts),
            data: packet.data,
        }
    }
}

/// A pcap header timestamp as a duration since the Unix epoch (negative times clamp to 0).
fn timeval_to_duration(ts: &libc::timeval) -> Duration {
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let micros = u32::try_from(ts.tv_usec).unwrap_or(0).min(999_999);
    Duration::new(secs, micros * 1000)
}
