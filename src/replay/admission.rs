//! Which new sessions a shard replays: `-r/--sample` keeps a share of the real clients'
//! sessions, `--ramp` raises that share linearly from nothing, and `--max-rate` caps the
//! sessions opened per second toward the target.
//!
//! Sampling hashes the real client's address and port with a stable hash, so it is
//! deterministic: a session is kept or not whatever the shard, the run or the host, and as the
//! ramp raises the share, every session kept stays kept. While the share rises, a session
//! left out stays out for its later packets, so it is never replayed from the middle once
//! the share has grown over its hash. The cap is a token bucket per
//! shard (each shard gets its share of the rate; the kernel spreads flows evenly), with
//! bursts of at most a tenth of a second's worth. A session the cap refused stays refused
//! for its later packets (and retransmitted SYNs), so it is never replayed from the middle;
//! a new connection that reuses its port (a SYN with another initial sequence number) is
//! judged afresh and counted.
//!
//! Pure: `now` comes from the shard loop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::addresses::stable_hash;
use crate::packet::SeqNum;

use super::replicas::Origin;

/// Keeps the sampling hash apart from the other hashes of a client.
const SAMPLE_SALT: u64 = 2 << 40;
/// Sampling resolution: hundredths of a percent.
const SAMPLE_SCALE: u64 = 10_000;
/// Longest burst the cap lets through, as a share of one second's rate.
const BURST: Duration = Duration::from_millis(100);
/// Refused sessions remembered per generation; the older generation is forgotten when the
/// newer fills or ages (bounding the memory a flood of refused flows can take).
const REFUSED_PER_GENERATION: usize = 65_536;
const REFUSED_GENERATION_AGE: Duration = Duration::from_secs(30);

/// `-r`, `--ramp` and `--max-rate` as given.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionRules {
    /// Share of sessions kept, in percent (0, 100].
    pub sample_percent: f64,
    /// Time over which the kept share rises from 0 to `sample_percent`; zero for none.
    pub ramp: Duration,
    /// New sessions per second toward the target, for the whole copy.
    pub max_rate: Option<f64>,
}

impl Default for AdmissionRules {
    fn default() -> AdmissionRules {
        AdmissionRules {
            sample_percent: 100.0,
            ramp: Duration::ZERO,
            max_rate: None,
        }
    }
}

/// What sampling or the cap says of a session about to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Open,
    /// Refused now, for the first time: count it.
    Refused,
    /// Refused before: its later packets are ignored too.
    StillRefused,
}

/// One shard's admission of new sessions.
#[derive(Debug)]
pub struct Admission {
    sample_percent: f64,
    ramp: Duration,
    started: Instant,
    bucket: Option<TokenBucket>,
    /// Sessions the cap refused.
    refused: RefusedSessions,
    /// Sessions left out while the ramp could still change its mind (with `--ramp` only).
    sampled_out: RefusedSessions,
}

impl Admission {
    /// Admission for one of `shards` shards started at `now`.
    pub fn new(rules: &AdmissionRules, shards: usize, now: Instant) -> Admission {
        Admission {
            sample_percent: rules.sample_percent.clamp(0.0, 100.0),
            ramp: rules.ramp,
            started: now,
            bucket: rules
                .max_rate
                .map(|rate| TokenBucket::new(rate / shards.max(1) as f64, now)),
            refused: RefusedSessions::new(now),
            sampled_out: RefusedSessions::new(now),
        }
    }

    /// Whether `-r` and `--ramp` keep the session of `origin` (with all its replicas),
    /// first seen at `now` in a SYN with initial sequence number `syn` or (`None`) from the
    /// middle.
    pub fn samples(&mut self, now: Instant, origin: Origin, syn: Option<SeqNum>) -> Verdict {
        let session = Origin {
            replica: 0,
            ..origin
        };
        if self.sampled_out.still_refuses(&session, syn) {
            return Verdict::StillRefused;
        }
        // Without a ramp the share never changes: the hash alone decides again.
        let remembered = !self.ramp.is_zero();
        if self.keeps(now, origin.captured.client) {
            if remembered {
                self.sampled_out.forget(&session);
            }
            return Verdict::Open;
        }
        if remembered {
            self.sampled_out.insert(now, session, syn);
        }
        Verdict::Refused
    }

    /// Whether the share kept at `now` includes real client `client`.
    fn keeps(&self, now: Instant, client: SocketAddr) -> bool {
        let mut share = self.sample_percent;
        if !self.ramp.is_zero() {
            let elapsed = now.saturating_duration_since(self.started);
            share *= (elapsed.as_secs_f64() / self.ramp.as_secs_f64()).min(1.0);
        }
        if share >= 100.0 {
            return true;
        }
        let threshold = (share * (SAMPLE_SCALE / 100) as f64) as u64;
        stable_hash(client, SAMPLE_SALT) % SAMPLE_SCALE < threshold
    }

