//! Round-trip time estimation and the retransmission timeout (RFC 6298).
//!
//! Owns SRTT, RTTVAR, the RTO with its bounds and exponential backoff, and the one segment
//! being timed (Karn's algorithm, RFC 6298 §3: retransmitted segments give no sample). It does
//! not arm timers; the engine asks it for the current timeout.

use std::time::{Duration, Instant};

use crate::packet::SeqNum;

/// RFC 6298 §2: alpha = 1/8, beta = 1/4, K = 4.
const K: u32 = 4;

/// The retransmission timer's estimator.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    min_rto: Duration,
    max_rto: Duration,
    /// Doublings applied since the last new acknowledgement (RFC 6298 §5.5).
    backoff: u32,
    /// The segment being timed: its end and when it was first sent.
    probe: Option<(SeqNum, Instant)>,
}

impl RttEstimator {
    /// An estimator with no sample yet (RFC 6298 §2.1).
    pub fn new(initial_rto: Duration, min_rto: Duration, max_rto: Duration) -> RttEstimator {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            rto: initial_rto.clamp(min_rto, max_rto),
            min_rto,
            max_rto,
            backoff: 0,
            probe: None,
        }
    }

    /// The smoothed round-trip time, once there is a sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The current retransmission timeout, backoff included.
    pub fn rto(&self) -> Duration {
        self.rto
            .saturating_mul(1 << self.backoff.min(16))
            .min(self.max_rto)
    }

    /// Retransmissions since the last new acknowledgement.
    pub fn backoff(&self) -> u32 {
        self.backoff
    }

    /// Feeds one measurement (RFC 6298 §2.2 and §2.3).
    pub fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(rtt);
        // RFC 6298 §2.4: RTO = SRTT + max(G, K * RTTVAR), then the lower bound.
        self.rto = (srtt + self.rttvar * K).clamp(self.min_rto, self.max_rto);
    }

    /// A segment ending at `end` was sent for the first time: time it unless one is timed.
    pub fn on_send(&mut self, now: Instant, end: SeqNum) {
        if self.probe.is_none() {
            self.probe = Some((end, now));
        }
    }

    /// Something was retransmitted: the timed segment gives no sample (Karn) and the timer
    /// backs off (RFC 6298 §5.5).
    pub fn on_retransmit(&mut self) {
        self.probe = None;
        self.backoff = self.backoff.saturating_add(1);
    }

    /// A new cumulative acknowledgement arrived: take a sample if it covers the timed segment
    /// and clear the backoff (RFC 6298 §5.7 allows the reset once a sample is taken; we reset
    /// on any new ACK, as Linux does, since the path is evidently alive).
    pub fn on_ack(&mut self, now: Instant, ack: SeqNum) {
        if let Some((end, sent)) = self.probe
            && ack >= end
        {
            self.probe = None;
            self.sample(now.saturating_duration_since(sent));
        }
        self.backoff = 0;
    }

    /// Something was retransmitted without a timeout (fast retransmit): the timed segment
    /// gives no sample (Karn), and the timeout does not back off.
    pub fn cancel_probe(&mut self) {
        self.probe = None;
    }

    /// Forgets the timed segment and the backoff (the connection was rebuilt).
    pub fn forget_probe(&mut self) {
        self.probe = None;
        self.backoff = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn first_sample_sets_srtt_and_the_rto_floor_applies() {
        let mut rtt = RttEstimator::new(ms(250), ms(100), ms(2000));
        assert_eq!(rtt.rto(), ms(250));
        rtt.sample(ms(1));
        assert_eq!(rtt.srtt(), Some(ms(1)));
        assert_eq!(rtt.rto(), ms(100));
        rtt.sample(ms(200));
        // srtt = (7 + 200) / 8 ms, rttvar = (3 * 0.5 + 199) / 4 ms.
        assert!(rtt.rto() > ms(200));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_a_new_ack_resets_it() {
        let mut rtt = RttEstimator::new(ms(250), ms(100), ms(1000));
        let t0 = Instant::now();
        rtt.on_send(t0, SeqNum(10));
        rtt.on_retransmit();
        assert_eq!(rtt.rto(), ms(500));
        rtt.on_retransmit();
        rtt.on_retransmit();
        assert_eq!(rtt.rto(), ms(1000));
        assert_eq!(rtt.backoff(), 3);
        rtt.on_ack(t0 + ms(5), SeqNum(10));
        assert_eq!(rtt.backoff(), 0);
        // Karn: the retransmitted segment gave no sample.
        assert_eq!(rtt.srtt(), None);
    }

    #[test]
    fn a_timed_segment_gives_one_sample_when_acknowledged() {
        let mut rtt = RttEstimator::new(ms(250), ms(1), ms(1000));
        let t0 = Instant::now();
        rtt.on_send(t0, SeqNum(100));
        rtt.on_send(t0 + ms(1), SeqNum(200));
        rtt.on_ack(t0 + ms(3), SeqNum(50));
        assert_eq!(rtt.srtt(), None);
        rtt.on_ack(t0 + ms(4), SeqNum(100));
        assert_eq!(rtt.srtt(), Some(ms(4)));
    }
}
