//! The identities copy's counters keep once copy has stopped: every session copy opened
//! ended in exactly one way, so `sessions_opened` is the sum of its [`ENDINGS`] (each names
//! where a session was lost); and every request a session captured was either sent to the
//! target or still held when its session ended, and every request sent was answered or not
//! ([`RequestBalance`]). docs/measuring-loss.md,
//! "What the counters tell". Pure.

use std::fmt;

use super::Counter;

/// The counters of the ways an opened session ends, one event each
/// ([`crate::session::Event::ends_session`]).
pub const ENDINGS: &[Counter] = &[
    Counter::SessionsClosed,
    Counter::HandshakesFailed,
    Counter::HandshakesAbandoned,
    Counter::HandshakesRefused,
    Counter::SessionsTimedOut,
    Counter::SessionsGivenUp,
    Counter::BufferOverflows,
    Counter::PortsReused,
    Counter::SessionsAborted,
];

/// Sessions opened against the sum of their endings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub opened: u64,
    /// Each ending and its count, in [`ENDINGS`] order.
    pub endings: Vec<(Counter, u64)>,
}

impl Balance {
    /// The balance of the counters `value` gives (e.g. a snapshot, or a `totals` line).
    pub fn of(value: impl Fn(Counter) -> u64) -> Balance {
        Balance {
            opened: value(Counter::SessionsOpened),
            endings: ENDINGS.iter().map(|&c| (c, value(c))).collect(),
        }
    }

    pub fn ended(&self) -> u64 {
        self.endings.iter().map(|(_, n)| n).sum()
    }

    /// True when every opened session has ended, each once: what holds after copy stopped.
    pub fn holds(&self) -> bool {
        self.opened == self.ended()
    }
}

impl fmt::Display for Balance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sessions_opened {} = ", self.opened)?;
        for (i, (counter, n)) in self.endings.iter().enumerate() {
            let plus = if i == 0 { "" } else { " + " };
            write!(f, "{plus}{} {n}", counter.name())?;
        }
        write!(f, " (= {})", self.ended())
    }
}

/// Requests captured against requests sent and requests their sessions ended with; requests
/// sent against requests answered and not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestBalance {
    pub captured: u64,
    pub sent: u64,
    pub not_sent: u64,
    pub answered: u64,
    pub unanswered: u64,
}

impl RequestBalance {
    /// The counters this identity reads.
    pub const COUNTERS: [Counter; 5] = [
        Counter::RequestsCaptured,
        Counter::RequestsSent,
        Counter::RequestsNotSent,
        Counter::RequestsAnswered,
        Counter::RequestsUnanswered,
    ];

    pub fn of(value: impl Fn(Counter) -> u64) -> RequestBalance {
        RequestBalance {
            captured: value(Counter::RequestsCaptured),
            sent: value(Counter::RequestsSent),
            not_sent: value(Counter::RequestsNotSent),
            answered: value(Counter::RequestsAnswered),
            unanswered: value(Counter::RequestsUnanswered),
        }
    }

    /// True when every captured request was sent or dropped with its session, and every
    /// request sent was answered or not.
    pub fn holds(&self) -> bool {
        self.captured == self.sent + self.not_sent && self.sent == self.answered + self.unanswered
    }
}

impl fmt::Display for RequestBalance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "requests_captured {} = requests_sent {} + requests_not_sent {} (= {}); \
             requests_sent {} = requests_answered {} + requests_unanswered {} (= {})",
            self.captured,
            self.sent,
            self.not_sent,
            self.sent + self.not_sent,
            self.sent,
            self.answered,
            self.unanswered,
            self.answered + self.unanswered
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Counters;

    #[test]
    fn opened_sessions_are_the_sum_of_their_endings() {
        let counters = Counters::default();
        counters.add(Counter::SessionsOpened, 10);
        counters.add(Counter::SessionsClosed, 7);
        counters.add(Counter::HandshakesRefused, 2);
        let balance = Balance::of(|c| counters.get(c));
        assert!(!balance.holds(), "one is still open");
        assert_eq!(balance.ended(), 9);
        counters.add(Counter::SessionsAborted, 1);
        let balance = Balance::of(|c| counters.get(c));
        assert!(balance.holds());
        assert_eq!(
            balance.to_string(),
            "sessions_opened 10 = sessions_closed 7 + handshakes_failed 0 + handshakes_abandoned 0 \
             + handshakes_refused 2 + sessions_timed_out 0 + sessions_given_up 0 + buffer_overflows 0 + ports_reused 0 \
             + sessions_aborted 1 (= 10)"
        );
    }

    #[test]
    fn captured_requests_are_sent_or_dropped_with_their_session() {
        let counters = Counters::default();
        counters.add(Counter::RequestsCaptured, 10);
        counters.add(Counter::RequestsSent, 8);
        let balance = RequestBalance::of(|c| counters.get(c));
        assert!(!balance.holds());
        counters.add(Counter::RequestsNotSent, 2);
        counters.add(Counter::RequestsAnswered, 7);
        let balance = RequestBalance::of(|c| counters.get(c));
        assert!(
            !balance.holds(),
            "one sent request is neither answered nor not"
        );
        counters.add(Counter::RequestsUnanswered, 1);
        let balance = RequestBalance::of(|c| counters.get(c));
        assert!(balance.holds());
        assert_eq!(
            balance.to_string(),
            "requests_captured 10 = requests_sent 8 + requests_not_sent 2 (= 10); \
             requests_sent 8 = requests_answered 7 + requests_unanswered 1 (= 8)"
        );
    }

    #[test]
    fn reset_and_rebuilt_sessions_carry_on_so_they_are_no_ending() {
        assert!(!ENDINGS.contains(&Counter::SessionsReset));
        assert!(!ENDINGS.contains(&Counter::SessionsRebuilt));
    }
}