    /// Whether `--max-rate` lets the session of `origin` open at `now`, from a SYN with
    /// initial sequence number `syn` or (`None`) from the middle.
    pub fn rate(&mut self, now: Instant, origin: Origin, syn: Option<SeqNum>) -> Verdict {
        let Some(bucket) = &mut self.bucket else {
            return Verdict::Open;
        };
        if self.refused.still_refuses(&origin, syn) {
            return Verdict::StillRefused;
        }
        if bucket.take(now) {
            self.refused.forget(&origin);
            return Verdict::Open;
        }
        self.refused.insert(now, origin, syn);
        Verdict::Refused
    }
}

/// Tokens refill at `per_second`, up to a tenth of a second's worth.
#[derive(Debug)]
struct TokenBucket {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(per_second: f64, now: Instant) -> TokenBucket {
        let capacity = (per_second * BURST.as_secs_f64()).max(1.0);
        TokenBucket {
            per_second,
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.last = self.last.max(now);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// Sessions refused (by the cap, or left out by sampling), with the initial sequence number of
/// the SYN refused (none when refused from the middle), in two generations.
#[derive(Debug)]
struct RefusedSessions {
    current: HashMap<Origin, Option<SeqNum>>,
    previous: HashMap<Origin, Option<SeqNum>>,
    since: Instant,
}

impl RefusedSessions {
    fn new(now: Instant) -> RefusedSessions {
        RefusedSessions {
            current: HashMap::new(),
            previous: HashMap::new(),
            since: now,
        }
    }

    /// Whether a packet of `key` (a SYN with `syn`, or none) belongs to the connection
    /// refused: any later packet or a retransmitted SYN does; a SYN with another initial
    /// sequence number opens a new connection on the same port.
    fn still_refuses(&self, key: &Origin, syn: Option<SeqNum>) -> bool {
        let refused = self.current.get(key).or_else(|| self.previous.get(key));
        match (refused, syn) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(refused_syn), Some(syn)) => *refused_syn == Some(syn),
        }
    }

    fn forget(&mut self, key: &Origin) {
        self.current.remove(key);
        self.previous.remove(key);
    }

