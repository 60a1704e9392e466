//! A slot of a shard's session table: the whole [`Session`] while its connection lives, only
//! its [`TimeWait`] record once it has ended. With short connections most of a table is
//! sessions waiting out their time-wait, and the record is about an eighth of a session.

use std::net::SocketAddr;
use std::time::Instant;

use crate::packet::Segment;
use crate::session::{Output, Session, TimeWait};

pub enum Slot {
    /// Boxed: a table sized for its sessions (half its slots empty after it grows) then
    /// costs a pointer per empty slot, not a whole session.
    Open(Box<Session>),
    Closed(TimeWait),
}

impl Slot {
    pub fn new(session: Session) -> Slot {
        Slot::Open(Box::new(session))
    }

    /// Whether the session is being replayed (not ended into its time-wait).
    pub fn is_open(&self) -> bool {
        matches!(self, Slot::Open(session) if session.time_wait().is_none())
    }

    /// Keeps only the time-wait record of a session that has ended.
    pub fn compact(&mut self) {
        if let Slot::Open(session) = self
            && let Some(time_wait) = session.time_wait()
        {
            *self = Slot::Closed(time_wait);
        }
    }

    pub fn on_client(
        &mut self,
        now: Instant,
        segment: &Segment,
        payload: &[u8],
        out: &mut impl Output,
    ) {
        match self {
            Slot::Open(session) => session.on_client(now, segment, payload, out),
            Slot::Closed(time_wait) => {
                if let Some(session) = time_wait.on_client(now, segment, payload, out) {
                    *self = Slot::new(session);
                }
            }
        }
    }

    pub fn on_reply(&mut self, now: Instant, segment: &Segment, out: &mut impl Output) {
        match self {
            Slot::Open(session) => session.on_reply(now, segment, out),
            Slot::Closed(time_wait) => time_wait.on_reply(segment, out),
        }
    }

    pub fn on_timeout(&mut self, now: Instant, out: &mut impl Output) {
        match self {
            Slot::Open(session) => session.on_timeout(now, out),
            Slot::Closed(time_wait) => time_wait.on_timeout(now),
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Slot::Open(session) => session.poll_timeout(),
            Slot::Closed(time_wait) => time_wait.poll_timeout(),
        }
    }

    /// See [`Session::abort`]: true when the connection was still open on the target.
    pub fn abort(&mut self, now: Instant, out: &mut impl Output) -> bool {
        match self {
            Slot::Open(session) => session.abort(now, out),
            Slot::Closed(time_wait) => {
                time_wait.abort();
                false
            }
        }
    }

    /// See [`Session::reopen_from`]; an ended session has no connection to move.
    pub fn reopen_from(&mut self, now: Instant, client: SocketAddr, out: &mut impl Output) {
        if let Slot::Open(session) = self {
            session.reopen_from(now, client, out);
        }
    }

    pub fn is_finished(&self) -> bool {
        match self {
            Slot::Open(session) => session.is_finished(),
            Slot::Closed(time_wait) => time_wait.is_finished(),
        }
    }

    pub fn carried_data(&self) -> bool {
        match self {
            Slot::Open(session) => session.carried_data(),
            Slot::Closed(time_wait) => time_wait.carried_data(),
        }
    }

    pub fn is_connecting(&self) -> bool {
        matches!(self, Slot::Open(session) if session.is_connecting())
    }

    pub fn port_in_use(&self) -> bool {
        matches!(self, Slot::Open(session) if session.port_in_use())
    }

    pub fn buffered_bytes(&self) -> usize {
        match self {
            Slot::Open(session) => session.buffered_bytes(),
            Slot::Closed(_) => 0,
        }
    }
}
