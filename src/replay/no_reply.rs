//! Copy's "no SYN-ACK came back" warning: SYNs went out, an intercept was connected all the
//! while, and for [`NoReplyWatch::WAIT`] not one reply came back through any. Said once,
//! with the likely causes in order (`diagnosis::causes`).
//!
//! Pure: the shared counters and the link status in, the message out, time passed in.

use std::time::{Duration, Instant};

use crate::diagnosis::causes::{self, Setup};
use crate::diagnosis::unanswered::Unanswered;

/// What the monitor sees of the shards at one look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub sessions_opened: u64,
    pub replies_received: u64,
    /// Whether any shard is connected to an intercept now.
    pub connected: bool,
}

/// Watches for SYNs that go unanswered.
#[derive(Debug)]
pub struct NoReplyWatch {
    setup: Setup,
    unanswered: Unanswered,
}

impl NoReplyWatch {
    /// How long SYNs may go unanswered: a target answers in a round trip, and retransmits
    /// its SYN-ACK within a second or so.
    pub const WAIT: Duration = Duration::from_secs(5);

    pub fn new(setup: Setup) -> NoReplyWatch {
        NoReplyWatch {
            setup,
            unanswered: Unanswered::new(Self::WAIT, None),
        }
    }

    /// Looks at the counters at `now`: the warning, the first time SYNs have gone unanswered
    /// for [`Self::WAIT`] with an intercept connected all the while. Without an intercept no
    /// reply can come (copy says so apart); a reply shows the way back works: either starts
    /// the wait over.
    pub fn observe(&mut self, now: Instant, seen: Seen) -> Option<String> {
        let silence = self.unanswered.observe(
            now,
            seen.connected,
            seen.sessions_opened,
            seen.replies_received,
        )?;
        Some(causes::no_reply_message(
            &self.setup,
            silence.asked,
            silence.waited.as_secs(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addresses::parse_list;

    fn watch() -> NoReplyWatch {
        let mappings = parse_list("80-198.51.100.30:80").unwrap();
        let intercepts = parse_list("198.51.100.40").unwrap();
        NoReplyWatch::new(Setup::new(&mappings, &intercepts, None).unwrap())
    }

    fn seen(sessions_opened: u64, replies_received: u64) -> Seen {
        Seen {
            sessions_opened,
            replies_received,
            connected: true,
        }
    }

    #[test]
    fn unanswered_syns_are_said_once_after_the_wait() {
        let start = Instant::now();
        let mut watch = watch();
        assert_eq!(watch.observe(start, seen(0, 0)), None, "nothing sent yet");
        let first_syn = start + Duration::from_secs(1);
        assert_eq!(watch.observe(first_syn, seen(1, 0)), None);
        let almost = first_syn + NoReplyWatch::WAIT - Duration::from_millis(100);
        assert_eq!(watch.observe(almost, seen(3, 0)), None);
        let message = watch
            .observe(first_syn + NoReplyWatch::WAIT, seen(4, 0))
            .expect("the warning");
        assert!(
            message.starts_with(
                "no SYN-ACK came back: copy sent the SYNs of 4 new session(s) over 5s"
            ),
            "{message}"
        );
        assert!(message.contains("1. on the target: no route"), "{message}");
        let later = first_syn + NoReplyWatch::WAIT * 10;
        assert_eq!(watch.observe(later, seen(40, 0)), None, "said once");
    }

    #[test]
    fn a_reply_starts_the_wait_over() {
        let start = Instant::now();
        let mut watch = watch();
        watch.observe(start, seen(1, 0));
        let replied = start + NoReplyWatch::WAIT - Duration::from_secs(1);
        assert_eq!(watch.observe(replied, seen(2, 1)), None);
        // Replies came: the earlier SYN counts no more, and no SYN is unanswered yet.
        assert_eq!(watch.observe(start + NoReplyWatch::WAIT, seen(2, 1)), None);
        let next_syn = start + NoReplyWatch::WAIT * 2;
        assert_eq!(watch.observe(next_syn, seen(3, 1)), None);
        assert!(
            watch
                .observe(next_syn + NoReplyWatch::WAIT, seen(3, 1))
                .is_some(),
            "replies stopped coming: said"
        );
    }

    #[test]
    fn without_an_intercept_connected_nothing_is_said() {
        let start = Instant::now();
        let mut watch = watch();
        let down = Seen {
            connected: false,
            ..seen(5, 0)
        };
        watch.observe(start, seen(1, 0));
        assert_eq!(watch.observe(start + NoReplyWatch::WAIT, down), None);
        // Connected again: the wait starts at the next SYN.
        let back = start + NoReplyWatch::WAIT * 2;
        assert_eq!(watch.observe(back, seen(5, 0)), None);
        assert_eq!(
            watch.observe(back + NoReplyWatch::WAIT, seen(5, 0)),
            None,
            "no new SYN"
        );
    }
}
