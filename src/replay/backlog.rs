//! Frames taken out of the capture ring but not processed yet.
//!
//! A shard empties its kernel rings before each chunk of work, so a burst waits here rather
//! than overflowing a ring while the shard sends (in a lab, sending also runs the target's
//! receive path). The backlog is bounded in bytes; buffers are reused, and what a burst
//! allocated beyond [`KEPT_BUFFERS`] is given back once it has been processed.

use std::collections::VecDeque;
use std::time::Duration;

use crate::packet::LinkType;

/// Spare buffers kept after a burst; more are freed.
const KEPT_BUFFERS: usize = 256;

/// One captured frame, copied out of the ring.
pub struct Backlogged {
    pub link: LinkType,
    pub timestamp: Duration,
    pub data: Vec<u8>,
}

/// A FIFO of captured frames, at most `max_bytes` of them.
pub struct Backlog {
    frames: VecDeque<Backlogged>,
    spare: Vec<Vec<u8>>,
    bytes: usize,
    max_bytes: usize,
}

impl Backlog {
    pub fn new(max_bytes: usize) -> Backlog {
        Backlog {
            frames: VecDeque::new(),
            spare: Vec::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// Whether a frame of `len` bytes still fits.
    pub fn has_room(&self, len: usize) -> bool {
        self.bytes + len <= self.max_bytes
    }

    /// Copies a frame in. The caller checked [`has_room`](Self::has_room).
    pub fn push(&mut self, link: LinkType, timestamp: Duration, frame: &[u8]) {
        let mut data = self.spare.pop().unwrap_or_default();
        data.clear();
        data.extend_from_slice(frame);
        self.bytes += data.len();
        self.frames.push_back(Backlogged {
            link,
            timestamp,
            data,
        });
    }

    /// The oldest frame; hand it back with [`recycle`](Self::recycle) once processed.
    pub fn pop(&mut self) -> Option<Backlogged> {
        let frame = self.frames.pop_front()?;
        self.bytes -= frame.data.len();
        Some(frame)
    }

    pub fn recycle(&mut self, frame: Backlogged) {
        if self.spare.len() < KEPT_BUFFERS {
            self.spare.push(frame.data);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Bytes of the frames waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_out_in_order_within_the_byte_bound() {
        let mut backlog = Backlog::new(10);
        assert!(backlog.has_room(10) && !backlog.has_room(11));
        backlog.push(LinkType::RawIp, Duration::from_secs(1), &[1; 6]);
        assert!(!backlog.has_room(5));
        backlog.push(LinkType::RawIp, Duration::from_secs(2), &[2; 4]);
        let first = backlog.pop().unwrap();
        assert_eq!(
            (first.timestamp, first.data.as_slice()),
            (Duration::from_secs(1), &[1; 6][..])
        );
        backlog.recycle(first);
        assert!(backlog.has_room(6));
        assert_eq!(backlog.pop().unwrap().data, vec![2; 4]);
        assert!(backlog.pop().is_none() && backlog.is_empty());
    }
}
