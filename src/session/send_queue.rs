//! The client's byte stream on its way to the target.
//!
//! [`SendQueue`] holds client bytes by sequence number from the oldest byte the target has not
//! acknowledged to the end of what the client sent in order, plus out-of-order segments
//! waiting for a gap to fill. It trims client retransmissions and overlaps, so every byte is
//! stored once, and it notes where each request starts (a payload whose client ACK moved
//! forward: the client had received a response in between) and how many bytes the online
//! server had answered with by then.
//!
//! It does not decide what to send or when: that is the engine's job, with the target's
//! window and the pacing rules.

use std::collections::VecDeque;
use std::fmt;
use std::num::NonZeroU32;
use std::time::Instant;

use crate::packet::SeqNum;

/// Bytes the queue keeps consumed at its front, while unacknowledged bytes follow them,
/// before it moves the rest to the front of its buffer.
const COMPACT_THRESHOLD: usize = 4 * 1024;
/// Capacity an emptied queue keeps for the next request; a larger buffer (left by a large
/// body) is given back, so an idle keep-alive session costs little.
const KEPT_CAPACITY: usize = 4 * 1024;

/// What [`SendQueue::insert`] did with a client segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Inserted {
    /// Bytes now in the in-order stream (this segment's and any out-of-order ones it joined).
    pub in_order: usize,
    /// Bytes kept ahead of a gap.
    pub out_of_order: usize,
    /// Bytes dropped because the queue already had (or already delivered) them.
    pub duplicate: usize,
    /// Requests that started in the in-order bytes.
    pub requests: usize,
}

/// The queue is full: the segment was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueFull {
    /// Storing the segment would exceed the byte cap.
    Bytes {
        /// Bytes the segment would have added.
        needed: usize,
        /// Bytes still free under the cap.
        free: usize,
    },
    /// Too many out-of-order segments are waiting already.
    OutOfOrderSegments {
        /// The cap that was reached.
        max: usize,
    },
}

impl fmt::Display for QueueFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueFull::Bytes { needed, free } => write!(
                f,
                "session send queue full: segment needs {needed} bytes, {free} free"
            ),
            QueueFull::OutOfOrderSegments { max } => write!(
                f,
                "session send queue full: {max} out-of-order segments already waiting"
            ),
        }
    }
}

impl std::error::Error for QueueFull {}

/// A client segment that arrived ahead of a gap.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Chunk {
    seq: SeqNum,
    ack: SeqNum,
    /// When copy read it.
    captured_at: Instant,
    bytes: Vec<u8>,
}

/// Client bytes by sequence number, from the first byte the target has not acknowledged.
#[derive(Debug, Clone)]
pub struct SendQueue {
    /// Sequence number of `bytes[head]`.
    start: SeqNum,
    bytes: Vec<u8>,
    head: usize,
    /// Segments beyond the in-order end, sorted by sequence number.
    out_of_order: Vec<Chunk>,
    out_of_order_bytes: usize,
    max_bytes: usize,
    max_out_of_order: usize,
    /// The client's ACK on the latest in-order payload (or its handshake ACK).
    last_ack: Option<SeqNum>,
    /// Where each request not yet released starts, in order.
    request_starts: VecDeque<RequestStart>,
    /// Whether the first in-order payload has been seen.
    started: bool,
}

/// Where a request starts in the client's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestStart {
    /// Its first byte.
    pub seq: SeqNum,
    /// How far the client's ACK moved since the previous request started (or since its
    /// handshake ACK): how many bytes the online server answered the previous request (or
    /// greeted) with. `None` when the request follows no response: a first request sent
    /// without a greeting, or the first payload of a capture that began mid-stream.
    pub online_answer: Option<NonZeroU32>,
    /// When copy read its first byte.
    pub captured_at: Instant,
}

impl RequestStart {
    /// The client had received server data before sending it, so the target must answer
    /// first.
    pub fn follows_response(&self) -> bool {
        self.online_answer.is_some()
    }
}

impl SendQueue {
    /// An empty queue whose first byte will be `start`.
    pub fn new(start: SeqNum, max_bytes: usize, max_out_of_order: usize) -> SendQueue {
        SendQueue {
            start,
            bytes: Vec::new(),
            head: 0,
            out_of_order: Vec::new(),
            out_of_order_bytes: 0,
            max_bytes,
            max_out_of_order,
            last_ack: None,
            request_starts: VecDeque::new(),
            started: false,
        }
    }

