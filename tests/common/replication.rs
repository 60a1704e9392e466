//! [`Replication`]: `tcpcopy copy` and `tcpcopy intercept` deployed in a lab in one of the
//! two ways the product supports ([`Mode`], see [`super::deploy`]), copying the online host's
//! port 80 to the target's, and stopped with SIGINT to read their exit totals.

use std::collections::BTreeMap;

use anyhow::Result;

use super::deploy::{Mode, stop_with_totals};
use super::host::{CLIENT_NET, Host};
use super::lab::Lab;
use super::process::Proc;

/// A running copy and intercept pair.
#[derive(Debug)]
pub struct Replication {
    copy: Proc,
    intercept: Proc,
}

/// What copy and intercept logged as their totals when they exited.
#[derive(Debug)]
pub struct Totals {
    /// The `copy totals:` counters.
    pub copy: BTreeMap<String, u64>,
    /// The `intercept totals:` counters.
    pub intercept: BTreeMap<String, u64>,
    /// copy's whole log, for failure messages.
    pub copy_log: String,
    /// intercept's whole log, for failure messages.
    pub intercept_log: String,
}

impl Totals {
    /// One `copy totals` counter; panics, with the log, if copy did not report it.
    pub fn copy(&self, name: &str) -> u64 {
        Self::get(&self.copy, name, &self.copy_log)
    }

    /// One `intercept totals` counter; panics, with the log, if intercept did not report it.
    pub fn intercept(&self, name: &str) -> u64 {
        Self::get(&self.intercept, name, &self.intercept_log)
    }

    fn get(counters: &BTreeMap<String, u64>, name: &str, log: &str) -> u64 {
        counters
            .get(name)
            .copied()
            .unwrap_or_else(|| panic!("no `{name}` in the totals of:\n{log}"))
    }
}

impl Lab {
    /// Starts intercept, then copy, in `mode`, and returns once copy captures and is
    /// connected to intercept: from then on every client packet to the online port 80 is
    /// copied.
    pub fn start_replication(&self, mode: Mode) -> Result<Replication> {
        self.start_replication_with(mode, &[])
    }

    /// [`Lab::start_replication`] with `copy_extra` options for copy (e.g. `--max-sessions`).
    pub fn start_replication_with(&self, mode: Mode, copy_extra: &[&str]) -> Result<Replication> {
        let intercept = self.start_intercept(mode, 80)?;
        let client_ips = (mode == Mode::Assistant).then_some(CLIENT_NET);
        let copy = self.start_copy(Host::Online, 80, mode, client_ips, copy_extra)?;
        Ok(Replication { copy, intercept })
    }
}

impl Replication {
    /// The copy process (its log so far: `copy().stderr()`).
    pub fn copy(&self) -> &Proc {
        &self.copy
    }

    /// The intercept process.
    pub fn intercept(&self) -> &Proc {
        &self.intercept
    }

    /// Stops copy, then intercept, with SIGINT; both must exit 0 and log their totals.
    pub fn stop(mut self) -> Result<Totals> {
        let copy = stop_with_totals(&mut self.copy, "copy")?;
        let intercept = stop_with_totals(&mut self.intercept, "intercept")?;
        Ok(Totals {
            copy,
            intercept,
            copy_log: self.copy.stderr(),
            intercept_log: self.intercept.stderr(),
        })
    }
}
