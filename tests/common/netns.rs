//! Running Rust code inside a lab host: a scoped thread that joins the host's network
//! namespace. Only that thread moves; the test process stays in the root namespace.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::thread;

use anyhow::{Context, Result};

/// Where `ip netns add` pins named namespaces.
const NETNS_RUN_DIR: &str = "/run/netns";

/// Runs `work` on a thread inside the named network namespace and returns its result.
/// Sockets it opens belong to that namespace; a panic in `work` is passed on.
pub fn in_netns<T: Send>(ns: &str, work: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let path = format!("{NETNS_RUN_DIR}/{ns}");
    thread::scope(|scope| {
        let worker = scope.spawn(|| {
            enter_netns_path(&path)?;
            work()
        });
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Moves the calling thread into the network namespace pinned at `path` (for threads that
/// outlive one call, as [`in_netns`]'s do not).
pub fn enter_netns_path(path: &str) -> Result<()> {
    let file = File::open(path).with_context(|| format!("opening network namespace {path}"))?;
    // SAFETY: setns(2) only changes this thread's namespace; the fd is valid while `file` lives.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("entering network namespace {path} (needs CAP_SYS_ADMIN)"));
    }
    Ok(())
}
