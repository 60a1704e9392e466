//! What intercept runs on the bytes a copy sends: the hello, then registrations in the
//! version the two settled on.
//!
//! Owns the per-connection decoding state (hello → v6 records → optional switch → v7 frames)
//! and its bounds: the first 14 bytes must be a hello, and a version-7 frame body longer than
//! [`MAX_COPY_FRAME_BODY`] is an error as soon as its length arrives, so a connection never
//! holds more than one small frame of undecoded bytes. It writes nothing: what to answer is
//! the [`InterceptHandshake`](super::InterceptHandshake)'s business.

use super::auth::{
    FRAME_REFUSAL, FRAME_RESPONSE, MAC_LEN, Refusal, decode_refusal, decode_response,
};
use super::negotiation::{SWITCH_LEN, SWITCH_MARKER, decode_switch};
use super::stream_buf::StreamBuf;
use super::v6::{RECORD_LEN, Record};
use super::v7::{FRAME_INSTANCE, FRAME_REGISTRATION, Frame, decode_instance, decode_registration};
use super::wire::be_u16_at;
use super::{ProtoError, Registration, Version};

/// The longest version-7 frame body intercept takes from a copy. Copy's frames are 1 to 38
/// bytes; the rest is room for fields appended later.
pub const MAX_COPY_FRAME_BODY: usize = 1024;

/// One decoded message from a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyMessage {
    /// The first message: the copy offered version `offered`, and `version` is what this
    /// intercept speaks to it from now on. For [`Version::V7`], send the switch marker first.
    Hello { offered: u16, version: Version },
    /// A flow to route replies for (or to stop routing).
    Registration(Registration),
    /// The copy process the connection belongs to (version 7): connections of one process
    /// share its id.
    Instance(u64),
    /// The MAC answering intercept's challenge (version 7, right after copy's switch).
    Response([u8; MAC_LEN]),
    /// The copy will not go on, and why; it closes the connection next.
    Refusal(Refusal),
    /// A version-7 frame of a type this decoder does not know; it was skipped.
    Unknown { frame_type: u16, body_len: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingHello,
    /// Version 6 for good.
    Records,
    /// Version 7 agreed; the copy sends v6 records until its own switch marker.
    RecordsUntilSwitch,
    Frames,
}

/// Incremental decoder of the copy → intercept byte stream.
#[derive(Debug)]
pub struct CopyStreamDecoder {
    input: StreamBuf,
    highest: Version,
    state: State,
}

impl CopyStreamDecoder {
    /// A decoder for a fresh connection, agreeing to at most `highest`.
    pub fn new(highest: Version) -> Self {
        CopyStreamDecoder {
            input: StreamBuf::default(),
            highest,
            state: State::AwaitingHello,
        }
    }

    /// Appends bytes read from the connection.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.input.feed(bytes);
    }

    /// The next whole message, `Ok(None)` until more bytes arrive, or the error that ended
    /// the stream (returned again on every later call: close the connection).
    pub fn next_message(&mut self) -> Result<Option<CopyMessage>, ProtoError> {
        self.input.check()?;
        let result = self.step();
        self.input.latch(result)
    }

    /// The version intercept speaks on this connection, once the hello has arrived.
    pub fn version(&self) -> Option<Version> {
        match self.state {
            State::AwaitingHello => None,
            State::Records => Some(Version::V6),
            State::RecordsUntilSwitch | State::Frames => Some(Version::V7),
        }
    }

    /// Bytes received but not decoded yet.
    pub fn buffered(&self) -> usize {
        self.input.pending().len()
    }

    fn step(&mut self) -> Result<Option<CopyMessage>, ProtoError> {
        loop {
            match self.state {
                State::AwaitingHello => {
                    let Some(record) = self.take_record()? else {
                        return Ok(None);
                    };
                    let offered = record.hello_version()?;
                    let version = if offered >= Version::V7.number() {
                        self.highest
                    } else {
                        Version::V6
                    };
                    self.state = match version {
                        Version::V6 => State::Records,
                        Version::V7 => State::RecordsUntilSwitch,
                    };
                    return Ok(Some(CopyMessage::Hello { offered, version }));
                }
                State::RecordsUntilSwitch
                    if be_u16_at(self.input.pending(), 0) == Some(SWITCH_MARKER) =>
                {
                    let Some(marker) = self.input.peek(SWITCH_LEN) else {
                        return Ok(None);
                    };
                    decode_switch(marker)?;
                    self.input.consume(SWITCH_LEN);
                    self.state = State::Frames;
                }
                State::Records | State::RecordsUntilSwitch => {
                    let Some(record) = self.take_record()? else {
                        return Ok(None);
                    };
                    return record
                        .registration()
                        .map(|r| Some(CopyMessage::Registration(r)));
                }
                State::Frames => return self.take_frame(),
            }
        }
    }

    fn take_record(&mut self) -> Result<Option<Record>, ProtoError> {
        let Some(bytes) = self.input.peek(RECORD_LEN) else {
            return Ok(None);
        };
        let record = Record::decode(bytes)?;
        self.input.consume(RECORD_LEN);
        Ok(Some(record))
    }

    fn take_frame(&mut self) -> Result<Option<CopyMessage>, ProtoError> {
        let Some((frame, len)) = Frame::split_within(self.input.pending(), MAX_COPY_FRAME_BODY)?
        else {
            return Ok(None);
        };
        let message = match frame.frame_type {
            FRAME_REGISTRATION => CopyMessage::Registration(decode_registration(frame.body)?),
            FRAME_INSTANCE => CopyMessage::Instance(decode_instance(frame.body)?),
            FRAME_RESPONSE => CopyMessage::Response(decode_response(frame.body)?),
            FRAME_REFUSAL => CopyMessage::Refusal(decode_refusal(frame.body)?),
            frame_type => CopyMessage::Unknown {
                frame_type,
                body_len: frame.body.len(),
            },
        };
        self.input.consume(len);
        Ok(Some(message))
    }
}

impl Default for CopyStreamDecoder {
    /// A decoder that agrees to the newest version, [`Version::V7`].
    fn default() -> Self {
        Self::new(Version::V7)
    }
}
