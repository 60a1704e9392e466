//! Counters, periodic reports and the `tcpcopy stats` subcommand.
//!
//! - [`Counters`] and [`Reporter`]: what `copy` and `intercept` count and log.
//! - [`Balance`]: the identity copy's session counters keep.
//! - [`metrics`]: the same counters, and gauges, served to Prometheus (`--metrics`).
//! - [`logs`]: `tcpcopy stats logs`, the loss between access logs; its pure parts are public
//!   so that the fuzz target `access_log` (fuzz/) runs them as the command does.
//! - `live`: `tcpcopy stats live`, rates and losses scraped from the metrics.
//! - `compare`: `tcpcopy stats compare`, the report of a comparison test.

mod balance;
mod columns;
mod compare;
mod counters;
mod histogram;
mod live;
pub mod logs;
pub mod metrics;
mod reporter;
mod svg;

pub use balance::{Balance, ENDINGS, RequestBalance};
pub use counters::{Counter, Counters, LocalCounters, Snapshot};
pub use histogram::{BOUNDS_US, DelaySnapshot};
pub use reporter::Reporter;

use crate::cli::{StatsArgs, StatsCommand};

/// How a report came out against its threshold (`--max-loss`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Within the threshold, or none was given: exit 0.
    Passed,
    /// Beyond it, and why: exit 1.
    Failed(String),
}

/// `tcpcopy stats`.
pub fn run(args: &StatsArgs) -> anyhow::Result<Verdict> {
    match &args.command {
        StatsCommand::Logs(logs) => logs::run(logs),
        StatsCommand::Live(live) => live::run(live),
        StatsCommand::Compare(compare) => compare::run(compare),
    }
}
