//! Where replies come from, as the event loop sees them: a descriptor to poll and a drain that
//! hands over what is waiting, already split by the packet model.
//!
//! Holds the pcap source of assistant mode (replies captured on the assistant, which drops
//! them after, having `ip_forward=0`); NFQUEUE lives in `nfqueue`. A source never blocks:
//! drains stop when nothing is waiting.

use std::os::fd::{AsRawFd, RawFd};

use anyhow::{Context, Result};

use crate::capture::{LiveCapture, Next, PacketSource};
use crate::packet::{HeaderSplit, LinkHeader, LinkType, PacketError};

/// What a source hands over for each reply: the captured IP packet (possibly cut short) and
/// its headers, or why they could not be read.
pub type ReplyHandler<'h> = dyn FnMut(&[u8], Result<HeaderSplit<'_>, PacketError>) + 'h;

/// A source of the target's replies that the event loop polls.
pub trait ReplySource {
    /// For log lines.
    fn name(&self) -> &str;
    /// The descriptor that becomes readable when replies wait.
    fn fd(&self) -> RawFd;
    /// Hands at most `max` waiting replies to `handle`; returns how many it handed over.
    fn drain(&mut self, max: usize, handle: &mut ReplyHandler<'_>) -> Result<usize>;
    /// Replies the kernel dropped before we could read them, if the source knows.
    fn kernel_dropped(&mut self) -> Option<u64>;
}

/// Assistant mode: replies captured with libpcap (non-blocking, immediate mode).
pub struct CapturedReplies {
    capture: LiveCapture,
    link: LinkType,
}

impl CapturedReplies {
    pub fn new(capture: LiveCapture) -> Result<Self> {
        let dlt = capture.datalink();
        let link = LinkType::from_dlt(dlt)
            .with_context(|| format!("{}: unsupported link type {dlt}", capture.name()))?;
        Ok(CapturedReplies { capture, link })
    }
}

impl ReplySource for CapturedReplies {
    fn name(&self) -> &str {
        self.capture.name()
    }

    fn fd(&self) -> RawFd {
        self.capture.as_raw_fd()
    }

    fn drain(&mut self, max: usize, handle: &mut ReplyHandler<'_>) -> Result<usize> {
        let link = self.link;
        for handed in 0..max {
            let frame = match self.capture.next_frame()? {
                Next::Frame(frame) => frame,
                Next::Idle => return Ok(handed),
            };
            // The snap length keeps headers and a payload prefix only: split, never parse whole.
            match LinkHeader::parse(link, frame.data) {
                Ok((_, ip)) => handle(ip, crate::packet::split_ip_headers(ip)),
                Err(err) => handle(frame.data, Err(err)),
            }
        }
        Ok(max)
    }

    fn kernel_dropped(&mut self) -> Option<u64> {
        Some(self.capture.stats().dropped)
    }
}
