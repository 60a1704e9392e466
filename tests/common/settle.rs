//! Waiting for a count that copies make to catch up with the online one, then watching it a
//! little longer so that a count that overshoots (duplicated replays) shows too.

use std::thread;
use std::time::Duration;

use anyhow::Result;

use super::wait::wait_until;

/// How long a count is watched after it has been reached.
pub const SETTLE: Duration = Duration::from_millis(1500);

/// Polls `read` until `reached` holds for its value or `timeout` passes, then waits
/// [`SETTLE`] and returns a last reading. Never fails for a count that does not converge: the
/// caller asserts on the value, so a failure shows the numbers.
pub fn settled<T>(
    timeout: Duration,
    mut read: impl FnMut() -> Result<T>,
    reached: impl Fn(&T) -> bool,
) -> Result<T> {
    let converged = wait_until(timeout, "the count to catch up", || Ok(reached(&read()?)));
    if let Err(err) = converged {
        eprintln!("e2e: {err:#}");
    }
    thread::sleep(SETTLE);
    read()
}
