//! A closed session's time-wait, kept in a few dozen bytes instead of a whole [`Session`]:
//! with short connections most of a shard's table is closed sessions waiting out their
//! time-wait (6 s at thousands of connections a second).
//!
//! A closed connection answers a late target segment with a RST (RFC 9293 §3.10.7.1), drops
//! and counts late client data, and takes a new SYN on its 4-tuple as a new connection. A
//! [`Session`] in time-wait and a [`TimeWait`] record do exactly that, through the functions
//! here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::engine::OWN_TTL;
use super::{Event, Output, Session, SessionConfig};
use crate::packet::{Segment, SeqNum, TcpFlags, TcpOptions};

/// The RST that answers `reply`, a target segment for a connection we no longer have (or
/// one we want closed): at its ACK number if it has one, else acknowledging it.
pub(super) fn reset_reply(
    reply: &Segment,
    client: SocketAddr,
    target: SocketAddr,
    window: u16,
    ip_id: u16,
) -> Segment {
    let (seq, flags, ack) = if reply.flags.ack() {
        (reply.ack, TcpFlags::RST, SeqNum(0))
    } else {
        (SeqNum(0), TcpFlags::RST | TcpFlags::ACK, reply.seq_end())
    };
    Segment {
        src: client,
        dst: target,
        seq,
        ack,
        flags,
        window,
        options: TcpOptions::default(),
        ip_id,
        ttl: OWN_TTL,
        payload_len: 0,
    }
}

/// What a closed connection does with a late target segment: anything but a RST is answered
/// with one, from `ends` (client, target), with `window` and the next of `ip_id`.
pub(super) fn answer_late_reply(
    reply: &Segment,
    (client, target): (SocketAddr, SocketAddr),
    window: u16,
    ip_id: &mut u16,
    out: &mut impl Output,
) {
    if reply.flags.rst() {
        return;
    }
    let reset = reset_reply(reply, client, target, window, *ip_id);
    *ip_id = ip_id.wrapping_add(1);
    out.transmit(&reset, &[]);
    out.event(Event::LateTargetPacketReset);
}

/// What a closed connection does with a late client segment: true when it is a new SYN, a
/// new connection on the 4-tuple; late data is dropped and counted.
pub(super) fn is_new_connection(segment: &Segment, payload: &[u8], out: &mut impl Output) -> bool {
    let new_syn = segment.flags.syn() && !segment.flags.ack();
    if !new_syn && !payload.is_empty() {
        out.event(Event::LateClientDataDropped {
            bytes: payload.len(),
        });
    }
    new_syn
}

/// A session that has ended, for the rest of its time-wait.
#[derive(Debug)]
pub struct TimeWait {
    config: Arc<SessionConfig>,
    client: SocketAddr,
    target: SocketAddr,
    /// The end of the time-wait; `None` once it is over.
    until: Option<Instant>,
    /// The window and next IPv4 identification the session's RSTs carry on.
    window: u16,
    ip_id: u16,
    carried_data: bool,
}

impl TimeWait {
    pub(super) fn new(
        config: Arc<SessionConfig>,
        (client, target): (SocketAddr, SocketAddr),
        until: Instant,
        (window, ip_id): (u16, u16),
        carried_data: bool,
    ) -> TimeWait {
        TimeWait {
            config,
            client,
            target,
            until: Some(until),
            window,
            ip_id,
            carried_data,
        }
    }

    /// A client segment: a new SYN opens a new session on the 4-tuple, which replaces this
    /// record; anything else is late.
    pub fn on_client(
        &mut self,
        now: Instant,
        segment: &Segment,
        payload: &[u8],
        out: &mut impl Output,
    ) -> Option<Session> {
        if self.until.is_none() || !is_new_connection(segment, payload, out) {
            return None;
        }
        let config = Arc::clone(&self.config);
        Some(Session::reopened(
            config,
            now,
            (self.client, self.target),
            segment,
            payload,
            out,
        ))
    }

    /// A target segment: anything but a RST is answered with one.
    pub fn on_reply(&mut self, segment: &Segment, out: &mut impl Output) {
        if self.until.is_some() {
            let ends = (self.client, self.target);
            answer_late_reply(segment, ends, self.window, &mut self.ip_id, out);
        }
    }

    /// When the time-wait ends, while it runs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.until
    }

    /// Ends the time-wait once its deadline has passed.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.until.is_some_and(|until| until <= now) {
            self.until = None;
        }
    }

    /// copy is shutting down: nothing is open on the target any more.
    pub fn abort(&mut self) {
        self.until = None;
    }

    pub fn is_finished(&self) -> bool {
        self.until.is_none()
    }

    pub fn carried_data(&self) -> bool {
        self.carried_data
    }
}
