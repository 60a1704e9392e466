//! Requests that go unanswered: one counter of things asked (SYNs copy sent, flows copies
//! registered at intercept) and one of answers (replies that came back, replies queued),
//! watched for a stretch where asking goes on and not one answer comes. Copy's "no SYN-ACK
//! came back" and intercept's "nothing was queued" warnings are built on it.
//!
//! Pure: the counters in, the silence out, time passed in.

use std::time::{Duration, Instant};

/// A stretch of asking without an answer, as [`Unanswered::observe`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Silence {
    /// How many were asked since the last answer (or since watching began).
    pub asked: u64,
    /// How long the first of them has gone unanswered.
    pub waited: Duration,
}

/// Watches two counters for asking without answers.
#[derive(Debug)]
pub struct Unanswered {
    wait: Duration,
    repeat: Option<Duration>,
    /// The counters when an answer last came (or watching began).
    asked: u64,
    answered: u64,
    /// When the first unanswered one was seen since then.
    since: Option<Instant>,
    /// When a silence was last reported.
    said: Option<Instant>,
}

impl Unanswered {
    /// Reports a silence once asking has gone unanswered for `wait`; then, with `repeat`,
    /// again every `repeat` while it lasts and after each new silence; without, never again.
    pub fn new(wait: Duration, repeat: Option<Duration>) -> Unanswered {
        Unanswered {
            wait,
            repeat,
            asked: 0,
            answered: 0,
            since: None,
            said: None,
        }
    }

    /// Looks at the counters at `now`. `watching` false (no answer could come now, e.g. no
    /// intercept is connected) starts over, as an answer does.
    pub fn observe(
        &mut self,
        now: Instant,
        watching: bool,
        asked: u64,
        answered: u64,
    ) -> Option<Silence> {
        if self.repeat.is_none() && self.said.is_some() {
            return None;
        }
        if !watching || answered != self.answered {
            self.asked = asked;
            self.answered = answered;
            self.since = None;
            if self.repeat.is_some() {
                self.said = None;
            }
            return None;
        }
        if asked == self.asked {
            return None;
        }
        let since = *self.since.get_or_insert(now);
        let waited = now.saturating_duration_since(since);
        if waited < self.wait {
            return None;
        }
        if let (Some(said), Some(repeat)) = (self.said, self.repeat)
            && now.saturating_duration_since(said) < repeat
        {
            return None;
        }
        self.said = Some(now);
        Some(Silence {
            asked: asked - self.asked,
            waited,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(5);
    const REPEAT: Duration = Duration::from_secs(60);

    #[test]
    fn a_silence_is_reported_after_the_wait() {
        let start = Instant::now();
        let mut watch = Unanswered::new(WAIT, None);
        assert_eq!(watch.observe(start, true, 0, 0), None, "nothing asked");
        let first = start + Duration::from_secs(1);
        assert_eq!(watch.observe(first, true, 1, 0), None);
        assert_eq!(watch.observe(first + WAIT / 2, true, 3, 0), None);
        assert_eq!(
            watch.observe(first + WAIT, true, 4, 0),
            Some(Silence {
                asked: 4,
                waited: WAIT
            })
        );
        assert_eq!(
            watch.observe(first + REPEAT * 2, true, 40, 0),
            None,
            "once, without repeat"
        );
        assert_eq!(watch.observe(first + REPEAT * 3, true, 40, 1), None);
        assert_eq!(
            watch.observe(first + REPEAT * 4, true, 41, 1),
            None,
            "once for good"
        );
    }

    #[test]
    fn an_answer_or_not_watching_starts_over() {
        let start = Instant::now();
        let mut watch = Unanswered::new(WAIT, None);
        watch.observe(start, true, 1, 0);
        assert_eq!(
            watch.observe(start + WAIT - Duration::from_secs(1), true, 2, 1),
            None
        );
        assert_eq!(watch.observe(start + WAIT, true, 2, 1), None, "answered");
        let next = start + WAIT * 2;
        assert_eq!(watch.observe(next, false, 3, 1), None);
        assert_eq!(
            watch.observe(next + WAIT, false, 9, 1),
            None,
            "not watching"
        );
        assert_eq!(watch.observe(next + WAIT * 2, true, 10, 1), None);
        let silence = watch.observe(next + WAIT * 3, true, 11, 1).unwrap();
        assert_eq!(silence.asked, 2, "counted from where watching resumed");
    }

    #[test]
    fn with_repeat_a_lasting_silence_is_reported_again() {
        let start = Instant::now();
        let mut watch = Unanswered::new(WAIT, Some(REPEAT));
        watch.observe(start, true, 1, 0);
        assert!(watch.observe(start + WAIT, true, 2, 0).is_some());
        assert_eq!(watch.observe(start + WAIT + REPEAT / 2, true, 5, 0), None);
        let again = watch.observe(start + WAIT + REPEAT, true, 6, 0).unwrap();
        assert_eq!(again.asked, 6);
        // Answers, then a new silence: reported after the wait, not the repeat.
        let answered = start + REPEAT * 2;
        assert_eq!(watch.observe(answered, true, 6, 1), None);
        assert_eq!(watch.observe(answered + WAIT, true, 7, 1), None);
        assert!(watch.observe(answered + WAIT * 2, true, 8, 1).is_some());
    }
}
