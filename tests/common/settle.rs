//! Waiting on counts that copies make: until one catches up with the online count (then
//! watching it a little longer, so a count that overshoots with duplicated replays shows too),
//! or until one stops moving.

use std::thread;
use std::time::{Duration, Instant};

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

/// Polls `read` until its value has not changed for `quiet` (e.g. until every replay in flight
/// has finished or timed out) and returns that value; fails after `timeout`.
pub fn stable<T: PartialEq>(
    timeout: Duration,
    quiet: Duration,
    mut read: impl FnMut() -> Result<T>,
) -> Result<T> {
    let mut last = read()?;
    let mut since = Instant::now();
    wait_until(
        timeout,
        &format!("the count to stay put for {quiet:?}"),
        || {
            let now = read()?;
            if now != last {
                last = now;
                since = Instant::now();
            }
            Ok(since.elapsed() >= quiet)
        },
    )?;
    Ok(last)
}

/// Polls `read` until it reaches `expected` or `timeout` passes and returns a last reading,
/// for counts that lag a little behind what the test already knows happened (nginx writes its
/// access log line after the response the client has read). The caller asserts on the value.
pub fn caught_up(
    timeout: Duration,
    expected: usize,
    mut read: impl FnMut() -> Result<usize>,
) -> Result<usize> {
    let _ = wait_until(timeout, "the count to catch up", || Ok(read()? >= expected));
    read()
}
