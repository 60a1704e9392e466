//! The hello as each side lives it, with the optional shared secret: the two state
//! machines that decide when a connection is open, and refuse it otherwise.
//!
//! ```text
//! copy                                        intercept
//!  hello (type 7) ------------------------->  secret or not: switch marker, then a challenge
//!  [no secret: v6 registrations at once]      (method 0 without a secret: open at once;
//!  <----------- switch, challenge(nonce)       method 1: nothing counts until the response)
//!  switch, response(HMAC(secret, nonce)) -->  right: open; wrong: refusal, close
//!  instance, v7 registrations ------------->
//! ```
//! A side that finds the other's secret missing or different sends a refusal frame saying
//! why and closes; a version-6 hello (TCPCopy 1.x) is refused at once when intercept has a
//! secret, and copy with a secret refuses an intercept that never switches to version 7.
//!
//! Pure: messages in, bytes appended to the caller's outbound buffer, verdicts out; time
//! is an argument and the nonce is drawn by the caller.

use std::fmt;
use std::time::{Duration, Instant};

use super::auth::{Challenge, NONCE_LEN, Refusal, Secret};
use super::auth::{encode_challenge, encode_refusal, encode_response};
use super::{CopyMessage, InterceptMessage, Version, encode_switch};

/// Why a handshake ended without an open connection. Each variant is seen by one side, except
/// [`HandshakeError::Refused`]; the text completes "copy ADDR: ..." or "intercept ADDR: ...".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// Intercept: the copy's hello offers version 6 (TCPCopy 1.x), which cannot prove a secret.
    CopyVersion6 { offered: u16 },
    /// Intercept: the copy's response does not prove the secret.
    WrongSecret,
    /// Intercept: the copy sent a frame that is no response to the challenge.
    NoResponse,
    /// Intercept: no hello came in time.
    NoHello { after: Duration },
    /// Intercept: the hello came, the response to the challenge did not, in time.
    ChallengeUnanswered { after: Duration },
    /// Copy (with a secret): the intercept never switched to version 7.
    InterceptVersion6,
    /// Copy (with a secret): the intercept switched to version 7 but sent no challenge.
    NoChallenge,
    /// Copy: the intercept has no secret, this copy has one.
    InterceptHasNoSecret,
    /// Copy: the intercept asks for a secret this copy does not have.
    InterceptWantsSecret,
    /// The other side sent a refusal frame.
    Refused(Refusal),
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CopyVersion6 { offered } => write!(
                f,
                "its hello offers protocol version {offered} (TCPCopy 1.x), which cannot prove \
                 the shared secret this intercept's --secret-file requires"
            ),
            Self::WrongSecret => f.write_str(
                "its answer to the secret challenge is wrong: its --secret-file is not this \
                 intercept's",
            ),
            Self::NoResponse => f.write_str(
                "it did not answer the secret challenge: it has no --secret-file (or is an \
                 older tcpcopy)",
            ),
            Self::NoHello { after } => write!(f, "it sent no hello within {after:?}"),
            Self::ChallengeUnanswered { after } => {
                write!(f, "it did not answer the secret challenge within {after:?}")
            }
            Self::InterceptVersion6 => f.write_str(
                "it speaks only protocol version 6 (TCPCopy 1.x's intercept), which cannot \
                 check the secret of this copy's --secret-file: use tcpcopy intercept with the \
                 same --secret-file",
            ),
            Self::NoChallenge => f.write_str(
                "it sent no secret challenge (an older tcpcopy intercept), so it cannot check \
                 the secret of this copy's --secret-file",
            ),
            Self::InterceptHasNoSecret => f.write_str(
                "it has no --secret-file and this copy has one: copy registers its flows only \
                 with an intercept that checks the same secret",
            ),
            Self::InterceptWantsSecret => f.write_str(
                "it requires a shared secret: start copy with --secret-file naming a file with \
                 intercept's secret",
            ),
            Self::Refused(refusal) => refusal.fmt(f),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// What intercept does with one message of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// The connection is open: act on the message.
    Deliver(CopyMessage),
    /// The handshake took the message; nothing to act on.
    Held,
    /// The connection has just opened: replies and registrations flow in `version`.
    Opened {
        offered: u16,
        version: Version,
        authenticated: bool,
    },
    /// Close the connection, once what was appended to the outbound buffer is written.
    Refused(HandshakeError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GateState {
    AwaitingHello,
    AwaitingResponse { offered: u16 },
    Open,
    Closed,
}

/// Intercept's side of one connection's hello.
#[derive(Debug)]
pub struct InterceptHandshake {
    secret: Option<Secret>,
    nonce: [u8; NONCE_LEN],
    since: Instant,
    timeout: Duration,
    state: GateState,
}

impl InterceptHandshake {
    /// The handshake of a connection accepted at `now`, which must open within `timeout`;
    /// `nonce` must be fresh from a CSPRNG (it is only used with a secret).
    pub fn new(
        secret: Option<Secret>,
        nonce: [u8; NONCE_LEN],
        now: Instant,
        timeout: Duration,
    ) -> Self {
        InterceptHandshake {
            secret,
            nonce,
            since: now,
            timeout,
            state: GateState::AwaitingHello,
        }
    }

    /// Whether registrations and replies flow.
    pub fn is_open(&self) -> bool {
        self.state == GateState::Open
    }

    /// Takes one decoded message; what the copy must read next is appended to `out`.
    pub fn on_message(&mut self, message: CopyMessage, out: &mut Vec<u8>) -> Admission {
        match (self.state, message) {
            (GateState::Closed, _) => Admission::Held,
            (GateState::AwaitingHello, CopyMessage::Hello { offered, version }) => {
                self.on_hello(offered, version, out)
            }
            // The decoder yields nothing before the hello.
            (GateState::AwaitingHello, _) => Admission::Held,
            // Version-6 records a copy without a secret sent before it read the challenge:
            // never registered.
            (GateState::AwaitingResponse { .. }, CopyMessage::Registration(_)) => Admission::Held,
            (GateState::AwaitingResponse { offered }, CopyMessage::Response(mac)) => {
                let proven = self
                    .secret
                    .as_ref()
                    .is_some_and(|secret| secret.verify(&self.nonce, &mac));
                if proven {
                    self.state = GateState::Open;
                    Admission::Opened {
                        offered,
                        version: Version::V7,
                        authenticated: true,
                    }
                } else {
                    self.refuse(Refusal::WrongSecret, HandshakeError::WrongSecret, out)
                }
            }
            (_, CopyMessage::Refusal(refusal)) => {
                self.state = GateState::Closed;
                Admission::Refused(HandshakeError::Refused(refusal))
            }
            (GateState::AwaitingResponse { .. }, _) => {
                self.refuse(Refusal::SecretRequired, HandshakeError::NoResponse, out)
            }
            // A response nobody asked for (this intercept has no secret): nothing to check.
            (GateState::Open, CopyMessage::Response(_)) => Admission::Held,
            (GateState::Open, message) => Admission::Deliver(message),
        }
    }

    fn on_hello(&mut self, offered: u16, version: Version, out: &mut Vec<u8>) -> Admission {
        let opened = Admission::Opened {
            offered,
            version,
            authenticated: false,
        };
        match (version, &self.secret) {
            (Version::V6, None) => {
                self.state = GateState::Open;
                opened
            }
            // A 1.x copy would not understand a refusal frame.
            (Version::V6, Some(_)) => {
                self.state = GateState::Closed;
                Admission::Refused(HandshakeError::CopyVersion6 { offered })
            }
            (Version::V7, None) => {
                encode_switch(out);
                encode_challenge(&Challenge::None, out);
                self.state = GateState::Open;
                opened
            }
            (Version::V7, Some(_)) => {
                encode_switch(out);
                encode_challenge(&Challenge::HmacSha256(self.nonce), out);
                self.state = GateState::AwaitingResponse { offered };
                Admission::Held
            }
        }
    }

    fn refuse(&mut self, refusal: Refusal, error: HandshakeError, out: &mut Vec<u8>) -> Admission {
        encode_refusal(refusal, out);
        self.state = GateState::Closed;
        Admission::Refused(error)
    }

    /// The error that closes a connection not open by `now` past its timeout, once.
    pub fn on_timeout(&mut self, now: Instant) -> Option<HandshakeError> {
        if now.saturating_duration_since(self.since) < self.timeout {
            return None;
        }
        let after = self.timeout;
        let error = match self.state {
            GateState::AwaitingHello => HandshakeError::NoHello { after },
            GateState::AwaitingResponse { .. } => HandshakeError::ChallengeUnanswered { after },
            GateState::Open | GateState::Closed => return None,
        };
        self.state = GateState::Closed;
        Some(error)
    }
}

/// What copy does with one message of an intercept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyStep {
    /// Act on the message (a reply, a taken flow, an unknown frame).
    Deliver(InterceptMessage),
    /// The handshake took the message; nothing to act on.
    Held,
    /// Version 7 is agreed (and the secret proven, if there is one): send the instance, then
    /// the registrations waiting for version 7; with `held_back`, every live flow, none of
    /// which was registered yet.
    Opened { held_back: bool },
    /// Close the connection, once what was appended to the outbound buffer is written.
    Failed(HandshakeError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CopyState {
    AwaitingSwitch,
    AwaitingChallenge,
    Open,
    Closed,
}

/// Copy's side of one connection's hello (copy sends the hello itself when it connects).
#[derive(Debug)]
pub struct CopyHandshake {
    secret: Option<Secret>,
    since: Instant,
    timeout: Duration,
    state: CopyState,
}

impl CopyHandshake {
    /// The handshake of a connection that opened at `now`; with a secret, the intercept must
    /// have challenged within `timeout`.
    pub fn new(secret: Option<Secret>, now: Instant, timeout: Duration) -> Self {
        CopyHandshake {
            secret,
            since: now,
            timeout,
            state: CopyState::AwaitingSwitch,
        }
    }

    /// The version registrations are encoded in now, `None` while they must wait (a secret
    /// not proven yet): without a secret, version 6 until the intercept switches.
    pub fn registrations(&self) -> Option<Version> {
        match (self.state, &self.secret) {
            (CopyState::AwaitingSwitch, None) => Some(Version::V6),
            (CopyState::AwaitingChallenge, None) | (CopyState::Open, _) => Some(Version::V7),
            (CopyState::AwaitingSwitch | CopyState::AwaitingChallenge, Some(_))
            | (CopyState::Closed, _) => None,
        }
    }

    /// Takes one decoded message; what the intercept must read next is appended to `out`.
    pub fn on_message(&mut self, message: InterceptMessage, out: &mut Vec<u8>) -> CopyStep {
        match (self.state, message) {
            (CopyState::Closed, _) => CopyStep::Held,
            (CopyState::AwaitingSwitch, InterceptMessage::Switch(Version::V7)) => {
                encode_switch(out);
                self.state = CopyState::AwaitingChallenge;
                match self.secret {
                    None => CopyStep::Opened { held_back: false },
                    Some(_) => CopyStep::Held,
                }
            }
            (CopyState::AwaitingChallenge, InterceptMessage::Challenge(challenge)) => {
                self.on_challenge(challenge, out)
            }
            (_, InterceptMessage::Refusal(refusal)) => {
                self.state = CopyState::Closed;
                CopyStep::Failed(HandshakeError::Refused(refusal))
            }
            (_, InterceptMessage::Switch(_) | InterceptMessage::Challenge(_)) => CopyStep::Held,
            (_, message) => CopyStep::Deliver(message),
        }
    }

    fn on_challenge(&mut self, challenge: Challenge, out: &mut Vec<u8>) -> CopyStep {
        match (challenge, &self.secret) {
            (Challenge::None, None) => {
                self.state = CopyState::Open;
                CopyStep::Held
            }
            (Challenge::HmacSha256(nonce), Some(secret)) => {
                encode_response(&secret.respond(&nonce), out);
                self.state = CopyState::Open;
                CopyStep::Opened { held_back: true }
            }
            (Challenge::None, Some(_)) => {
                encode_refusal(Refusal::SecretRequired, out);
                self.state = CopyState::Closed;
                CopyStep::Failed(HandshakeError::InterceptHasNoSecret)
            }
            (Challenge::HmacSha256(_), None) => {
                encode_refusal(Refusal::SecretNotExpected, out);
                self.state = CopyState::Closed;
                CopyStep::Failed(HandshakeError::InterceptWantsSecret)
            }
        }
    }

    /// With a secret: the error that closes a connection whose intercept has not challenged
    /// by `now` past the timeout, once. Without one, a version-6 intercept is fine.
    pub fn on_timeout(&mut self, now: Instant) -> Option<HandshakeError> {
        if self.secret.is_none() || now.saturating_duration_since(self.since) < self.timeout {
            return None;
        }
        let error = match self.state {
            CopyState::AwaitingSwitch => HandshakeError::InterceptVersion6,
            CopyState::AwaitingChallenge => HandshakeError::NoChallenge,
            CopyState::Open | CopyState::Closed => return None,
        };
        self.state = CopyState::Closed;
        Some(error)
    }
}

#[cfg(test)]
mod tests;