    /// The oldest byte held (the first one the target has not acknowledged).
    pub fn start(&self) -> SeqNum {
        self.start
    }

    /// The sequence number after the last in-order byte.
    pub fn end(&self) -> SeqNum {
        self.start + self.in_order_len()
    }

    /// Bytes held in order.
    pub fn in_order_len(&self) -> usize {
        self.bytes.len() - self.head
    }

    /// Bytes held ahead of a gap.
    pub fn out_of_order_len(&self) -> usize {
        self.out_of_order_bytes
    }

    /// Records the client ACK that precedes its first payload (its handshake ACK), so a first
    /// payload with a later ACK counts as a request that follows a server greeting.
    pub fn set_initial_ack(&mut self, ack: SeqNum) {
        if self.last_ack.is_none() {
            self.last_ack = Some(ack);
        }
    }

    /// Stores a client segment's payload, read at `now`, trimming what the queue already has.
    pub fn insert(
        &mut self,
        now: Instant,
        seq: SeqNum,
        payload: &[u8],
        ack: SeqNum,
    ) -> Result<Inserted, QueueFull> {
        let mut inserted = Inserted::default();
        let Some((seq, payload)) = self.trim_delivered(seq, payload, &mut inserted) else {
            return Ok(inserted);
        };
        if seq == self.end() {
            self.check_room(payload.len())?;
            self.append(now, seq, payload, ack, &mut inserted);
            self.join_out_of_order(&mut inserted);
        } else {
            self.keep_out_of_order(now, seq, payload, ack, &mut inserted)?;
        }
        Ok(inserted)
    }

    /// Up to `max_len` in-order bytes starting at `seq`; empty when `seq` is outside the
    /// in-order range.
    pub fn bytes_at(&self, seq: SeqNum, max_len: usize) -> &[u8] {
        let offset = seq.distance_from(self.start);
        let Ok(offset) = usize::try_from(offset) else {
            return &[];
        };
        let available = self.bytes.get(self.head + offset..).unwrap_or(&[]);
        &available[..available.len().min(max_len)]
    }

    /// The target acknowledged everything before `ack`: forget those bytes.
    pub fn acknowledge(&mut self, ack: SeqNum) {
        let advance = ack.distance_from(self.start);
        let Ok(advance) = usize::try_from(advance) else {
            return;
        };
        let advance = advance.min(self.in_order_len());
        self.head += advance;
        self.start += advance as u32;
        if self.head == self.bytes.len() {
            // The usual case between requests: everything sent was acknowledged.
            self.bytes.clear();
            self.bytes.shrink_to(KEPT_CAPACITY);
            self.head = 0;
        } else if self.head >= COMPACT_THRESHOLD && self.head * 2 >= self.bytes.len() {
            self.bytes.drain(..self.head);
            self.head = 0;
        }
    }

    /// Where the next request not yet released starts, if the client sent one.
    pub fn next_request_start(&self) -> Option<RequestStart> {
        self.request_starts.front().copied()
    }

    /// Requests the client started that were not released yet.
    pub fn pending_requests(&self) -> usize {
        self.request_starts.len()
    }

    /// The request at [`next_request_start`](Self::next_request_start) was released.
    pub fn release_request(&mut self) {
        self.request_starts.pop_front();
    }

