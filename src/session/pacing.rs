//! Request/response pacing: when the next request may go to the target.
//!
//! TCPCopy's rule, kept here: a new request (see [`SendQueue`](super::send_queue::SendQueue))
//! is held until the target has answered the previous one. The target's reply payloads are not
//! visible, but their sizes are, and the real client's ACKs say how many bytes the online
//! server answered each request with ([`RequestStart::online_answer`]). So "answered" means:
//! - **The same size as online**: once the target has sent exactly as many payload bytes for
//!   the request in flight as the online server did, its answer is complete and the next
//!   request goes at once, with no quiet time. Payload counts toward a request only if the
//!   target had received the request's first byte when it sent it ([`AnswerMeter`]), so the
//!   surplus of a longer earlier answer never counts as the next one's.
//! - **Otherwise** (the target answers shorter or longer than the online server): the target
//!   sent response data and then stayed quiet for one RTT (half an RTT after a segment shorter
//!   than the MSS, which usually ends a write), never less than `min_response_quiet`. The RTT
//!   is the session's live RFC 6298 SRTT (RFC 6298 §2), which the engine passes on after every
//!   sample, not only the handshake's; TCPCopy's fixed `-R` overrides it.
//!
//! A greeting (server speaks first) is the answer to the connection itself, measured the same
//! way against the client's handshake ACK. The client's FIN or RST waits for a pending
//! response too, and also until the target has sent as many bytes as the real client had
//! received when it closed: a pause in a long response looks like its end, and a close sent
//! then makes the target abort the rest (nginx stops writing). That wait ends early when the
//! target stays quiet for [`BYTE_WAIT_QUIET`]: its answer is shorter than the online server's
//! (a comparison test), not paused.
//!
//! Better than 1.x: nothing is held for longer than the response timeout, so a target that
//! never answers, or one that streams without pause (server push), cannot stall the replay.
//!
//! [`Pacer`] only tracks that state and its deadlines; the engine asks it before releasing a
//! request or a close.

use std::time::{Duration, Instant};

use super::answer::AnswerMeter;
use super::send_queue::RequestStart;
use crate::packet::SeqNum;

/// Where the exchange with the target stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exchange {
    /// The last request (or the connection) has been answered: the next request may go.
    Answered,
    /// The connection is new: the target may send a greeting, which a request that follows a
    /// response must wait for. Closes need not wait.
    AwaitingGreeting,
    /// A request went out; the target has not started answering.
    Awaiting,
    /// The target is answering; the answer ends if it stays quiet until `quiet_until`.
    Responding { quiet_until: Instant },
}

/// What a pacing deadline meant when it expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacingExpiry {
    /// The target went quiet: its response is complete.
    ResponseEnded,
    /// Something was held for the whole response timeout; it may go now.
    HoldTimedOut,
}

/// Tracks whether the target has answered the last request.
#[derive(Debug, Clone)]
pub struct Pacer {
    enabled: bool,
    exchange: Exchange,
    /// Since when a request or close has been waiting.
    held_since: Option<Instant>,
    rtt: Duration,
    min_quiet: Duration,
    response_timeout: Duration,
    /// Payload bytes the target has sent, over every connection of the session.
    response_bytes: u64,
    /// The target closed, a hold ran for the whole response timeout, or the target stayed
    /// quiet for [`BYTE_WAIT_QUIET`] while a close waited for its bytes: the target will not
    /// catch up with what the client received, so a close no longer waits for it.
    byte_count_waived: bool,
    /// When the target last sent payload.
    last_response_at: Option<Instant>,
    /// A close is held only because the target has sent fewer bytes than the client received.
    close_awaits_bytes: bool,
    /// The target's answer to the request in flight.
    answer: AnswerMeter,
    /// The last request sent has had no byte of an answer yet.
    awaiting_answer: bool,
}

/// How long a target that has sent fewer bytes than the real client received must stay quiet
/// before a held close goes anyway. Long enough to span the pauses of a long response (the
/// target waiting for our ACKs through a busy intercept path), short enough that a target
/// whose answers are simply shorter than the online server's (a comparison test) does not keep
/// every connection open for the whole response timeout.
pub const BYTE_WAIT_QUIET: Duration = Duration::from_millis(200);

