//! What a session reports: the packets it wants sent and the things worth counting.
//!
//! [`Output`] is the only way a [`Session`](super::Session) talks to the outside; the worker
//! implements it over its packet buffers and counters. [`RecordingOutput`] keeps everything in
//! memory for tests.

use std::time::Duration;

use crate::packet::Segment;

/// Where a session puts its packets and events.
pub trait Output {
    /// A segment to send to the target. The engine owns `payload`; the worker copies or emits
    /// it before returning. `segment.payload_len == payload.len()`.
    fn transmit(&mut self, segment: &Segment, payload: &[u8]);
    /// Something worth counting happened.
    fn event(&mut self, event: Event);
}

/// Everything a session reports. Every cap or timeout that triggers has its own variant:
/// nothing is dropped silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// We sent the first SYN of this session to the target.
    Opened {
        /// The client's SYN was captured (otherwise the SYN is ours: a mid-stream session).
        syn_seen: bool,
    },
    /// We sent a SYN of our own making (mid-stream session or rebuild).
    FakeHandshake,
    /// The target's SYN-ACK arrived and we acknowledged it.
    Established,
    /// No SYN-ACK within the handshake timeout; the session ended.
    HandshakeTimeout,
    /// The target answered our SYN but the client never sent anything after its own SYN
    /// within the handshake timeout (a SYN flood, a scan, a client that gave up); the
    /// target's half-open connection was reset and the session ended.
    ClientNeverAcknowledged,
    /// The client's stream started `count` new requests (they wait in the session until
    /// pacing releases them).
    RequestsCaptured { count: usize },
    /// The session ended with `count` captured requests never released to the target.
    RequestsDiscarded { count: usize },
    /// A new request was released to the target, `waited` after copy read its first byte.
    RequestSent { waited: Duration },
    /// The target sent the first bytes of its answer to the last request sent.
    RequestAnswered,
    /// A request sent got no byte of an answer before the next request went or its session
    /// ended: the target did not answer it, or (as online) the client sent the next one
    /// without waiting for one.
    RequestUnanswered,
    /// A request or close was held for the previous response longer than the response
    /// timeout (no answer, or an answer that never paused); released anyway.
    ResponseTimeout,
    /// The client's FIN or RST reached the target and the session ended normally.
    Closed,
    /// The target answered our SYN with a RST (nothing listens on its port); the session
    /// ended.
    HandshakeRefused,
    /// The target answered our SYN with an ACK of another connection: it still holds this
    /// 4-tuple (TIME-WAIT, or another copy's session). The session waits to be reopened
    /// from another port ([`Session::reopen_from`](super::Session::reopen_from)).
    PortInUse,
    /// The target answered our SYN for a connection it still held on this 4-tuple that
    /// expected exactly our next byte (an earlier replay of this client connection, left
    /// half-open by a copy that was killed); we reset it and opened again.
    StaleConnectionReset,
    /// The target reset the established connection.
    ResetByTarget,
    /// The target closed its side (FIN) before the client did.
    FinByTarget,
    /// The target closed while client data was still to be replayed: we reopened the
    /// connection and continued.
    SessionRebuilt,
    /// The target closed once more than `max_rebuilds` allows; the session ended.
    RebuildLimit,
    /// Neither side sent anything for the idle timeout; the session ended.
    IdleTimeout,
    /// A segment was retransmitted after the retransmission timeout.
    Retransmitted,
    /// A segment was retransmitted after three duplicate acknowledgements.
    FastRetransmit,
    /// A segment reached `max_retransmits`; the session was reset.
    RetransmitLimit,
    /// The target advertised a zero window; we probed it.
    ZeroWindowProbe,
    /// Client bytes we already held (a client retransmission or overlap) were dropped.
    ClientRetransmitDropped {
        /// Duplicate bytes dropped.
        bytes: usize,
    },
    /// A client segment arrived ahead of a gap and was kept until the gap fills.
    OutOfOrderBuffered,
    /// Client data beyond `max_buffered_bytes` (or the out-of-order segment cap); the
    /// session was reset.
    BufferOverflow {
        /// Bytes that did not fit.
        bytes: usize,
    },
    /// Client bytes that never reached the target when the session ended.
    UnsentDataDiscarded {
        /// Bytes lost to the replay.
        bytes: usize,
    },
    /// The client's 4-tuple started a new connection (new SYN or a sequence jump) while the
    /// old session was still open; the old one was reset and a new session started.
    PortReused,
    /// The session started mid-stream and `only_full_sessions` is set; nothing was replayed.
    NotFullSessionSkipped,
    /// The session closed, or stayed idle for the idle timeout, before any data or SYN was
    /// seen; nothing was replayed.
    EmptySessionSkipped,
    /// A target packet arrived after the session ended and was answered with RST.
    LateTargetPacketReset,
    /// copy stopped while the session was open; the target's end was reset.
    Aborted,
    /// Client data arrived during time-wait, after the session ended, and was dropped (once
    /// the session is finished, the worker opens a new one for such data).
    LateClientDataDropped {
        /// Payload bytes dropped.
        bytes: usize,
    },
}

impl Event {
    /// Whether the event ends an opened session (one that reported [`Event::Opened`]). Every
    /// opened session reports exactly one of these, which is what makes copy's counters add
    /// up (docs/measuring-loss.md, "What the counters tell").
    pub fn ends_session(self) -> bool {
        matches!(
            self,
            Event::Closed
                | Event::HandshakeTimeout
                | Event::ClientNeverAcknowledged
                | Event::HandshakeRefused
                | Event::IdleTimeout
                | Event::RetransmitLimit
                | Event::RebuildLimit
                | Event::BufferOverflow { .. }
                | Event::PortReused
                | Event::Aborted
        )
    }
}

/// An [`Output`] that records everything, for tests and debugging.
#[derive(Debug, Default, Clone)]
pub struct RecordingOutput {
    /// Every transmitted segment with its payload, in order.
    pub transmits: Vec<(Segment, Vec<u8>)>,
    /// Every event, in order.
    pub events: Vec<Event>,
}

impl RecordingOutput {
    /// How many times `event` was reported.
    pub fn count(&self, event: Event) -> usize {
        self.events.iter().filter(|e| **e == event).count()
    }

    /// Forgets what was recorded so far.
    pub fn clear(&mut self) {
        self.transmits.clear();
        self.events.clear();
    }
}

impl Output for RecordingOutput {
    fn transmit(&mut self, segment: &Segment, payload: &[u8]) {
        self.transmits.push((segment.clone(), payload.to_vec()));
    }

    fn event(&mut self, event: Event) {
        self.events.push(event);
    }
}
