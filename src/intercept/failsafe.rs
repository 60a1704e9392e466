//! Intercept's guard against the target's replies reaching the real clients, for as long as
//! it runs:
//! - assistant mode: the host must not forward IP for a family its capture devices carry
//!   (the replies would go on through it). Refused at start unless `--allow-forwarding`;
//!   re-read every [`FORWARDING_EVERY`] while running, and forwarding turned on is logged as
//!   an error at once and every [`REPEAT`] while it lasts.
//! - target mode: an OUTPUT rule must queue the replies to intercept's queue. Said at start
//!   when there is none; while running, copies registering flows for [`UNQUEUED_WAIT`]
//!   without one reply being queued is logged as an error every [`REPEAT`], with what the
//!   rule check finds then.
//!
//! The decisions are pure: a [`Guard`] over a [`HostProbe`], time and counters passed in,
//! log lines ([`Alarm`]s) out. [`SystemProbe`] reads the host through `diagnosis`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use log::Level;

use crate::cli::InterceptArgs;
use crate::diagnosis::unanswered::Unanswered;
use crate::diagnosis::{self, Check, Topic};

/// How often an assistant's forwarding is read again.
pub const FORWARDING_EVERY: Duration = Duration::from_secs(5);
/// How often a lasting danger is said again.
pub const REPEAT: Duration = Duration::from_secs(60);
/// How long copies may register flows with nothing queued: the target answers a SYN within
/// a round trip, and resends its SYN-ACK within a second or so.
pub const UNQUEUED_WAIT: Duration = Duration::from_secs(5);

/// What the guard reads of the host.
pub trait HostProbe {
    /// IPv4 and IPv6 forwarding, as [`diagnosis::forwarding_checks`] judges them.
    fn forwarding(&self) -> Vec<Check>;
    /// The NFQUEUE rule for `queue`, as [`diagnosis::nfqueue_rule_check`] judges it.
    fn nfqueue_rule(&self, queue: u16) -> Check;
}

/// The host itself.
pub struct SystemProbe {
    interfaces: Vec<String>,
}

impl SystemProbe {
    pub fn new(args: &InterceptArgs) -> SystemProbe {
        SystemProbe {
            interfaces: args.interfaces.clone(),
        }
    }
}

impl HostProbe for SystemProbe {
    fn forwarding(&self) -> Vec<Check> {
        diagnosis::forwarding_checks(&self.interfaces)
    }

    fn nfqueue_rule(&self, queue: u16) -> Check {
        diagnosis::nfqueue_rule_check(queue)
    }
}

/// Where intercept catches the replies, as its flags say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Captured on an assistant (`-i`); `allow_forwarding` is `--allow-forwarding`.
    Assistant { allow_forwarding: bool },
    /// Queued on the target (`--nfqueue NUM`).
    Target { queue: u16 },
}

impl Mode {
    pub fn of(args: &InterceptArgs) -> Mode {
        match args.nfqueue {
            Some(queue) => Mode::Target { queue },
            None => Mode::Assistant {
                allow_forwarding: args.allow_forwarding,
            },
        }
    }
}

/// A line to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    pub level: Level,
    pub message: String,
}

impl Alarm {
    fn new(level: Level, message: String) -> Alarm {
        Alarm { level, message }
    }

    pub fn log(&self) {
        log::log!(self.level, "{}", self.message);
    }
}

/// What intercept's counters say at a look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    /// `flows_registered`.
    pub flows_registered: u64,
    /// `captured`: replies the sources delivered.
    pub captured: u64,
}

enum Watch {
    Assistant {
        allowed: bool,
        /// The forwarding checks failing at the last read, by name.
        forwarding: BTreeSet<String>,
        next_read: Instant,
        /// When forwarding was last said to be on.
        said: Instant,
    },
    Target {
        queue: u16,
        unqueued: Unanswered,
    },
}

/// The guard of one running intercept.
pub struct Guard {
    probe: Box<dyn HostProbe>,
    watch: Watch,
}

