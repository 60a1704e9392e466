//! Diagnostics: why a deployment carries nothing, found before it runs (`copy --check`,
//! `intercept --check`) or while it runs (copy's "no SYN-ACK came back" warning,
//! intercept's guard: forwarding on an assistant, the NFQUEUE rule on a target).
//!
//! # Layout
//! - [`topic`]: the sections of docs/troubleshooting.md every message links to.
//! - [`causes`]: why no reply of the target comes back to copy, most likely first, each with
//!   the host and the command that checks it (pure).
//! - [`verdicts`]: each local check as a pure function of what was read: sysctl values,
//!   rule listings, capability bits, connect results.
//! - [`rules`]: NFQUEUE rules in `iptables -S` output (pure).
//! - [`path`]: `copy --check`'s path probe, one SYN whose answer must come back through an
//!   intercept (pure, behind the `PacketSink` and `ReplyFeed` traits).
//! - [`probe`]: the readers at the edge: /proc, libpcap's device list, iptables, sockets,
//!   and the probe's intercept connections.
//! - [`run`]: which checks `copy --check` and `intercept --check` run, and their report.
//! - [`unanswered`]: asking that goes on without an answer, for the warnings that say so
//!   while copy and intercept run (pure).
//!
//! Nothing here changes the system: the probes read, list and connect (and close) only; the
//! path probe's one SYN is reset on the target when its answer is in.

pub mod causes;
pub mod path;
mod probe;
pub mod rules;
mod run;
pub mod topic;
pub mod unanswered;
pub mod verdicts;

use std::fmt;

pub use run::{check_copy, check_intercept, forwarding_checks, nfqueue_rule_check};
pub use topic::Topic;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// As it must be.
    Pass,
    /// Shown for the reader to judge; never fails the check run.
    Info,
    /// Wrong: the deployment will not work until it is fixed.
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "ok",
            Status::Info => "info",
            Status::Fail => "FAIL",
        }
    }
}

/// One local check: what was checked, how it came out and, unless it passed, what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked, e.g. `net.ipv4.ip_forward` or `intercept 198.51.100.40:36524`.
    pub name: String,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// How to fix it (or, for `Info`, what the value means), with its docs section.
    pub fix: Option<(String, Topic)>,
}

impl Check {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Pass,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
        topic: Topic,
    ) -> Check {
        Check {
            name: name.into(),
            status: Status::Fail,
            detail: detail.into(),
            fix: Some((fix.into(), topic)),
        }
    }

    pub fn info(
        name: impl Into<String>,
        detail: impl Into<String>,
        note: impl Into<String>,
        topic: Topic,
    ) -> Check {
        Check {
            name: name.into(),
            status: Status::Info,
            detail: detail.into(),
            fix: Some((note.into(), topic)),
        }
    }

    pub fn failed(&self) -> bool {
        self.status == Status::Fail
    }
}

/// `NAME: DETAIL; FIX (see docs/troubleshooting.md#TOPIC)`, on one line (for logs).
impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.detail)?;
        if let Some((fix, topic)) = &self.fix {
            write!(f, "; {fix} ({})", topic.see())?;
        }
        Ok(())
    }
}

/// The checks as a report, one line per check and its fix indented below it.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for check in checks {
        out.push_str(&format!(
            "{:<4}  {}: {}\n",
            check.status.label(),
            check.name,
            check.detail
        ));
        if let Some((fix, topic)) = &check.fix {
            out.push_str(&format!("      {fix} ({})\n", topic.see()));
        }
    }
    out
}

/// `None` when no check failed, else the sentence that names every failed one.
pub fn failures(checks: &[Check]) -> Option<String> {
    let failed: Vec<&str> = checks
        .iter()
        .filter(|check| check.failed())
        .map(|check| check.name.as_str())
        .collect();
    match failed.len() {
        0 => None,
        1 => Some(format!("1 check failed: {}", failed[0])),
        n => Some(format!("{n} checks failed: {}", failed.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_shows_each_check_and_its_fix() {
        let checks = [
            Check::pass("CAP_NET_RAW", "held"),
            Check::fail(
                "net.ipv4.ip_forward",
                "is 1",
                "sysctl -w net.ipv4.ip_forward=0",
                Topic::IpForward,
            ),
        ];
        assert_eq!(
            render(&checks),
            "ok    CAP_NET_RAW: held\n\
             FAIL  net.ipv4.ip_forward: is 1\n      sysctl -w net.ipv4.ip_forward=0 \
             (see docs/troubleshooting.md#ip-forward)\n"
        );
        assert_eq!(
            checks[1].to_string(),
            "net.ipv4.ip_forward: is 1; sysctl -w net.ipv4.ip_forward=0 \
             (see docs/troubleshooting.md#ip-forward)"
        );
    }

    #[test]
    fn failures_name_every_failed_check() {
        let fail = |name: &str| Check::fail(name, "bad", "fix it", Topic::Interface);
        assert_eq!(failures(&[Check::pass("a", "fine")]), None);
        assert_eq!(
            failures(&[fail("eth0"), Check::pass("a", "fine")]).as_deref(),
            Some("1 check failed: eth0")
        );
        assert_eq!(
            failures(&[fail("eth0"), fail("eth1")]).as_deref(),
            Some("2 checks failed: eth0, eth1")
        );
    }
}
