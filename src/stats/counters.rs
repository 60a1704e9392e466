//! Named event counters shared by the threads of `copy` and `intercept`.
//!
//! Hot paths bump a thread-local [`LocalCounters`] (no atomics, no sharing) and flush it
//! into the shared [`Counters`] now and then; reporters read [`Snapshot`]s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::histogram::{DelayHistogram, DelaySnapshot, LocalDelays};

macro_rules! counters {
    ($( $(#[doc = $doc:literal])* $variant:ident => $name:literal, )*) => {
        /// Everything tcpcopy counts.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Counter { $( $(#[doc = $doc])* $variant, )* }

        impl Counter {
            /// Every counter, in report order.
            pub const ALL: &'static [Counter] = &[ $( Counter::$variant, )* ];

            /// The counter's name in logs and reports.
            pub fn name(self) -> &'static str {
                match self { $( Counter::$variant => $name, )* }
            }

            /// What the counter counts: its doc comment, on one line (the metrics' help).
            pub fn help(self) -> &'static str {
                // Each doc line starts with the space after `///`: joined, they read as one.
                match self { $( Counter::$variant => concat!($($doc),*).trim_ascii_start(), )* }
            }
        }
    };
}

counters! {
    /// Frames the capture delivered.
    Captured => "captured",
    /// Frames that were not a valid TCP packet (counted and skipped).
    Malformed => "malformed",
    /// TCP packets no mapping covers (only possible with a custom filter).
    Unmapped => "unmapped",
    /// Packets the kernel dropped before the capture saw them.
    KernelDropped => "kernel_dropped",
    /// IP packets sent to the target.
    Sent => "sent",
    /// Sends the kernel refused.
    SendFailed => "send_failed",
    /// Captured segments larger than the MTU that were split.
    Split => "split",
    /// Sessions opened toward the target.
    SessionsOpened => "sessions_opened",
    /// Of those, sessions whose SYN was not captured (opened with our own handshake).
    SessionsMidstream => "sessions_midstream",
    /// Sessions not replayed at all because their SYN was not seen (`-O`).
    SessionsSkipped => "sessions_skipped",
    /// Requests the clients sent in the sessions copy replays (each waits there until it
    /// is released to the target).
    RequestsCaptured => "requests_captured",
    /// Requests released to the target.
    RequestsSent => "requests_sent",
    /// Captured requests a session still held when it ended (the target reset or closed it,
    /// a timeout, copy's exit): never sent to the target.
    RequestsNotSent => "requests_not_sent",
    /// Requests sent to which the target sent the first bytes of an answer.
    RequestsAnswered => "requests_answered",
    /// Requests sent that had no byte of an answer when the next request went or their
    /// session ended: the target did not answer, or the client itself sent the next one
    /// without waiting for an answer (pipelined requests, requests with no reply).
    RequestsUnanswered => "requests_unanswered",
    /// Sessions that finished normally.
    SessionsClosed => "sessions_closed",
    /// Sessions the target reset.
    SessionsReset => "sessions_reset",
    /// Sessions ended by the idle timeout.
    SessionsTimedOut => "sessions_timed_out",
    /// Sessions reset after too many retransmissions or target closes.
    SessionsGivenUp => "sessions_given_up",
    /// Sessions still open when copy stopped (reset on the target).
    SessionsAborted => "sessions_aborted",
    /// Sessions reopened after the target closed with client data pending.
    SessionsRebuilt => "sessions_rebuilt",
    /// Requests or closes released after waiting the whole response timeout.
    ResponsesTimedOut => "responses_timed_out",
    /// Client ports reused by a new connection while a session was open.
    PortsReused => "ports_reused",
    /// Sessions reset because their buffered client data exceeded the cap.
    BufferOverflows => "buffer_overflows",
    /// Client payload bytes that never reached the target.
    BytesNotReplayed => "bytes_not_replayed",
    /// New sessions not replayed because the worker's session table was full of sessions
    /// that carried data.
    SessionsOverLimit => "sessions_over_limit",
    /// Sessions that never carried data (a SYN flood's), reset and dropped to make room for
    /// a new one when the table was full (also counted in sessions_aborted).
    SessionsEvicted => "sessions_evicted",
    /// New sessions not replayed because copy was overloaded (its send queue was deep).
    SessionsShed => "sessions_shed",
    /// New sessions `-r`/`--ramp` left out (counted at their SYN).
    SessionsSampledOut => "sessions_sampled_out",
    /// New sessions (replicas each) refused by `--max-rate`.
    SessionsRateLimited => "sessions_rate_limited",
    /// New sessions not replayed because no client port toward the target was free.
    SessionsNoPort => "sessions_no_port",
    /// Client ports moved because a live session of this copy held the first choice, or
    /// the target held the 4-tuple (see ports_in_use_at_target).
    PortsRemapped => "ports_remapped",
    /// SYNs the target answered for a connection it still holds on that 4-tuple (its
    /// TIME-WAIT, or another copy's session); each such session moved to another port.
    PortsInUseAtTarget => "ports_in_use_at_target",
    /// Connections the target still held on a session's 4-tuple from an earlier replay of the
    /// same client connection (a copy killed mid-session), reset so the session could open.
    StaleConnectionsReset => "stale_connections_reset",
    /// Handshakes the target never answered.
    HandshakesFailed => "handshakes_failed",
    /// Handshakes the target answered but the client itself never completed (nothing after
    /// its SYN: a SYN flood, a scan, a client that gave up); the target's half-open
    /// connection was reset.
    HandshakesAbandoned => "handshakes_abandoned",
    /// Handshakes the target answered with a RST (nothing listening on the target port).
    HandshakesRefused => "handshakes_refused",
    /// Segments sent again toward the target.
    Retransmitted => "retransmitted",
    /// Reply headers received from intercepts.
    RepliesReceived => "replies_received",
    /// Reply headers for a flow the receiving shard has no session for (it ended, or was
    /// never opened there).
    RepliesUnmatched => "replies_unmatched",
    /// Registrations sent to intercepts.
    Registrations => "registrations",
    /// IPv6 flows an intercept could not take: it speaks only version 6 (TCPCopy 1.x's
    /// intercept), which has no IPv6; those sessions get no replies through it.
    RegistrationsRefused => "registrations_refused",
    /// Intercept connections (re)established.
    InterceptConnects => "intercept_connects",
    /// Flows copies registered at intercept (each registration received): replies of
    /// these are expected.
    FlowsRegistered => "flows_registered",
    /// Replies intercept routed to a copy.
    RepliesRouted => "replies_routed",
    /// Replies intercept could not route (no copy registered the flow).
    RepliesUnrouted => "replies_unrouted",
    /// Replies of flows no copy had registered yet that intercept kept for a registration
    /// that may follow: SYN-ACKs and RSTs (which can overtake it) and replies behind one.
    /// Each ends routed (its registration came) or in parked_replies_dropped.
    RepliesParked => "replies_parked",
    /// Parked replies whose registration never came: dropped after 30 s, to make room for a
    /// newer one in a full park (65,536), or when intercept stopped.
    ParkedRepliesDropped => "parked_replies_dropped",
    /// Registrations intercept refused because another copy process holds the flow (the
    /// registering copy moves its session to another port).
    FlowsHeldByOtherCopy => "flows_held_by_other_copy",
    /// Sessions copy moved to another port because an intercept said another copy process
    /// holds their flow (two copies replaying the same client onto the same 4-tuple).
    PortsHeldByOtherCopy => "ports_held_by_other_copy",
    /// Replies dropped because a copy connection could not keep up.
    RepliesDroppedSlowPeer => "replies_dropped_slow_peer",
    /// Registrations intercept refused because its routing table was full.
    RegistrationsOverLimit => "registrations_over_limit",
    /// Connections to intercept's control port closed at accept: their address is outside
    /// --allow.
    ConnectionsRefused => "connections_refused",
    /// Copy connections closed at the hello for not proving the --secret-file secret (a wrong
    /// or missing secret, or TCPCopy 1.x's version 6).
    ConnectionsUnauthenticated => "connections_unauthenticated",
    /// Copy connections closed because what they sent is not the control protocol (or a
    /// frame over the size limit).
    ConnectionsMalformed => "connections_malformed",
    /// Copy connections closed because they completed no hello in time, or made room for
    /// newer ones while too many waited for theirs.
    ConnectionsSilent => "connections_silent",
}