impl Pacer {
    /// A pacer for a connection not yet established. With `enabled` false nothing is ever
    /// held.
    pub fn new(enabled: bool, min_quiet: Duration, response_timeout: Duration) -> Pacer {
        Pacer {
            enabled,
            exchange: Exchange::Answered,
            held_since: None,
            rtt: min_quiet,
            min_quiet,
            response_timeout,
            response_bytes: 0,
            byte_count_waived: false,
            last_response_at: None,
            close_awaits_bytes: false,
            answer: AnswerMeter::default(),
            awaiting_answer: false,
        }
    }

    /// Whether the last request sent has had no byte of an answer yet: sending the next one,
    /// or ending the session, leaves it unanswered.
    pub fn awaiting_answer(&self) -> bool {
        self.awaiting_answer
    }

    /// The session ends: returns whether its last request was left unanswered (once).
    pub fn take_unanswered(&mut self) -> bool {
        std::mem::take(&mut self.awaiting_answer)
    }

    /// Sets the round-trip time that measures the target's quiet time: the live estimate,
    /// updated whenever it changes.
    pub fn set_rtt(&mut self, rtt: Duration) {
        self.rtt = rtt;
    }

    /// The connection is established. Unless the protocol is known to have no greeting, the
    /// target may speak first, and a request that follows a response waits for it.
    pub fn on_connected(&mut self, greeting_possible: bool) {
        self.answer.on_connected();
        self.exchange = if greeting_possible {
            Exchange::AwaitingGreeting
        } else {
            Exchange::Answered
        };
    }

    /// Asks to send the next request. A request that does not follow a response (the first
    /// one, without a greeting) never waits; one that does goes once the previous answer is
    /// as long as the online one, or has ended by quiet time. On `true` the request counts as
    /// sent; on `false` it is held and the hold is timed.
    pub fn try_send_request(&mut self, now: Instant, request: RequestStart) -> bool {
        let free = request.online_answer.is_none_or(|online| {
            self.exchange == Exchange::Answered || self.answer.matches(online.get())
        });
        if !self.try_release(now, free) {
            return false;
        }
        self.exchange = Exchange::Awaiting;
        self.answer.on_request_sent(request.seq);
        self.awaiting_answer = true;
        true
    }

    /// Asks to send the client's FIN or RST: not while a response is pending (TCPCopy holds
    /// them too), nor before the target has sent the `client_received` bytes the real client
    /// had received from the online server when it closed. On `false` the hold is timed.
    pub fn try_close(&mut self, now: Instant, client_received: u64) -> bool {
        let caught_up = self.byte_count_waived || self.response_bytes >= client_received;
        let answered = matches!(
            self.exchange,
            Exchange::Answered | Exchange::AwaitingGreeting
        );
        self.close_awaits_bytes = answered && !caught_up;
        self.try_release(now, caught_up && answered)
    }

    fn try_release(&mut self, now: Instant, free: bool) -> bool {
        if self.enabled && !free {
            self.held_since.get_or_insert(now);
            return false;
        }
        self.held_since = None;
        true
    }

    /// The target sent `len` new payload bytes in a segment acknowledging `ack` (`None`
    /// without the ACK flag); `mss` is the largest segment it sends. Returns whether they
    /// are the first of the answer to the request in flight.
    pub fn on_response_data(
        &mut self,
        now: Instant,
        len: usize,
        mss: usize,
        ack: Option<SeqNum>,
    ) -> bool {
        self.response_bytes += len as u64;
        self.last_response_at = Some(now);
        if !self.answer.on_payload(len, ack) {
            // The rest of an earlier answer: the request in flight is still unanswered.
            return false;
        }
        let quiet = if len >= mss { self.rtt } else { self.rtt / 2 };
        self.exchange = Exchange::Responding {
            quiet_until: now + quiet.max(self.min_quiet),
        };
        std::mem::take(&mut self.awaiting_answer)
    }

    /// The target closed or the connection is being rebuilt: nothing more will be answered.
    pub fn on_target_closed(&mut self) {
        self.exchange = Exchange::Answered;
        self.byte_count_waived = true;
    }