impl Guard {
    /// The guard of an intercept in `mode` starting at `now`, and what to log at once; `Err`
    /// says why intercept must not start (an assistant that forwards, without
    /// `--allow-forwarding`).
    pub fn start(
        mode: Mode,
        probe: Box<dyn HostProbe>,
        now: Instant,
    ) -> Result<(Guard, Vec<Alarm>), String> {
        let mut alarms = Vec::new();
        let watch = match mode {
            Mode::Assistant { allow_forwarding } => {
                let failed: Vec<Check> = probe
                    .forwarding()
                    .into_iter()
                    .filter(Check::failed)
                    .collect();
                if !failed.is_empty() && !allow_forwarding {
                    return Err(refusal(&failed));
                }
                alarms.extend(failed.iter().map(|check| {
                    Alarm::new(
                        Level::Warn,
                        format!(
                            "{check}; intercept starts anyway (--allow-forwarding): the \
                             target's replies go on through this host"
                        ),
                    )
                }));
                Watch::Assistant {
                    allowed: allow_forwarding,
                    forwarding: names(&failed),
                    next_read: now + FORWARDING_EVERY,
                    said: now,
                }
            }
            Mode::Target { queue } => {
                let rule = probe.nfqueue_rule(queue);
                if rule.failed() {
                    alarms.push(Alarm::new(Level::Warn, rule.to_string()));
                }
                Watch::Target {
                    queue,
                    unqueued: Unanswered::new(UNQUEUED_WAIT, Some(REPEAT)),
                }
            }
        };
        Ok((Guard { probe, watch }, alarms))
    }

    /// Looks again at `now`, with the counters as they are: what to log.
    pub fn tick(&mut self, now: Instant, activity: Activity) -> Vec<Alarm> {
        match &mut self.watch {
            Watch::Assistant {
                allowed,
                forwarding,
                next_read,
                said,
            } => {
                if now < *next_read {
                    return Vec::new();
                }
                *next_read = now + FORWARDING_EVERY;
                let checks = self.probe.forwarding();
                let alarms = forwarding_alarms(&checks, forwarding, *allowed, said, now);
                *forwarding = names(&checks.into_iter().filter(Check::failed).collect::<Vec<_>>());
                alarms
            }
            Watch::Target { queue, unqueued } => {
                let Some(silence) =
                    unqueued.observe(now, true, activity.flows_registered, activity.captured)
                else {
                    return Vec::new();
                };
                let rule = self.probe.nfqueue_rule(*queue);
                let why = if rule.failed() {
                    rule.to_string()
                } else {
                    format!(
                        "{}: {}, and it matched none of them: its --sport must be the target's \
                         port of copy's -x and its -d must hold the copies' client addresses \
                         (copy's -c, or the real clients' without it) ({})",
                        rule.name,
                        rule.detail,
                        Topic::NfqueueRule.see()
                    )
                };
                vec![Alarm::new(
                    Level::Error,
                    format!(
                        "nothing queued: copies registered {} flow(s) over {}s and not one \
                         reply of the target was queued to NFQUEUE queue {queue}, so the \
                         replies may be reaching the real clients ({}). {why}",
                        silence.asked,
                        silence.waited.as_secs(),
                        Topic::NothingQueued.see()
                    ),
                )]
            }
        }
    }
}

/// Why an assistant that forwards must not start, naming each switch, its fix and the flag.
fn refusal(failed: &[Check]) -> String {
    let checks: Vec<String> = failed.iter().map(Check::to_string).collect();
    format!(
        "refusing to start in assistant mode: {}. Where this host must forward, \
         --allow-forwarding starts intercept anyway, and the replies go on through it",
        checks.join("; ")
    )
}

/// What changed in the forwarding `checks` since the last read, whose failing ones were
/// `before`; with forwarding on and not `allowed`, said again every [`REPEAT`].
fn forwarding_alarms(
    checks: &[Check],
    before: &BTreeSet<String>,
    allowed: bool,
    said: &mut Instant,
    now: Instant,
) -> Vec<Alarm> {
    let on_level = if allowed { Level::Warn } else { Level::Error };
    let repeat = !allowed && now.saturating_duration_since(*said) >= REPEAT;
    let mut alarms = Vec::new();
    for check in checks {
        let was_on = before.contains(&check.name);
        let message = match (was_on, check.failed()) {
            (false, true) => format!("forwarding turned on while intercept runs: {check}"),
            (true, true) if repeat => format!("forwarding is still on: {check}"),
            (true, false) => {
                alarms.push(Alarm::new(
                    Level::Info,
                    format!("forwarding is off again: {check}"),
                ));
                continue;
            }
            _ => continue,
        };
        *said = now;
        alarms.push(Alarm::new(on_level, message));
    }
    alarms
}

