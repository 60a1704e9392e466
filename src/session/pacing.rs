//! Request/response pacing: when the next request may go to the target.
//!
//! TCPCopy's rule, kept here: a new request (see [`SendQueue`](super::send_queue::SendQueue))
//! is held until the target has answered the previous one. The target's reply payloads are not
//! visible, so "answered" is guessed: the target sent response data and then stayed quiet for
//! one RTT (half an RTT after a segment shorter than the MSS, which usually ends a write). A
//! greeting (server speaks first) is the answer to the connection itself. A target that never
//! answers is given up on after the response timeout, so it cannot stall the replay.
//!
//! [`Pacer`] only tracks that state and its deadline; the engine asks it before releasing a
//! request or a close.

use std::time::{Duration, Instant};

/// Where the exchange with the target stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exchange {
    /// The last request (or the connection) has been answered: the next request may go.
    Answered,
    /// The connection is new: the target may send a greeting, which a request that follows a
    /// response must wait for. Closes need not wait.
    AwaitingGreeting { since: Instant },
    /// Waiting for the target to start answering, since the last progress.
    Awaiting { since: Instant },
    /// The target is answering; the answer ends if it stays quiet until `quiet_until`.
    Responding { quiet_until: Instant },
}

/// What a pacing deadline meant when it expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacingExpiry {
    /// The target went quiet: its response is complete.
    ResponseEnded,
    /// The target never answered within the response timeout.
    ResponseTimedOut,
}

/// Tracks whether the target has answered the last request.
#[derive(Debug, Clone)]
pub struct Pacer {
    enabled: bool,
    exchange: Exchange,
    rtt: Duration,
    min_quiet: Duration,
    response_timeout: Duration,
}

impl Pacer {
    /// A pacer for a connection not yet established. With `enabled` false every request may
    /// go at once.
    pub fn new(enabled: bool, min_quiet: Duration, response_timeout: Duration) -> Pacer {
        Pacer {
            enabled,
            exchange: Exchange::Answered,
            rtt: min_quiet,
            min_quiet,
            response_timeout,
        }
    }

    /// Sets the round-trip time that measures the target's quiet time.
    pub fn set_rtt(&mut self, rtt: Duration) {
        self.rtt = rtt;
    }

    /// The connection is established. Unless the protocol is known to have no greeting, the
    /// target may speak first, and a request that follows a response waits for it.
    pub fn on_connected(&mut self, now: Instant, greeting_possible: bool) {
        self.exchange = if greeting_possible {
            Exchange::AwaitingGreeting { since: now }
        } else {
            Exchange::Answered
        };
    }

    /// A request was released to the target.
    pub fn on_request_sent(&mut self, now: Instant) {
        self.exchange = Exchange::Awaiting { since: now };
    }

    /// The target acknowledged more of the request: it is still working on it.
    pub fn on_request_progress(&mut self, now: Instant) {
        if let Exchange::Awaiting { since } = &mut self.exchange {
            *since = now;
        }
    }

    /// The target sent `len` new payload bytes; `mss` is the largest segment it sends.
    pub fn on_response_data(&mut self, now: Instant, len: usize, mss: usize) {
        let quiet = if len >= mss { self.rtt } else { self.rtt / 2 };
        self.exchange = Exchange::Responding {
            quiet_until: now + quiet.max(self.min_quiet),
        };
    }

    /// The target closed or the connection was rebuilt: nothing more will be answered.
    pub fn on_target_closed(&mut self) {
        self.exchange = Exchange::Answered;
    }

    /// Whether a new request may go to the target now. A request that does not follow a
    /// response (the first one, without a greeting) never waits.
    pub fn may_send_request(&self, follows_response: bool) -> bool {
        !self.enabled || !follows_response || self.exchange == Exchange::Answered
    }

    /// Whether the client's FIN or RST may go to the target now: not while a response is
    /// pending (TCPCopy holds them too).
    pub fn may_close(&self) -> bool {
        !self.enabled
            || matches!(
                self.exchange,
                Exchange::Answered | Exchange::AwaitingGreeting { .. }
            )
    }

    /// When [`on_timeout`](Self::on_timeout) should be called.
    pub fn deadline(&self) -> Option<Instant> {
        match self.exchange {
            _ if !self.enabled => None,
            Exchange::Answered => None,
            Exchange::Awaiting { since } | Exchange::AwaitingGreeting { since } => {
                Some(since + self.response_timeout)
            }
            Exchange::Responding { quiet_until } => Some(quiet_until),
        }
    }

    /// Handles the deadline if it has passed.
    pub fn on_timeout(&mut self, now: Instant) -> Option<PacingExpiry> {
        if self.deadline().is_none_or(|at| at > now) {
            return None;
        }
        let expiry = match self.exchange {
            Exchange::Responding { .. } => PacingExpiry::ResponseEnded,
            _ => PacingExpiry::ResponseTimedOut,
        };
        self.exchange = Exchange::Answered;
        Some(expiry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1460;

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
        p.on_connected(t0, false);
        assert!(p.may_send_request(true));
        p.on_request_sent(t0);
        assert!(!p.may_send_request(true));
        assert!(!p.may_close());
        assert!(p.may_send_request(false));
        p.on_response_data(t0 + ms(1), MSS, MSS);
        assert_eq!(p.deadline(), Some(t0 + ms(11)));
        assert_eq!(p.on_timeout(t0 + ms(10)), None);
        // More data pushes the end out; a short segment waits half an RTT.
        p.on_response_data(t0 + ms(5), 100, MSS);
        assert_eq!(p.deadline(), Some(t0 + ms(10)));
        assert_eq!(p.on_timeout(t0 + ms(10)), Some(PacingExpiry::ResponseEnded));
        assert!(p.may_send_request(true));
        assert_eq!(p.deadline(), None);
    }

    #[test]
    fn quiet_time_has_a_floor() {
        let t0 = Instant::now();
        let mut p = pacer();
        p.set_rtt(Duration::from_micros(100));
        p.on_response_data(t0, 10, MSS);
        assert_eq!(p.deadline(), Some(t0 + ms(2)));
    }

    #[test]
    fn an_unanswered_request_times_out_counting_from_the_last_progress() {
        let t0 = Instant::now();
        let mut p = pacer();
        p.on_request_sent(t0);
        p.on_request_progress(t0 + ms(1000));
        assert_eq!(p.on_timeout(t0 + ms(5000)), None);
        assert_eq!(
            p.on_timeout(t0 + ms(6000)),
            Some(PacingExpiry::ResponseTimedOut)
        );
        assert!(p.may_send_request(true));
    }

    #[test]
    fn a_greeting_holds_requests_that_follow_it_but_not_a_close() {
        let t0 = Instant::now();
        let mut p = pacer();
        p.on_connected(t0, true);
        assert!(!p.may_send_request(true));
        assert!(p.may_send_request(false));
        assert!(p.may_close());
        p.on_response_data(t0 + ms(1), 40, MSS);
        assert!(!p.may_close());
        assert_eq!(p.on_timeout(t0 + ms(6)), Some(PacingExpiry::ResponseEnded));
        assert!(p.may_send_request(true));
    }

    #[test]
    fn disabled_pacing_never_holds() {
        let t0 = Instant::now();
        let mut p = Pacer::new(false, ms(2), ms(5000));
        p.on_request_sent(t0);
        assert!(p.may_send_request(true));
        assert!(p.may_close());
        assert_eq!(p.deadline(), None);
    }
}