/// Shared, thread-safe totals.
#[derive(Debug)]
pub struct Counters {
    values: Vec<AtomicU64>,
    /// How long after capture each request went to the target.
    request_delays: DelayHistogram,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            values: Counter::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            request_delays: DelayHistogram::default(),
        }
    }
}

impl Counters {
    /// How long after capture the requests went to the target, so far.
    pub fn request_delays(&self) -> DelaySnapshot {
        self.request_delays.snapshot()
    }

    pub fn add(&self, counter: Counter, n: u64) {
        self.values[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Replaces a gauge-like value (e.g. the kernel's cumulative drop count).
    pub fn set(&self, counter: Counter, value: u64) {
        self.values[counter as usize].store(value, Ordering::Relaxed);
    }

    pub fn get(&self, counter: Counter) -> u64 {
        self.values[counter as usize].load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            values: self
                .values
                .iter()
                .map(|v| v.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// One thread's unshared counts, flushed into [`Counters`].
#[derive(Debug, Clone)]
pub struct LocalCounters {
    values: Vec<u64>,
    request_delays: LocalDelays,
    pending: u64,
}

impl Default for LocalCounters {
    fn default() -> Self {
        LocalCounters {
            values: vec![0; Counter::ALL.len()],
            request_delays: LocalDelays::default(),
            pending: 0,
        }
    }
}

impl LocalCounters {
    /// How many bumps a thread may hold before it should flush.
    pub const FLUSH_EVERY: u64 = 256;

    pub fn add(&mut self, counter: Counter, n: u64) {
        self.values[counter as usize] += n;
        self.pending += 1;
    }

    pub fn bump(&mut self, counter: Counter) {
        self.add(counter, 1);
    }

    /// A request went to the target `wait` after copy read it.
    pub fn record_request_delay(&mut self, wait: Duration) {
        self.request_delays.record(wait);
        self.pending += 1;
    }

    /// True when enough has accumulated to be worth a flush.
    pub fn should_flush(&self) -> bool {
        self.pending >= Self::FLUSH_EVERY
    }

    /// Adds everything into `shared` and starts again from zero.
    pub fn flush_into(&mut self, shared: &Counters) {
        self.flush_into_each(&[shared]);
    }

    /// Adds the counts to every one of `targets` (e.g. the process's and a shard's own
    /// counters), then resets them.
    pub fn flush_into_each(&mut self, targets: &[&Counters]) {
        if self.pending == 0 {
            return;
        }
        for (counter, value) in Counter::ALL.iter().zip(self.values.iter_mut()) {
            if *value != 0 {
                let value = std::mem::take(value);
                for target in targets {
                    target.add(*counter, value);
                }
            }
        }
        for target in targets {
            self.request_delays.add_into(&target.request_delays);
        }
        self.request_delays.clear();
        self.pending = 0;
    }
}

/// Counter values at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    values: Vec<u64>,
}

impl Snapshot {
    pub fn get(&self, counter: Counter) -> u64 {
        self.values[counter as usize]
    }

    /// `name value` pairs for `shown`, e.g. `captured 120 sent 118`.
    pub fn format(&self, shown: &[Counter]) -> String {
        shown
            .iter()
            .map(|&c| format!("{} {}", c.name(), self.get(c)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_counts_reach_the_shared_totals() {
        let shared = Counters::default();
        let mut local = LocalCounters::default();
        local.bump(Counter::Captured);
        local.add(Counter::Sent, 3);
        assert_eq!(shared.get(Counter::Sent), 0);
        local.flush_into(&shared);
        local.flush_into(&shared);
        assert_eq!(shared.get(Counter::Captured), 1);
        assert_eq!(shared.get(Counter::Sent), 3);
        let snap = shared.snapshot();
        assert_eq!(
            snap.format(&[Counter::Captured, Counter::Sent]),
            "captured 1, sent 3"
        );
    }

    #[test]
    fn help_is_the_doc_comment_on_one_line() {
        assert_eq!(Counter::Captured.help(), "Frames the capture delivered.");
        assert_eq!(
            Counter::RepliesUnmatched.help(),
            "Reply headers for a flow the receiving shard has no session for (it ended, or was \
             never opened there)."
        );
        assert!(Counter::ALL.iter().all(|c| !c.help().is_empty()));
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = Counter::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Counter::ALL.len());
    }
}