    /// When [`on_timeout`](Self::on_timeout) should be called.
    pub fn deadline(&self) -> Option<Instant> {
        if !self.enabled {
            return None;
        }
        let quiet = match self.exchange {
            Exchange::Responding { quiet_until } => Some(quiet_until),
            _ => None,
        };
        let hold = self.held_since.map(|since| since + self.response_timeout);
        [quiet, hold, self.byte_wait_end()]
            .into_iter()
            .flatten()
            .min()
    }

    /// When a close held for the target's bytes goes anyway: [`BYTE_WAIT_QUIET`] after the
    /// target last sent, or after the hold began if that was later.
    fn byte_wait_end(&self) -> Option<Instant> {
        if !self.close_awaits_bytes {
            return None;
        }
        let since = self.held_since.max(self.last_response_at)?;
        Some(since + BYTE_WAIT_QUIET)
    }

    /// Handles the deadline if it has passed.
    pub fn on_timeout(&mut self, now: Instant) -> Option<PacingExpiry> {
        if self.deadline().is_none_or(|at| at > now) {
            return None;
        }
        let expiry = match self.exchange {
            Exchange::Responding { quiet_until } if quiet_until <= now => {
                PacingExpiry::ResponseEnded
            }
            _ if self.byte_wait_end().is_some_and(|at| at <= now) => {
                // The target went quiet short of the client's byte count: its answer is
                // shorter than the online server's, not paused.
                self.byte_count_waived = true;
                self.close_awaits_bytes = false;
                PacingExpiry::ResponseEnded
            }
            _ => {
                self.held_since = None;
                self.byte_count_waived = true;
                PacingExpiry::HoldTimedOut
            }
        };
        self.exchange = Exchange::Answered;
        Some(expiry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::num::NonZeroU32;

    const MSS: usize = 1460;
    /// An online answer size the targets of these tests never send: the quiet-time rule.
    const OTHER_SIZE: u32 = 1;
    /// The ACK field of reply data sent after every request of these tests arrived.
    const ACKS_ALL: Option<SeqNum> = Some(SeqNum(1 << 30));

    /// A request at `seq` that follows an online answer of `online` bytes.
    fn request(seq: u32, online: u32) -> RequestStart {
        RequestStart {
            seq: SeqNum(seq),
            online_answer: NonZeroU32::new(online),
            captured_at: Instant::now(),
        }
    }

    /// A request that follows no response (a first request without a greeting).
    fn first_request() -> RequestStart {
        request(0, 0)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn pacer() -> Pacer {
        let mut pacer = Pacer::new(true, ms(2), ms(5000));
        pacer.set_rtt(ms(10));
        pacer
    }

    #[test]
    fn a_response_ends_one_rtt_after_a_full_segment() {
        let t0 = Instant::now();
        let mut p = pacer();
        p.on_connected(false);
        assert!(p.try_send_request(t0, request(0, OTHER_SIZE)));
        assert!(!p.try_send_request(t0, request(0, OTHER_SIZE)));
        assert!(!p.try_close(t0, 0));
        p.on_response_data(t0 + ms(1), MSS, MSS, ACKS_ALL);
        assert_eq!(p.deadline(), Some(t0 + ms(11)));
        assert_eq!(p.on_timeout(t0 + ms(10)), None);
        // More data pushes the end out; a short segment waits half an RTT.
        p.on_response_data(t0 + ms(5), 100, MSS, ACKS_ALL);
        assert_eq!(p.deadline(), Some(t0 + ms(10)));
        assert_eq!(p.on_timeout(t0 + ms(10)), Some(PacingExpiry::ResponseEnded));
        assert!(p.try_send_request(t0 + ms(10), request(0, OTHER_SIZE)));
    }

    #[test]
    fn an_answer_as_long_as_the_online_one_releases_the_next_request_at_once() {
        let t0 = Instant::now();
        let mut p = pacer();
        p.on_connected(false);
        assert!(p.try_send_request(t0, first_request()));
        p.on_response_data(t0 + ms(1), MSS, MSS, Some(SeqNum(10)));
        assert!(!p.try_send_request(t0 + ms(1), request(10, 1500)));
        p.on_response_data(t0 + ms(2), 40, MSS, Some(SeqNum(10)));
        // All 1500 bytes: no quiet time.
        assert!(p.try_send_request(t0 + ms(2), request(10, 1500)));
        assert_eq!(p.deadline(), None);
    }

    #[test]
    fn a_greeting_as_long_as_the_online_one_releases_the_first_request_at_once() {
        let t0 = Instant::now();
        let mut p = pacer();
        p.on_connected(true);
        p.on_response_data(t0 + ms(1), 40, MSS, Some(SeqNum(0)));
        assert!(p.try_send_request(t0 + ms(1), request(0, 40)));
    }

    #[test]
    fn the_surplus_of_a_longer_answer_does_not_count_for_the_next() {
        let t0 = Instant::now();
        let mut p = pacer();
        p.on_connected(false);
        assert!(p.try_send_request(t0, first_request()));
        // Online the answer was one segment; the target's is two.
        p.on_response_data(t0 + ms(1), MSS, MSS, Some(SeqNum(10)));
        assert!(p.try_send_request(t0 + ms(1), request(10, MSS as u32)));
        // Sent before the target had byte 10: the first answer's second segment.
        p.on_response_data(t0 + ms(1), MSS, MSS, Some(SeqNum(10)));
        assert!(!p.try_send_request(t0 + ms(1), request(20, MSS as u32)));
        // It starts no quiet time either: only the hold is timed.
        assert_eq!(p.deadline(), Some(t0 + ms(5001)));
        p.on_response_data(t0 + ms(2), MSS, MSS, Some(SeqNum(20)));
        assert!(p.try_send_request(t0 + ms(2), request(20, MSS as u32)));
    }

    #[test]
    fn an_answer_of_another_size_ends_by_quiet_time() {
        let t0 = Instant::now();
        for target_len in [1000, MSS + 540] {
            let mut p = pacer();
            p.on_connected(false);
            assert!(p.try_send_request(t0, first_request()));
            p.on_response_data(t0 + ms(1), target_len, MSS, Some(SeqNum(10)));
            assert!(!p.try_send_request(t0 + ms(1), request(10, 1500)));
            let end = if target_len < MSS { ms(6) } else { ms(11) };
            assert_eq!(p.deadline(), Some(t0 + end));
            assert_eq!(p.on_timeout(t0 + end), Some(PacingExpiry::ResponseEnded));
            assert!(p.try_send_request(t0 + end, request(10, 1500)));
        }
    }

    #[test]
    fn quiet_time_has_a_floor() {
        let t0 = Instant::now();
        let mut p = pacer();
        p.set_rtt(Duration::from_micros(100));
        p.on_response_data(t0, 10, MSS, ACKS_ALL);
        assert_eq!(p.deadline(), Some(t0 + ms(2)));
    }

    #[test]
    fn nothing_is_held_longer_than_the_response_timeout() {
        let t0 = Instant::now();
        let mut p = pacer();
        p.on_connected(false);
        assert!(p.try_send_request(t0, first_request()));
        // Unanswered: the next request waits, timed from when it was first held.
        assert!(!p.try_send_request(t0 + ms(1000), request(0, OTHER_SIZE)));
        assert!(!p.try_send_request(t0 + ms(2000), request(0, OTHER_SIZE)));
        assert_eq!(p.deadline(), Some(t0 + ms(6000)));
        // A target that streams without pause does not extend the hold.
        p.on_response_data(t0 + ms(5999), MSS, MSS, ACKS_ALL);
        assert_eq!(p.on_timeout(t0 + ms(5999)), None);
        assert_eq!(
            p.on_timeout(t0 + ms(6000)),
            Some(PacingExpiry::HoldTimedOut)
        );
        assert!(p.try_send_request(t0 + ms(6000), request(0, OTHER_SIZE)));
    }

    #[test]
    fn a_greeting_holds_requests_that_follow_it_but_not_a_close() {
        let t0 = Instant::now();
        let mut p = pacer();
        p.on_connected(true);
        assert!(!p.try_send_request(t0, request(0, OTHER_SIZE)));
        assert!(p.try_close(t0, 0));
        p.on_response_data(t0 + ms(1), 40, MSS, ACKS_ALL);
        assert!(!p.try_close(t0 + ms(1), 0));
        assert_eq!(p.on_timeout(t0 + ms(6)), Some(PacingExpiry::ResponseEnded));
        assert!(p.try_send_request(t0 + ms(6), request(0, OTHER_SIZE)));
    }

    #[test]
    fn a_close_waits_until_the_target_sent_what_the_client_received() {
        let t0 = Instant::now();
        let mut p = pacer();
        p.on_connected(false);
        assert!(p.try_send_request(t0, first_request()));
        p.on_response_data(t0 + ms(1), 100_000, MSS, ACKS_ALL);
        // The response paused long enough to look complete, but the client had received
        // 150 000 bytes when it closed.
        assert_eq!(p.on_timeout(t0 + ms(11)), Some(PacingExpiry::ResponseEnded));
        assert!(!p.try_close(t0 + ms(11), 150_000));
        p.on_response_data(t0 + ms(20), 50_000, MSS, ACKS_ALL);
        assert_eq!(p.on_timeout(t0 + ms(30)), Some(PacingExpiry::ResponseEnded));
        assert!(p.try_close(t0 + ms(30), 150_000));
    }

    #[test]
    fn a_close_stops_waiting_for_bytes_once_the_target_closed_or_went_quiet() {
        let t0 = Instant::now();
        let mut closed = pacer();
        closed.on_connected(false);
        assert!(!closed.try_close(t0, 10));
        closed.on_target_closed();
        assert!(closed.try_close(t0, 10));

        // A target whose answer is shorter than the online server's: the close goes once it
        // has been quiet for BYTE_WAIT_QUIET, not after the whole response timeout.
        let mut shorter = pacer();
        shorter.on_connected(false);
        assert!(shorter.try_send_request(t0, first_request()));
        shorter.on_response_data(t0 + ms(1), 90, MSS, ACKS_ALL);
        assert_eq!(
            shorter.on_timeout(t0 + ms(6)),
            Some(PacingExpiry::ResponseEnded)
        );
        assert!(!shorter.try_close(t0 + ms(6), 100));
        assert_eq!(shorter.deadline(), Some(t0 + ms(6) + BYTE_WAIT_QUIET));
        assert_eq!(shorter.on_timeout(t0 + ms(100)), None);
        assert_eq!(
            shorter.on_timeout(t0 + ms(6) + BYTE_WAIT_QUIET),
            Some(PacingExpiry::ResponseEnded)
        );
        assert!(shorter.try_close(t0 + ms(6) + BYTE_WAIT_QUIET, 100));
    }

    #[test]
    fn a_pause_shorter_than_the_byte_wait_keeps_the_close_held() {
        let t0 = Instant::now();
        let mut p = pacer();
        p.on_connected(false);
        assert!(p.try_send_request(t0, first_request()));
        p.on_response_data(t0, 1_000, MSS, ACKS_ALL);
        assert_eq!(p.on_timeout(t0 + ms(10)), Some(PacingExpiry::ResponseEnded));
        assert!(!p.try_close(t0 + ms(10), 5_000));
        // More of the response, within the byte wait: the wait starts again from it.
        p.on_response_data(t0 + ms(150), 1_000, MSS, ACKS_ALL);
        assert_eq!(
            p.on_timeout(t0 + ms(160)),
            Some(PacingExpiry::ResponseEnded)
        );
        assert!(!p.try_close(t0 + ms(160), 5_000));
        assert_eq!(p.deadline(), Some(t0 + ms(150) + BYTE_WAIT_QUIET));
    }

    #[test]
    fn a_first_request_without_greeting_never_waits() {
        let t0 = Instant::now();
        let mut p = pacer();
        p.on_connected(true);
        assert!(p.try_send_request(t0, first_request()));
        assert_eq!(p.deadline(), None);
    }

    #[test]
    fn disabled_pacing_never_holds() {
        let t0 = Instant::now();
        let mut p = Pacer::new(false, ms(2), ms(5000));
        assert!(p.try_send_request(t0, request(0, OTHER_SIZE)));
        assert!(p.try_send_request(t0, request(0, OTHER_SIZE)));
        assert!(p.try_close(t0, 0));
        assert_eq!(p.deadline(), None);
    }
}
