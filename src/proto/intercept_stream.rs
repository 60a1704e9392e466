//! What copy runs on the bytes an intercept sends: an optional switch marker, then version-6
//! combined frames or version-7 frames.
//!
//! Owns the per-connection decoding state. A decoder that offered version 7 starts undecided
//! and settles on the first two bytes: the switch marker means version 7, anything else is
//! the count of a version-6 combined frame. It writes nothing: on
//! [`InterceptMessage::Switch`] the caller answers with [`encode_switch`](super::encode_switch)
//! and sends version-7 registrations from then on.

use super::auth::{
    Challenge, FRAME_CHALLENGE, FRAME_REFUSAL, Refusal, decode_challenge, decode_refusal,
};
use super::negotiation::{SWITCH_LEN, SWITCH_MARKER, decode_switch};
use super::stream_buf::StreamBuf;
use super::v6::{COUNT_LEN, MAX_DECODE_COUNT, V6Layout, decode_message};
use super::v7::{FRAME_FLOW_TAKEN, FRAME_REPLY, Frame, decode_flow_taken, decode_reply};
use super::wire::be_u16_at;
use super::{ProtoError, ReplyHeaders, Version};

/// One decoded message from an intercept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterceptMessage {
    /// The intercept agreed to this version: send the switch marker back, then speak it.
    Switch(Version),
    /// The headers of one reply from the target.
    Reply(ReplyHeaders),
    /// Another copy process registered this flow first (version 7): the session on it
    /// must move to another client port.
    FlowTaken(crate::packet::Flow),
    /// What the intercept asks before it takes registrations (version 7, right after its
    /// switch marker).
    Challenge(Challenge),
    /// The intercept will not go on, and why; it closes the connection next.
    Refusal(Refusal),
    /// A version-7 frame of a type this decoder does not know; it was skipped.
    Unknown { frame_type: u16, body_len: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Version 7 offered; nothing received yet.
    Undecided,
    /// Version 6, between combined frames.
    CombinedCount,
    /// Version 6, inside a combined frame with this many messages still to come.
    CombinedMessages {
        remaining: u16,
    },
    Frames,
}

/// Incremental decoder of the intercept → copy byte stream.
#[derive(Debug)]
pub struct InterceptStreamDecoder {
    input: StreamBuf,
    layout: V6Layout,
    state: State,
}

impl InterceptStreamDecoder {
    /// A decoder for a connection on which copy's hello offered `offered`.
    pub fn new(offered: Version) -> Self {
        InterceptStreamDecoder {
            input: StreamBuf::default(),
            layout: V6Layout::default(),
            state: match offered {
                Version::V6 => State::CombinedCount,
                Version::V7 => State::Undecided,
            },
        }
    }

    /// Expects version-6 messages in `layout` (a 1.x intercept built with its payload option).
    pub fn with_v6_layout(mut self, layout: V6Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Appends bytes read from the connection.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.input.feed(bytes);
    }

    /// The next whole message, `Ok(None)` until more bytes arrive, or the error that ended
    /// the stream (returned again on every later call: close the connection).
    pub fn next_message(&mut self) -> Result<Option<InterceptMessage>, ProtoError> {
        self.input.check()?;
        let result = self.step();
        self.input.latch(result)
    }

    /// The version the intercept speaks, once its first bytes have told.
    pub fn version(&self) -> Option<Version> {
        match self.state {
            State::Undecided => None,
            State::CombinedCount | State::CombinedMessages { .. } => Some(Version::V6),
            State::Frames => Some(Version::V7),
        }
    }

    /// Bytes received but not decoded yet.
    pub fn buffered(&self) -> usize {
        self.input.pending().len()
    }

    fn step(&mut self) -> Result<Option<InterceptMessage>, ProtoError> {
        loop {
            match self.state {
                State::Undecided => {
                    let Some(first) = be_u16_at(self.input.pending(), 0) else {
                        return Ok(None);
                    };
                    if first != SWITCH_MARKER {
                        self.state = State::CombinedCount;
                        continue;
                    }
                    let Some(marker) = self.input.peek(SWITCH_LEN) else {
                        return Ok(None);
                    };
                    let version = decode_switch(marker)?;
                    self.input.consume(SWITCH_LEN);
                    self.state = State::Frames;
                    return Ok(Some(InterceptMessage::Switch(version)));
                }
                State::CombinedCount => {
                    let Some(count) = be_u16_at(self.input.pending(), 0) else {
                        return Ok(None);
                    };
                    if !(1..=MAX_DECODE_COUNT).contains(&count) {
                        return Err(ProtoError::BadCombinedCount {
                            count,
                            max: MAX_DECODE_COUNT,
                        });
                    }
                    self.input.consume(COUNT_LEN);
                    self.state = State::CombinedMessages { remaining: count };
                }
                State::CombinedMessages { remaining } => {
                    let message_len = self.layout.message_len();
                    let Some(message) = self.input.peek(message_len) else {
                        return Ok(None);
                    };
                    let reply = decode_message(message, self.layout)?;
                    self.input.consume(message_len);
                    self.state = match remaining.saturating_sub(1) {
                        0 => State::CombinedCount,
                        remaining => State::CombinedMessages { remaining },
                    };
                    return Ok(Some(InterceptMessage::Reply(reply)));
                }
                State::Frames => return self.take_frame(),
            }
        }
    }

    fn take_frame(&mut self) -> Result<Option<InterceptMessage>, ProtoError> {
        let Some((frame, len)) = Frame::split(self.input.pending()) else {
            return Ok(None);
        };
        let message = match frame.frame_type {
            FRAME_REPLY => InterceptMessage::Reply(decode_reply(frame.body)?),
            FRAME_FLOW_TAKEN => InterceptMessage::FlowTaken(decode_flow_taken(frame.body)?),
            FRAME_CHALLENGE => InterceptMessage::Challenge(decode_challenge(frame.body)?),
            FRAME_REFUSAL => InterceptMessage::Refusal(decode_refusal(frame.body)?),
            frame_type => InterceptMessage::Unknown {
                frame_type,
                body_len: frame.body.len(),
            },
        };
        self.input.consume(len);
        Ok(Some(message))
    }
}
