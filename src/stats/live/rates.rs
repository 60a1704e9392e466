//! What `stats live` prints: the rates between two [`Reading`]s and the session and
//! request loss so far, per interval ([`Interval`]) and for the whole run. Pure: readings
//! and elapsed seconds in, numbers out.

use serde::Serialize;

use super::exposition::Reading;

/// Copy's counters of sessions that were never replayed: shed under overload, over
/// `--max-sessions`, or with no free client port toward the target.
const NOT_REPLAYED: &[&str] = &["sessions_shed", "sessions_over_limit", "sessions_no_port"];
/// Copy's counters of sessions whose replay broke off: the target never answered or refused
/// the handshake, copy gave up, or the client sent more than copy could hold.
const BROKEN_OFF: &[&str] = &[
    "handshakes_failed",
    "handshakes_refused",
    "sessions_given_up",
    "buffer_overflows",
];

/// The numbers of one interval, or of the whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interval {
    /// Length, in seconds.
    pub seconds: f64,
    /// Sessions copy opened toward the target, per second.
    pub sessions_per_second: f64,
    /// Requests copy released to the target, per second.
    pub requests_per_second: f64,
    /// Reply headers copy received from intercepts (or, without a copy endpoint, that
    /// intercepts routed), per second.
    pub replies_per_second: f64,
    /// Sessions copy saw since it started: opened, or not replayed ([`NOT_REPLAYED`]).
    pub sessions: u64,
    /// Of those, sessions not replayed or whose replay broke off.
    pub sessions_lost: u64,
    /// `sessions_lost / sessions`, `None` before the first session.
    pub loss: Option<f64>,
    /// Requests the clients sent in the sessions copy replays.
    pub requests: u64,
    /// Of those, requests not sent to the target (yet: the latest may still wait for the
    /// answer before them), plus requests the target never answered (released after the
    /// response timeout).
    pub requests_unanswered: u64,
    /// `requests_unanswered / requests`, `None` before the first request.
    pub request_loss: Option<f64>,
}

/// The interval from `before` to `after`, `seconds` apart (at least a millisecond).
pub fn interval(before: &Reading, after: &Reading, seconds: f64) -> Interval {
    let seconds = seconds.max(1e-3);
    let rate = |role: &str, counter: &str| {
        increase(before.counter(role, counter), after.counter(role, counter)) / seconds
    };
    let replies = if after.has_role("copy") {
        rate("copy", "replies_received")
    } else {
        rate("intercept", "replies_routed")
    };
    let sum = |counters: &[&str]| -> f64 {
        counters
            .iter()
            .map(|counter| after.counter("copy", counter))
            .sum()
    };
    let lost = sum(NOT_REPLAYED) + sum(BROKEN_OFF);
    let sessions = after.counter("copy", "sessions_opened") + sum(NOT_REPLAYED);
    let requests = after.counter("copy", "requests_captured");
    // Captured but never sent, or sent and left without an answer (requests still in
    // flight are neither yet).
    let unanswered = (requests - after.counter("copy", "requests_sent")).max(0.0)
        + after.counter("copy", "requests_unanswered");
    Interval {
        seconds,
        sessions_per_second: rate("copy", "sessions_opened"),
        requests_per_second: rate("copy", "requests_sent"),
        replies_per_second: replies,
        sessions: sessions as u64,
        sessions_lost: lost as u64,
        loss: (sessions > 0.0).then(|| lost / sessions),
        requests: requests as u64,
        requests_unanswered: unanswered as u64,
        request_loss: (requests > 0.0).then(|| (unanswered / requests).min(1.0)),
    }
}

/// How much a counter grew; a counter that went down was reset (its process restarted),
/// so all of its new value is growth.
fn increase(before: f64, after: f64) -> f64 {
    if after >= before {
        after - before
    } else {
        after
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::live::exposition::parse;

    fn reading(text: &str) -> Reading {
        let mut reading = Reading::default();
        reading.add(&parse(text).unwrap());
        reading
    }

    #[test]
    fn rates_are_increases_per_second() {
        let before = reading(
            "tcpcopy_sessions_opened_total{role=\"copy\"} 100\n\
             tcpcopy_requests_sent_total{role=\"copy\"} 1000\n\
             tcpcopy_replies_received_total{role=\"copy\"} 2000\n",
        );
        let after = reading(
            "tcpcopy_sessions_opened_total{role=\"copy\"} 150\n\
             tcpcopy_requests_sent_total{role=\"copy\"} 1500\n\
             tcpcopy_replies_received_total{role=\"copy\"} 3000\n\
             tcpcopy_handshakes_refused_total{role=\"copy\"} 2\n\
             tcpcopy_sessions_shed_total{role=\"copy\"} 6\n\
             tcpcopy_sessions_no_port_total{role=\"copy\"} 4\n",
        );
        let interval = interval(&before, &after, 5.0);
        assert_eq!(interval.sessions_per_second, 10.0);
        assert_eq!(interval.requests_per_second, 100.0);
        assert_eq!(interval.replies_per_second, 200.0);
        assert_eq!((interval.sessions, interval.sessions_lost), (160, 12));
        assert_eq!(interval.loss, Some(12.0 / 160.0));
        assert_eq!((interval.requests, interval.request_loss), (0, None));
    }

    #[test]
    fn requests_not_sent_or_never_answered_are_lost() {
        let after = reading(
            "tcpcopy_requests_captured_total{role=\"copy\"} 1000\n\
             tcpcopy_requests_sent_total{role=\"copy\"} 990\n\
             tcpcopy_requests_answered_total{role=\"copy\"} 985\n\
             tcpcopy_requests_unanswered_total{role=\"copy\"} 5\n\
             tcpcopy_responses_timed_out_total{role=\"copy\"} 9\n",
        );
        let interval = interval(&Reading::default(), &after, 1.0);
        assert_eq!(
            (interval.requests, interval.requests_unanswered),
            (1000, 15)
        );
        assert_eq!(interval.request_loss, Some(0.015));
    }

    #[test]
    fn a_restarted_process_counts_from_zero() {
        let before = reading("tcpcopy_requests_sent_total{role=\"copy\"} 1000\n");
        let after = reading("tcpcopy_requests_sent_total{role=\"copy\"} 30\n");
        assert_eq!(interval(&before, &after, 1.0).requests_per_second, 30.0);
    }

    #[test]
    fn without_copy_the_replies_are_intercepts() {
        let before = reading("tcpcopy_replies_routed_total{role=\"intercept\"} 10\n");
        let after = reading("tcpcopy_replies_routed_total{role=\"intercept\"} 30\n");
        let interval = interval(&before, &after, 2.0);
        assert_eq!(interval.replies_per_second, 10.0);
        assert_eq!((interval.sessions, interval.loss), (0, None));
    }
}
