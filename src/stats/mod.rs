//! Counters, periodic reports and the `tcpcopy stats` subcommand.

mod counters;
mod reporter;

pub use counters::{Counter, Counters, LocalCounters, Snapshot};
pub use reporter::Reporter;

use crate::cli::StatsArgs;

/// `tcpcopy stats`: not built yet.
pub fn run(_args: &StatsArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "`stats` is not built yet; copy and intercept log their counters every --stats-interval and at exit"
    )
}
