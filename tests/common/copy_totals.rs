//! Copy's exit totals (its `copy totals:` log line), read and checked against the identities
//! its counters keep once it has stopped (`tcpcopy::stats::Balance` and `RequestBalance`,
//! docs/measuring-loss.md, "What the counters tell"). Every e2e test that stops a copy reads
//! its totals here, so the identities are checked after each of them.

use std::collections::BTreeMap;

use anyhow::{Context, Result, ensure};
use tcpcopy::stats::{Balance, Counter, ENDINGS, RequestBalance};

use super::counters::last_counters;

/// The totals a stopped copy logged at exit, checked: every session it opened ended in
/// exactly one way, and every request it captured was sent or dropped with its session, and
/// every request sent was answered or not. `who` names the copy in errors.
pub fn copy_exit_totals(log: &str, who: &str) -> Result<BTreeMap<String, u64>> {
    let totals = last_counters(log, "copy totals")
        .with_context(|| format!("{who} logged no totals:\n{log}"))?;
    eprintln!("e2e: {who} totals: {totals:?}");
    check_balance(&totals).with_context(|| format!("{who} totals: {totals:?}"))?;
    Ok(totals)
}

fn check_balance(totals: &BTreeMap<String, u64>) -> Result<()> {
    let missing: Vec<&str> = std::iter::once(Counter::SessionsOpened)
        .chain(ENDINGS.iter().copied())
        .chain(RequestBalance::COUNTERS)
        .map(Counter::name)
        .filter(|name| !totals.contains_key(*name))
        .collect();
    ensure!(missing.is_empty(), "copy's totals lack {missing:?}");
    let balance = Balance::of(|counter| totals[counter.name()]);
    ensure!(balance.holds(), "copy's sessions do not add up: {balance}");
    let requests = RequestBalance::of(|counter| totals[counter.name()]);
    ensure!(
        requests.holds(),
        "copy's requests do not add up: {requests}"
    );
    Ok(())
}
