//! TCPCopy 1.x options that have no counterpart here: each is still recognized, so a 1.x
//! command line fails at once with what to use instead, never with "unexpected argument" or,
//! worse, a different meaning. docs/migrating.md has the whole table.

use clap::Args;

/// A retired option's value: parsing one always fails with `why`.
fn retired(why: &'static str) -> impl Fn(&str) -> Result<Never, String> + Clone {
    move |_| Err(why.to_string())
}

/// No value is ever parsed into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Never {}

const DAEMON: &str = "tcpcopy does not daemonize (1.x -d): run it under systemd (packaging/ has units) or your supervisor";

/// `copy` options of TCPCopy 1.x that are gone.
#[derive(Debug, Args)]
pub struct RetiredCopyFlags {
    #[arg(short = 'd', hide = true, num_args = 0, default_missing_value = "", value_parser = retired(DAEMON))]
    daemon: Option<Never>,
    #[arg(short = 'U', hide = true, value_parser = retired(
        "copy has no session pool to size (1.x -U): sessions are allocated as they open, bounded by --max-sessions"
    ))]
    pool_size: Option<Never>,
    #[arg(short = 'm', hide = true, value_parser = retired(
        "copy does not quit at a memory limit (1.x -m): memory is bounded by --max-sessions, the capture ring (-B) and a 32 MiB backlog per shard; for a hard cap use systemd's MemoryMax="
    ))]
    memory_limit: Option<Never>,
    #[arg(short = 'H', hide = true, value_parser = retired(
        "copy does not replay loopback traffic (1.x -H): capture on the device the clients reach, and use -c for the client addresses"
    ))]
    localhost: Option<Never>,
    #[arg(short = 'o', hide = true, value_parser = retired(
        "copy sends with a raw IP socket and the kernel's routing (1.x -o): route the target via the device you want"
    ))]
    output_device: Option<Never>,
}

/// `intercept` options of TCPCopy 1.x / intercept 1.0 that are gone.
#[derive(Debug, Args)]
pub struct RetiredInterceptFlags {
    #[arg(short = 'd', hide = true, num_args = 0, default_missing_value = "", value_parser = retired(DAEMON))]
    daemon: Option<Never>,
    #[arg(short = 's', hide = true, value_parser = retired(
        "drop -s: intercept's routing table has no fixed size to set (1.x -s); it grows with the flows copies register and forgets them as they end"
    ))]
    hash_size: Option<Never>,
    #[arg(short = 'n', hide = true, value_parser = retired(
        "drop -n: intercept combines each copy's replies per loop turn by itself (1.x -n set a limit), up to what a 1.x copy accepts in one frame"
    ))]
    combine: Option<Never>,
}

/// 1.x intercept's `-q N` (NFQUEUE length) collides with our `-q` (quiet): recognized before
/// clap sees it, so it is never read as "quiet" plus a stray number.
pub fn check_queue_length_flag(args: &[String]) -> Result<(), String> {
    if !args.iter().any(|arg| arg == "intercept") {
        return Ok(());
    }
    let length = args
        .windows(2)
        .find(|pair| pair[0] == "-q" && pair[1].parse::<u32>().is_ok());
    match length {
        Some(pair) => Err(format!(
            "intercept's -q {n} (1.x: the NFQUEUE length) is --queue-length {n} here; -q means quieter logs",
            n = pair[1]
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| arg.to_string()).collect()
    }

    #[test]
    fn a_1x_queue_length_is_named() {
        let err = check_queue_length_flag(&strings(&["tcpcopy", "intercept", "-q", "2048"]));
        assert!(err.unwrap_err().contains("--queue-length 2048"));
        assert!(check_queue_length_flag(&strings(&["tcpcopy", "intercept", "-q"])).is_ok());
        assert!(check_queue_length_flag(&strings(&["tcpcopy", "copy", "-q", "-n", "2"])).is_ok());
    }
}
