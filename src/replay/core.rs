//! One shard's packet work, without a syscall: a captured frame is parsed once, rewritten
//! toward the target and run through its session; reply headers from an intercept go to the
//! session they answer. What comes out (IP packets, flows to register, counters) waits in
//! [`Emitted`] until the shard loop sends it.
//!
//! Pure: the shard loop owns the clock and the sockets, so a whole loop turn runs in tests
//! and benchmarks from bytes to bytes.

use std::time::Instant;

use crate::packet::{self, Flow, LinkType};
use crate::proto::ReplyHeaders;
use crate::stats::Counter;

use super::rewrite::{Repetition, Rewriter};
use super::sessions::{Emitted, SessionLimits, SessionTable, Shaping};

/// Parses, rewrites and replays the flows of one shard.
pub struct ShardCore {
    rewriter: Rewriter,
    sessions: SessionTable,
    malformed_logged: bool,
}

impl ShardCore {
    /// The core of a shard started at `now`.
    pub fn new(
        rewriter: Rewriter,
        limits: SessionLimits,
        shaping: &Shaping,
        now: Instant,
    ) -> ShardCore {
        ShardCore {
            rewriter,
            sessions: SessionTable::new(limits, shaping, now),
            malformed_logged: false,
        }
    }

    /// A frame captured on a link of type `link`, replayed as part of `repetition`. While
    /// `shedding`, it opens no new session.
    pub fn on_frame(
        &mut self,
        now: Instant,
        link: LinkType,
        frame: &[u8],
        repetition: Repetition,
        shedding: bool,
    ) {
        let counters = &mut self.sessions.emitted().counters;
        counters.bump(Counter::Captured);
        let parsed = match packet::parse_frame(link, frame) {
            Ok(parsed) => parsed,
            Err(err) => {
                counters.bump(Counter::Malformed);
                if !self.malformed_logged {
                    log::warn!(
                        "skipping a malformed packet ({err}); further ones are only counted"
                    );
                    self.malformed_logged = true;
                }
                return;
            }
        };
        let mut segment = parsed.segment;
        if !self.rewriter.rewrite(&mut segment, repetition) {
            counters.bump(Counter::Unmapped);
            return;
        }
        self.sessions
            .on_client(now, &segment, parsed.payload, repetition, shedding);
    }

    /// A target reply, as an intercept sent it.
    pub fn on_reply(&mut self, now: Instant, reply: &ReplyHeaders) {
        self.on_reply_headers(
            now,
            reply.headers(),
            reply.payload_prefix(),
            reply.timestamp_us(),
        );
    }

    /// The IP and TCP headers of a target reply, with the payload bytes and intercept's
    /// capture time that came with them (version 7; none from a version-6 intercept).
    pub fn on_reply_headers(
        &mut self,
        now: Instant,
        headers: &[u8],
        prefix: &[u8],
        stamped_us: Option<u64>,
    ) {
        let counters = &mut self.sessions.emitted().counters;
        counters.bump(Counter::RepliesReceived);
        match packet::parse_ip_headers(headers) {
            Ok(segment) => {
                if let Some(tap) = self.sessions.tap() {
                    tap.replied(&segment, prefix, stamped_us);
                }
                self.sessions.on_reply(now, &segment);
            }
            Err(err) => {
                counters.bump(Counter::Malformed);
                log::debug!("unusable reply headers from intercept: {err}");
            }
        }
    }

    /// An intercept says another copy process holds `flow`.
    pub fn on_flow_taken(&mut self, now: Instant, flow: Flow) {
        self.sessions.on_flow_taken(now, flow);
    }

    /// The session table: timers, live flows, shutdown.
    pub fn sessions(&mut self) -> &mut SessionTable {
        &mut self.sessions
    }

    /// What the sessions produced since it was last cleared.
    pub fn emitted(&mut self) -> &mut Emitted {
        self.sessions.emitted()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{Segment, SeqNum, TcpFlags, TcpOptions};
    use crate::session::SessionConfig;
    use crate::stats::Counters;
    use std::sync::Arc;

    fn core() -> ShardCore {
        ShardCore::new(
            Rewriter::new(vec!["80-198.51.100.30:8080".parse().unwrap()]),
            SessionLimits {
                session: Arc::new(SessionConfig::default()),
                mtu: 1500,
                max_sessions: 10,
            },
            &Shaping::default(),
            Instant::now(),
        )
    }

    fn syn_to(dst: &str) -> Vec<u8> {
        let segment = Segment {
            src: "198.51.100.10:40000".parse().unwrap(),
            dst: dst.parse().unwrap(),
            seq: SeqNum(1),
            ack: SeqNum(0),
            flags: TcpFlags::SYN,
            window: 65535,
            options: TcpOptions::default(),
            ip_id: 0,
            ttl: 64,
            payload_len: 0,
        };
        let mut bytes = Vec::new();
        packet::emit_ip(&segment, &[], &mut bytes).unwrap();
        bytes
    }

    fn counter(core: &mut ShardCore, counter: Counter) -> u64 {
        let shared = Counters::default();
        core.emitted().counters.flush_into(&shared);
        shared.get(counter)
    }

    #[test]
    fn a_captured_syn_goes_out_rewritten_toward_the_target() {
        let mut core = core();
        core.on_frame(
            Instant::now(),
            LinkType::RawIp,
            &syn_to("198.51.100.20:80"),
            Repetition::default(),
            false,
        );
        let emitted = core.emitted();
        assert_eq!(emitted.outgoing.len(), 1);
        let (dst, bytes) = &emitted.outgoing.packets()[0];
        assert_eq!(dst.to_string(), "198.51.100.30");
        let (segment, _) = packet::parse_ip(bytes).unwrap();
        assert_eq!(segment.dst, "198.51.100.30:8080".parse().unwrap());
        assert_eq!(counter(&mut core, Counter::Captured), 1);
    }

    #[test]
    fn unmapped_and_malformed_frames_are_counted_and_skipped() {
        let mut core = core();
        let now = Instant::now();
        let first = Repetition::default();
        core.on_frame(
            now,
            LinkType::RawIp,
            &syn_to("198.51.100.20:81"),
            first,
            false,
        );
        core.on_frame(now, LinkType::RawIp, &[0x45, 0, 0], first, false);
        core.on_reply_headers(now, &[0x45], &[], None);
        assert!(core.emitted().outgoing.is_empty());
        let shared = Counters::default();
        core.emitted().counters.flush_into(&shared);
        assert_eq!(shared.get(Counter::Unmapped), 1);
        assert_eq!(shared.get(Counter::Malformed), 2);
        assert_eq!(shared.get(Counter::RepliesReceived), 1);
    }
}
