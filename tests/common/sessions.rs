//! Waiting for copy to end every session it opened, read from its periodic counters: the
//! point after which a final reading of the target's log can no longer change (no handshake
//! or response timer of copy is still running).

use std::time::Duration;

use anyhow::Result;
use tcpcopy::stats::Balance;

use super::counters::last_counters;
use super::process::Proc;
use super::wait::wait_until;

/// Waits until copy's latest report shows every opened session ended (`sessions_opened` is
/// the sum of the endings: docs/measuring-loss.md).
pub fn wait_for_sessions_to_end(copy: &Proc, timeout: Duration) -> Result<()> {
    wait_until(timeout, "copy to end every session it opened", || {
        let Some(counts) = last_counters(&copy.stderr(), "copy") else {
            return Ok(false);
        };
        let balance = Balance::of(|counter| counts.get(counter.name()).copied().unwrap_or(0));
        Ok(balance.holds())
    })
}