fn names(checks: &[Check]) -> BTreeSet<String> {
    checks.iter().map(|check| check.name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A host whose forwarding and rule the test sets.
    #[derive(Clone, Default)]
    struct FakeHost {
        ipv4_forward: Arc<Mutex<&'static str>>,
        rule: Arc<Mutex<Option<&'static str>>>,
    }

    impl HostProbe for FakeHost {
        fn forwarding(&self) -> Vec<Check> {
            let value = *self.ipv4_forward.lock().unwrap();
            vec![diagnosis::verdicts::forwarding(
                "net.ipv4.ip_forward",
                Some(value),
            )]
        }

        fn nfqueue_rule(&self, queue: u16) -> Check {
            let listing = match *self.rule.lock().unwrap() {
                Some(rule) => format!("-P OUTPUT ACCEPT\n{rule}\n"),
                None => "-P OUTPUT ACCEPT\n".to_string(),
            };
            diagnosis::verdicts::nfqueue_rule(
                queue,
                &diagnosis::verdicts::Listing::Listed(listing),
                &diagnosis::verdicts::Listing::NotInstalled,
            )
        }
    }

    fn host(ipv4_forward: &'static str, rule: Option<&'static str>) -> FakeHost {
        let host = FakeHost::default();
        *host.ipv4_forward.lock().unwrap() = ipv4_forward;
        *host.rule.lock().unwrap() = rule;
        host
    }

    const RULE: &str =
        "-A OUTPUT -d 198.51.100.0/24 -p tcp -m tcp --sport 80 -j NFQUEUE --queue-num 0";
    const ASSISTANT: Mode = Mode::Assistant {
        allow_forwarding: false,
    };

    fn activity(flows_registered: u64, captured: u64) -> Activity {
        Activity {
            flows_registered,
            captured,
        }
    }

    #[test]
    fn an_assistant_that_forwards_refuses_to_start_naming_the_fix_and_the_flag() {
        let now = Instant::now();
        let Err(why) = Guard::start(ASSISTANT, Box::new(host("1\n", None)), now) else {
            panic!("started")
        };
        assert!(
            why.starts_with("refusing to start in assistant mode: net.ipv4.ip_forward: is 1"),
            "{why}"
        );
        assert!(why.contains("`sysctl -w net.ipv4.ip_forward=0`"), "{why}");
        assert!(
            why.contains("see docs/troubleshooting.md#ip-forward"),
            "{why}"
        );
        assert!(
            why.contains("--allow-forwarding starts intercept anyway"),
            "{why}"
        );
        let (_, alarms) = Guard::start(ASSISTANT, Box::new(host("0\n", None)), now).unwrap();
        assert_eq!(alarms, [], "forwarding off: nothing to say");
    }

    #[test]
    fn allowed_forwarding_starts_with_a_warning_and_is_not_repeated() {
        let now = Instant::now();
        let mode = Mode::Assistant {
            allow_forwarding: true,
        };
        let (mut guard, alarms) = Guard::start(mode, Box::new(host("1", None)), now).unwrap();
        assert_eq!(alarms.len(), 1);
        assert_eq!(alarms[0].level, Level::Warn);
        assert!(
            alarms[0]
                .message
                .contains("starts anyway (--allow-forwarding)")
        );
        assert_eq!(guard.tick(now + REPEAT * 3, activity(0, 0)), []);
    }

    #[test]
    fn forwarding_turned_on_while_running_is_an_error_said_again_every_minute() {
        let start = Instant::now();
        let fake = host("0", None);
        let (mut guard, _) = Guard::start(ASSISTANT, Box::new(fake.clone()), start).unwrap();
        assert_eq!(guard.tick(start + FORWARDING_EVERY, activity(0, 0)), []);
        *fake.ipv4_forward.lock().unwrap() = "1";
        assert_eq!(
            guard.tick(
                start + FORWARDING_EVERY + Duration::from_secs(1),
                activity(0, 0)
            ),
            [],
            "read every FORWARDING_EVERY only"
        );
        let on = start + FORWARDING_EVERY * 2;
        let alarms = guard.tick(on, activity(0, 0));
        assert_eq!(alarms.len(), 1, "{alarms:?}");
        assert_eq!(alarms[0].level, Level::Error);
        assert!(
            alarms[0].message.starts_with(
                "forwarding turned on while intercept runs: net.ipv4.ip_forward: is 1"
            ),
            "{alarms:?}"
        );
        assert_eq!(guard.tick(on + FORWARDING_EVERY, activity(0, 0)), []);
        let again = guard.tick(on + REPEAT, activity(0, 0));
        assert!(
            again[0].message.starts_with("forwarding is still on:"),
            "{again:?}"
        );
        *fake.ipv4_forward.lock().unwrap() = "0";
        let off = guard.tick(on + REPEAT + FORWARDING_EVERY, activity(0, 0));
        assert_eq!(off[0].level, Level::Info);
        assert!(
            off[0].message.starts_with("forwarding is off again:"),
            "{off:?}"
        );
    }

    #[test]
    fn a_missing_rule_is_said_at_start_and_when_copies_register_with_nothing_queued() {
        let start = Instant::now();
        let mode = Mode::Target { queue: 0 };
        let fake = host("0", None);
        let (mut guard, alarms) = Guard::start(mode, Box::new(fake.clone()), start).unwrap();
        assert_eq!(alarms.len(), 1);
        assert!(
            alarms[0]
                .message
                .starts_with("NFQUEUE rule for queue 0: no OUTPUT rule queues to queue 0"),
            "{alarms:?}"
        );
        assert_eq!(guard.tick(start, activity(0, 0)), [], "no copy yet");
        let first = start + Duration::from_secs(1);
        assert_eq!(guard.tick(first, activity(3, 0)), []);
        let alarms = guard.tick(first + UNQUEUED_WAIT, activity(7, 0));
        assert_eq!(alarms.len(), 1, "{alarms:?}");
        assert_eq!(alarms[0].level, Level::Error);
        let message = &alarms[0].message;
        assert!(
            message.starts_with(
                "nothing queued: copies registered 7 flow(s) over 5s and not one reply of the \
                 target was queued to NFQUEUE queue 0"
            ),
            "{message}"
        );
        assert!(
            message.contains("no OUTPUT rule queues to queue 0"),
            "{message}"
        );
        assert!(
            message.contains("--queue-num 0"),
            "names the fix: {message}"
        );
        let later = first + UNQUEUED_WAIT + REPEAT;
        assert_eq!(guard.tick(later, activity(9, 0)).len(), 1, "said again");
    }

    #[test]
    fn a_rule_that_matches_nothing_is_named_as_such() {
        let start = Instant::now();
        let mode = Mode::Target { queue: 0 };
        let (mut guard, alarms) =
            Guard::start(mode, Box::new(host("0", Some(RULE))), start).unwrap();
        assert_eq!(alarms, [], "the rule is there");
        guard.tick(start, activity(1, 0));
        let alarms = guard.tick(start + UNQUEUED_WAIT, activity(2, 0));
        let message = &alarms[0].message;
        assert!(
            message.contains("and it matched none of them: its --sport"),
            "{message}"
        );
        assert!(message.contains(RULE), "{message}");
        // Replies queued: all is well.
        let start = start + REPEAT * 2;
        let (mut guard, _) = Guard::start(mode, Box::new(host("0", Some(RULE))), start).unwrap();
        guard.tick(start, activity(1, 0));
        assert_eq!(guard.tick(start + UNQUEUED_WAIT, activity(5, 3)), []);
        assert_eq!(guard.tick(start + UNQUEUED_WAIT * 3, activity(9, 3)), []);
    }
}