    fn insert(&mut self, now: Instant, key: Origin, syn: Option<SeqNum>) {
        if self.current.len() >= REFUSED_PER_GENERATION
            || now.saturating_duration_since(self.since) >= REFUSED_GENERATION_AGE
        {
            self.previous = std::mem::take(&mut self.current);
            self.since = now;
        }
        self.previous.remove(&key);
        self.current.insert(key, syn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Flow;

    fn client(n: u32) -> SocketAddr {
        SocketAddr::from(([198, 51, 100, (n % 200) as u8 + 1], 1024 + (n / 200) as u16))
    }

    fn flow(n: u32) -> Flow {
        Flow {
            client: client(n),
            target: "198.51.100.30:80".parse().unwrap(),
        }
    }

    /// Replica `replica` of captured flow `n`, in the first round.
    fn session(n: u32, replica: u16) -> Origin {
        Origin {
            captured: flow(n),
            replica,
            round: 0,
        }
    }

    fn rules(sample_percent: f64, ramp: Duration, max_rate: Option<f64>) -> AdmissionRules {
        AdmissionRules {
            sample_percent,
            ramp,
            max_rate,
        }
    }

    #[test]
    fn sampling_is_deterministic_and_within_two_points() {
        let now = Instant::now();
        for percent in [1.0, 10.0, 33.0, 50.0, 90.0] {
            let first = Admission::new(&rules(percent, Duration::ZERO, None), 1, now);
            let again = Admission::new(&rules(percent, Duration::ZERO, None), 4, now);
            let kept: Vec<bool> = (0..10_000).map(|n| first.keeps(now, client(n))).collect();
            let share = kept.iter().filter(|&&k| k).count() as f64 / 100.0;
            assert!((share - percent).abs() <= 2.0, "{percent}%: kept {share}%");
            assert!((0..10_000).all(|n| again.keeps(now, client(n)) == kept[n as usize]));
        }
        let all = Admission::new(&AdmissionRules::default(), 1, now);
        assert!((0..1000).all(|n| all.keeps(now, client(n))));
    }

    #[test]
    fn the_ramp_rises_linearly_and_keeps_what_it_kept() {
        let start = Instant::now();
        let admission = Admission::new(&rules(50.0, Duration::from_secs(100), None), 1, start);
        let share_at = |secs| {
            let now = start + Duration::from_secs(secs);
            (0..10_000)
                .filter(|&n| admission.keeps(now, client(n)))
                .count() as f64
                / 100.0
        };
        assert_eq!(share_at(0), 0.0);
        assert!((share_at(50) - 25.0).abs() <= 2.0, "{}", share_at(50));
        assert!((share_at(100) - 50.0).abs() <= 2.0);
        assert_eq!(share_at(100), share_at(1000));
        let at = |secs| start + Duration::from_secs(secs);
        assert!(
            (0..10_000)
                .filter(|&n| admission.keeps(at(30), client(n)))
                .all(|n| admission.keeps(at(60), client(n)))
        );
    }

    /// Under `--ramp`, a session left out at its SYN stays out once the share has grown over
    /// its hash: its later packets never open it from the middle.
    #[test]
    fn a_session_the_ramp_left_out_stays_out_for_its_later_packets() {
        let start = Instant::now();
        let mut admission = Admission::new(&rules(100.0, Duration::from_secs(100), None), 1, start);
        let late = start + Duration::from_secs(200);
        let n = (0..10_000)
            .find(|&n| !admission.keeps(start + Duration::from_secs(10), client(n)))
            .unwrap();
        let early = start + Duration::from_secs(10);
        let (first, second) = (Some(SeqNum(1)), Some(SeqNum(2)));
        assert_eq!(
            admission.samples(early, session(n, 0), first),
            Verdict::Refused
        );
        assert_eq!(
            admission.samples(late, session(n, 0), None),
            Verdict::StillRefused,
            "its data, once the share is 100 %"
        );
        assert_eq!(
            admission.samples(late, session(n, 1), first),
            Verdict::StillRefused,
            "a retransmitted SYN, for any replica"
        );
        assert_eq!(
            admission.samples(late, session(n, 0), second),
            Verdict::Open,
            "a new connection on the port is judged afresh"
        );
        assert_eq!(admission.samples(late, session(n, 0), None), Verdict::Open);
    }

    #[test]
    fn without_a_ramp_sampling_remembers_nothing() {
        let start = Instant::now();
        let mut admission = Admission::new(&rules(50.0, Duration::ZERO, None), 1, start);
        for n in 0..1000 {
            let verdict = admission.samples(start, session(n, 0), Some(SeqNum(1)));
            let expected = if admission.keeps(start, client(n)) {
                Verdict::Open
            } else {
                Verdict::Refused
            };
            assert_eq!(verdict, expected);
        }
        assert_eq!(admission.sampled_out.current.len(), 0);
    }

    #[test]
    fn the_rate_cap_holds_over_simulated_time() {
        let start = Instant::now();
        // 200/s for the whole copy over 2 shards: 100/s here, bursts of 10.
        let mut admission = Admission::new(&rules(100.0, Duration::ZERO, Some(200.0)), 2, start);
        let mut opened = 0;
        // 1,000 new sessions a second for 10 s, one every millisecond.
        for n in 0..10_000u32 {
            let now = start + Duration::from_millis(u64::from(n));
            if admission.rate(now, session(n, 0), None) == Verdict::Open {
                opened += 1;
            }
        }
        assert!((1000..=1010).contains(&opened), "{opened} opened in 10 s");
    }

    #[test]
    fn a_refused_session_stays_refused() {
        let start = Instant::now();
        let mut admission = Admission::new(&rules(100.0, Duration::ZERO, Some(1.0)), 1, start);
        let syn = Some(SeqNum(1000));
        assert_eq!(admission.rate(start, session(1, 0), syn), Verdict::Open);
        assert_eq!(admission.rate(start, session(2, 0), syn), Verdict::Refused);
        let later = start + Duration::from_secs(5);
        assert_eq!(
            admission.rate(later, session(2, 0), None),
            Verdict::StillRefused
        );
        assert_eq!(
            admission.rate(later, session(2, 0), syn),
            Verdict::StillRefused,
            "a retransmitted SYN"
        );
        assert_eq!(
            admission.rate(later, session(2, 1), syn),
            Verdict::Open,
            "another replica"
        );
        let next_round = Origin {
            round: 1,
            ..session(2, 0)
        };
        assert_eq!(
            admission.rate(later, next_round, syn),
            Verdict::Refused,
            "another --loop round is judged (and counted) afresh"
        );
        let without_cap = &mut Admission::new(&AdmissionRules::default(), 1, start);
        assert_eq!(without_cap.rate(start, session(2, 0), syn), Verdict::Open);
    }

    #[test]
    fn a_new_connection_on_a_refused_port_is_judged_and_counted_again() {
        let start = Instant::now();
        let mut admission = Admission::new(&rules(100.0, Duration::ZERO, Some(1.0)), 1, start);
        let (first, second, third) = (Some(SeqNum(1)), Some(SeqNum(2)), Some(SeqNum(3)));
        assert_eq!(admission.rate(start, session(1, 0), first), Verdict::Open);
        assert_eq!(
            admission.rate(start, session(2, 0), first),
            Verdict::Refused
        );
        assert_eq!(
            admission.rate(start, session(2, 0), second),
            Verdict::Refused,
            "the port reused while the bucket is empty"
        );
        let refilled = start + Duration::from_secs(2);
        assert_eq!(
            admission.rate(refilled, session(2, 0), third),
            Verdict::Open
        );
        assert_eq!(
            admission.rate(refilled + Duration::from_secs(2), session(2, 0), None),
            Verdict::Open,
            "what was refused before the port was reused is forgotten"
        );
    }
}
