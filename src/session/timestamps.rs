//! TCP timestamps of the replayed connection (RFC 7323).
//!
//! Owns TS.Recent (the target's clock, echoed as TSecr) and our TSval, which follows the
//! client's clock and never goes backwards, even across resegmentation, retransmission and
//! segments we make ourselves. Does not decide which segments carry the option.

use std::time::Instant;

use crate::packet::{SeqNum, Timestamps};

/// TCP timestamps (RFC 7323 §3 and §4.3).
#[derive(Debug, Clone, Default)]
pub struct TimestampState {
    /// Timestamps are on for this connection (offered in our SYN and, once established,
    /// accepted by the target).
    pub enabled: bool,
    /// TS.Recent: the target's latest TSval, our TSecr.
    pub recent: u32,
    /// The client's latest TSval and when it arrived: our clock's reference.
    pub client: Option<(u32, Instant)>,
    /// The last TSval we sent: ours never goes backwards.
    pub last_sent: Option<u32>,
}

impl TimestampState {
    /// The TSval for a segment sent at `now`: the client's clock advanced by the time since
    /// its latest segment, never below what we already sent.
    pub fn next_tsval(&mut self, now: Instant) -> u32 {
        let from_client = self.client.map_or(0, |(tsval, at)| {
            let elapsed = now.saturating_duration_since(at).as_millis();
            tsval.wrapping_add(u32::try_from(elapsed).unwrap_or(u32::MAX))
        });
        let tsval = match self.last_sent {
            Some(last) => SeqNum(last).max(SeqNum(from_client)).0,
            None => from_client,
        };
        self.last_sent = Some(tsval);
        tsval
    }

    /// The timestamps option for a segment sent at `now`, if timestamps are on.
    pub fn option(&mut self, now: Instant) -> Option<Timestamps> {
        self.enabled.then(|| Timestamps {
            tsval: self.next_tsval(now),
            tsecr: self.recent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn tsval_follows_the_client_clock_and_never_goes_back() {
        let t0 = Instant::now();
        let mut ts = TimestampState {
            client: Some((1000, t0)),
            ..TimestampState::default()
        };
        assert_eq!(ts.next_tsval(t0), 1000);
        assert_eq!(ts.next_tsval(t0 + Duration::from_millis(7)), 1007);
        // The client's clock seen late (a reordered capture) does not pull us back.
        ts.client = Some((900, t0 + Duration::from_millis(8)));
        assert_eq!(ts.next_tsval(t0 + Duration::from_millis(8)), 1007);
    }

    #[test]
    fn tsval_wraps_like_a_sequence_number() {
        let t0 = Instant::now();
        let mut ts = TimestampState {
            client: Some((u32::MAX, t0)),
            ..TimestampState::default()
        };
        assert_eq!(ts.next_tsval(t0), u32::MAX);
        assert_eq!(ts.next_tsval(t0 + Duration::from_millis(2)), 1);
    }

    #[test]
    fn the_option_echoes_ts_recent_only_when_enabled() {
        let t0 = Instant::now();
        let mut ts = TimestampState {
            recent: 55,
            client: Some((10, t0)),
            ..TimestampState::default()
        };
        assert_eq!(ts.option(t0), None);
        ts.enabled = true;
        assert_eq!(
            ts.option(t0),
            Some(Timestamps {
                tsval: 10,
                tsecr: 55
            })
        );
    }
}