    /// Drops `payload` bytes the in-order stream already covers. `None` when nothing is left.
    fn trim_delivered<'p>(
        &self,
        seq: SeqNum,
        payload: &'p [u8],
        inserted: &mut Inserted,
    ) -> Option<(SeqNum, &'p [u8])> {
        let end = self.end();
        let covered = usize::try_from(end.distance_from(seq)).unwrap_or(0);
        if covered >= payload.len() {
            inserted.duplicate += payload.len();
            return None;
        }
        inserted.duplicate += covered;
        Some((seq + covered, &payload[covered..]))
    }

    fn check_room(&self, needed: usize) -> Result<(), QueueFull> {
        let used = self.in_order_len() + self.out_of_order_bytes;
        let free = self.max_bytes.saturating_sub(used);
        if needed > free {
            return Err(QueueFull::Bytes { needed, free });
        }
        Ok(())
    }

    fn append(
        &mut self,
        captured_at: Instant,
        seq: SeqNum,
        payload: &[u8],
        ack: SeqNum,
        inserted: &mut Inserted,
    ) {
        // Every earlier payload's ACK, or the handshake ACK, is at most `last_ack`, and a
        // payload whose ACK passes it starts a request: so `last_ack` is the ACK the previous
        // request started with, and the distance is exactly the answer in between. Serial
        // arithmetic (RFC 1982): an older ACK (a reordered or retransmitted segment) gives no
        // forward distance and starts nothing.
        let online_answer = self
            .last_ack
            .and_then(|last| u32::try_from(ack.distance_from(last)).ok())
            .and_then(NonZeroU32::new);
        if online_answer.is_some() || !self.started {
            self.request_starts.push_back(RequestStart {
                seq,
                online_answer,
                captured_at,
            });
            inserted.requests += 1;
        }
        self.started = true;
        self.last_ack = Some(self.last_ack.map_or(ack, |last| last.max(ack)));
        self.bytes.extend_from_slice(payload);
        inserted.in_order += payload.len();
    }

    /// Moves the out-of-order segments the in-order end now reaches into the stream.
    fn join_out_of_order(&mut self, inserted: &mut Inserted) {
        while let Some(first) = self.out_of_order.first() {
            if first.seq > self.end() {
                break;
            }
            let chunk = self.out_of_order.remove(0);
            self.out_of_order_bytes -= chunk.bytes.len();
            if let Some((seq, rest)) = self.trim_delivered(chunk.seq, &chunk.bytes, inserted) {
                self.append(chunk.captured_at, seq, rest, chunk.ack, inserted);
            }
        }
    }

    fn keep_out_of_order(
        &mut self,
        captured_at: Instant,
        seq: SeqNum,
        payload: &[u8],
        ack: SeqNum,
        inserted: &mut Inserted,
    ) -> Result<(), QueueFull> {
        let end = seq + payload.len();
        let already_held = self
            .out_of_order
            .iter()
            .any(|chunk| chunk.seq <= seq && chunk.seq + chunk.bytes.len() >= end);
        if already_held {
            inserted.duplicate += payload.len();
            return Ok(());
        }
        if self.out_of_order.len() >= self.max_out_of_order {
            return Err(QueueFull::OutOfOrderSegments {
                max: self.max_out_of_order,
            });
        }
        self.check_room(payload.len())?;
        let at = self
            .out_of_order
            .iter()
            .position(|chunk| chunk.seq > seq)
            .unwrap_or(self.out_of_order.len());
        self.out_of_order.insert(
            at,
            Chunk {
                seq,
                ack,
                captured_at,
                bytes: payload.to_vec(),
            },
        );
        self.out_of_order_bytes += payload.len();
        inserted.out_of_order += payload.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One moment for every insert, so request starts compare equal.
    fn t0() -> Instant {
        static T0: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
        *T0
    }

    const ACK: SeqNum = SeqNum(7000);

    fn queue(start: u32) -> SendQueue {
        SendQueue::new(SeqNum(start), 1 << 20, 8)
    }

    #[test]
    fn in_order_segments_append() {
        let mut q = queue(100);
        let got = q.insert(t0(), SeqNum(100), b"hello ", ACK).unwrap();
        assert_eq!(got.in_order, 6);
        q.insert(t0(), SeqNum(106), b"world", ACK).unwrap();
        assert_eq!(q.end(), SeqNum(111));
        assert_eq!(q.bytes_at(SeqNum(100), 100), b"hello world");
        assert_eq!(q.bytes_at(SeqNum(106), 3), b"wor");
        assert_eq!(q.bytes_at(SeqNum(111), 3), b"");
        assert_eq!(q.bytes_at(SeqNum(99), 3), b"");
    }

    #[test]
    fn retransmissions_and_overlaps_are_trimmed() {
        let mut q = queue(100);
        q.insert(t0(), SeqNum(100), b"abcdef", ACK).unwrap();
        let dup = q.insert(t0(), SeqNum(100), b"abcdef", ACK).unwrap();
        assert_eq!(
            dup,
            Inserted {
                duplicate: 6,
                ..Inserted::default()
            }
        );
        let overlap = q.insert(t0(), SeqNum(104), b"efgh", ACK).unwrap();
        assert_eq!(overlap.duplicate, 2);
        assert_eq!(overlap.in_order, 2);
        assert_eq!(q.bytes_at(SeqNum(100), 100), b"abcdefgh");
    }

    #[test]
    fn acknowledged_bytes_leave_memory_not_only_the_window() {
        // A keep-alive session: thousands of small requests, each acknowledged in turn.
        let mut q = SendQueue::new(SeqNum(100), 1 << 20, 8);
        let mut seq = SeqNum(100);
        for _ in 0..10_000 {
            q.insert(t0(), seq, &[b'r'; 60], ACK).unwrap();
            seq += 60;
            q.acknowledge(seq);
        }
        assert_eq!((q.in_order_len(), q.bytes.len()), (0, 0));
        // A large body, acknowledged: its buffer is given back.
        q.insert(t0(), seq, &[b'b'; 512 * 1024], ACK).unwrap();
        seq += 512 * 1024;
        q.acknowledge(seq);
        assert!(
            q.bytes.capacity() <= KEPT_CAPACITY,
            "{}",
            q.bytes.capacity()
        );
        // Partly acknowledged: what is left moves to the front once the front is large.
        q.insert(t0(), seq, &[b'c'; 3 * COMPACT_THRESHOLD], ACK)
            .unwrap();
        q.acknowledge(seq + 2 * COMPACT_THRESHOLD as u32);
        assert_eq!(q.bytes.len(), COMPACT_THRESHOLD);
        assert_eq!(q.bytes_at(q.start(), 4), b"cccc");
    }

    #[test]
    fn acknowledged_bytes_are_dropped_and_retransmissions_of_them_ignored() {
        let mut q = queue(100);
        q.insert(t0(), SeqNum(100), b"abcdef", ACK).unwrap();
        q.acknowledge(SeqNum(104));
        assert_eq!(q.start(), SeqNum(104));
        assert_eq!(q.bytes_at(SeqNum(104), 10), b"ef");
        let dup = q.insert(t0(), SeqNum(100), b"abcd", ACK).unwrap();
        assert_eq!(dup.duplicate, 4);
        // An ACK beyond what we hold (never happens with a sane target) is clamped.
        q.acknowledge(SeqNum(200));
        assert_eq!(q.start(), SeqNum(106));
        // An old ACK is ignored.
        q.acknowledge(SeqNum(50));
        assert_eq!(q.start(), SeqNum(106));
    }

    #[test]
    fn out_of_order_data_waits_for_the_gap() {
        let mut q = queue(100);
        let ahead = q.insert(t0(), SeqNum(106), b"world", ACK).unwrap();
        assert_eq!(ahead.out_of_order, 5);
        assert_eq!(q.end(), SeqNum(100));
        assert_eq!(q.out_of_order_len(), 5);
        let dup = q.insert(t0(), SeqNum(107), b"or", ACK).unwrap();
        assert_eq!(dup.duplicate, 2);
        let filled = q.insert(t0(), SeqNum(100), b"hello ", ACK).unwrap();
        assert_eq!(filled.in_order, 11);
        assert_eq!(q.out_of_order_len(), 0);
        assert_eq!(q.bytes_at(SeqNum(100), 100), b"hello world");
    }

    #[test]
    fn overlapping_out_of_order_chunks_join_trimmed() {
        let mut q = queue(0);
        q.insert(t0(), SeqNum(4), b"efgh", ACK).unwrap();
        q.insert(t0(), SeqNum(2), b"cdef", ACK).unwrap();
        let filled = q.insert(t0(), SeqNum(0), b"abc", ACK).unwrap();
        assert_eq!(filled.in_order, 8);
        assert_eq!(filled.duplicate, 3);
        assert_eq!(q.bytes_at(SeqNum(0), 100), b"abcdefgh");
    }

    #[test]
    fn caps_refuse_segments() {
        let mut q = SendQueue::new(SeqNum(0), 10, 1);
        q.insert(t0(), SeqNum(0), b"12345678", ACK).unwrap();
        assert_eq!(
            q.insert(t0(), SeqNum(8), b"abc", ACK),
            Err(QueueFull::Bytes { needed: 3, free: 2 })
        );
        q.insert(t0(), SeqNum(20), b"x", ACK).unwrap();
        assert_eq!(
            q.insert(t0(), SeqNum(30), b"y", ACK),
            Err(QueueFull::OutOfOrderSegments { max: 1 })
        );
        assert_eq!(
            QueueFull::Bytes { needed: 3, free: 2 }.to_string(),
            "session send queue full: segment needs 3 bytes, 2 free"
        );
    }

    fn start(seq: u32, online_answer: u32) -> Option<RequestStart> {
        Some(RequestStart {
            seq: SeqNum(seq),
            online_answer: NonZeroU32::new(online_answer),
            captured_at: t0(),
        })
    }

    #[test]
    fn a_forward_client_ack_starts_a_request() {
        let mut q = queue(0);
        q.set_initial_ack(SeqNum(1000));
        q.insert(t0(), SeqNum(0), b"GET /a", SeqNum(1000)).unwrap();
        q.insert(t0(), SeqNum(6), b"\n", SeqNum(1000)).unwrap();
        assert_eq!(q.next_request_start(), start(0, 0));
        q.release_request();
        assert_eq!(q.next_request_start(), None);
        q.insert(t0(), SeqNum(7), b"GET /b\n", SeqNum(1500))
            .unwrap();
        q.insert(t0(), SeqNum(14), b"GET /c\n", SeqNum(1400))
            .unwrap();
        assert_eq!(q.next_request_start(), start(7, 500));
        q.release_request();
        assert_eq!(q.next_request_start(), None);
    }

    #[test]
    fn the_online_answer_is_the_ack_advance_between_request_starts() {
        let server = u32::MAX - 100;
        let mut q = queue(0);
        q.set_initial_ack(SeqNum(server));
        // Later pure ACKs change nothing: the queue sees payloads only.
        q.set_initial_ack(SeqNum(server + 50));
        q.insert(t0(), SeqNum(0), b"GET /a\n", SeqNum(server))
            .unwrap();
        q.release_request();
        // The answer's ACK arrived only with the next request; it wraps around zero.
        q.insert(t0(), SeqNum(7), b"GET /b\n", SeqNum(server) + 300u32)
            .unwrap();
        assert_eq!(q.next_request_start(), start(7, 300));
        q.release_request();
        // A reordered segment with an older ACK starts nothing; the next answer is measured
        // from the ACK the previous request started with.
        q.insert(t0(), SeqNum(21), b"GET /d\n", SeqNum(server) + 1000u32)
            .unwrap();
        q.insert(t0(), SeqNum(14), b"GET /c\n", SeqNum(server) + 200u32)
            .unwrap();
        assert_eq!(q.next_request_start(), start(21, 700));
    }

    #[test]
    fn a_first_payload_after_a_greeting_follows_a_response() {
        let mut q = queue(0);
        q.set_initial_ack(SeqNum(1000));
        q.insert(t0(), SeqNum(0), b"EHLO x\n", SeqNum(1030))
            .unwrap();
        assert_eq!(q.next_request_start(), start(0, 30));
    }

    #[test]
    fn a_mid_stream_first_payload_is_a_request_that_waits_for_nothing() {
        let mut q = queue(0);
        q.insert(t0(), SeqNum(0), b"GET /\n", SeqNum(1030)).unwrap();
        assert_eq!(q.next_request_start(), start(0, 0));
    }

    #[test]
    fn works_across_sequence_wrap() {
        let start = u32::MAX - 3;
        let mut q = queue(start);
        q.insert(t0(), SeqNum(start), b"abcdef", ACK).unwrap();
        assert_eq!(q.end(), SeqNum(2));
        q.acknowledge(SeqNum(1));
        assert_eq!(q.bytes_at(SeqNum(1), 10), b"f");
    }

    proptest! {
        /// However a stream is cut, duplicated and reordered, the queue rebuilds it exactly.
        #[test]
        fn any_arrival_order_rebuilds_the_stream(
            start: u32,
            stream in proptest::collection::vec(any::<u8>(), 1..400),
            cuts in proptest::collection::vec((0usize..400, 1usize..60), 1..40),
        ) {
            let mut q = SendQueue::new(SeqNum(start), 1 << 20, 1024);
            for (offset, len) in cuts {
                let offset = offset % stream.len();
                let end = (offset + len).min(stream.len());
                q.insert(t0(), SeqNum(start) + offset, &stream[offset..end], ACK).unwrap();
            }
            q.insert(t0(), SeqNum(start), &stream, ACK).unwrap();
            prop_assert_eq!(q.bytes_at(SeqNum(start), usize::MAX), &stream[..]);
            prop_assert_eq!(q.out_of_order_len(), 0);
        }
    }
}
