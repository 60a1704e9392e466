//! Bounded waits: poll a condition until it holds or a deadline passes.

use std::collections::HashSet;
use std::fs;
use std::net::{SocketAddrV4, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How often a wait re-checks its condition.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long one connection attempt of [`port_open`] may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);

/// Polls `condition` until it returns true; fails, naming `what`, after `timeout` or as soon
/// as `condition` fails.
pub fn wait_until(
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if condition().with_context(|| format!("while waiting for {what}"))? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Whether a TCP connection to `addr` succeeds from the calling thread's namespace.
pub fn port_open(addr: SocketAddrV4) -> bool {
    TcpStream::connect_timeout(&addr.into(), CONNECT_TIMEOUT).is_ok()
}

/// Whether process `pid` holds a packet socket bound to a protocol and an interface: the
/// point from which a libpcap capture misses nothing.
///
/// Reads `/proc/PID/fd` for the process's socket inodes and `/proc/PID/net/packet` (its
/// namespace's packet sockets: `sk RefCnt Type Proto Iface R Rmem User Inode`).
pub fn has_bound_packet_socket(pid: u32) -> Result<bool> {
    Ok(bound_packet_sockets(pid)? > 0)
}

/// How many packet sockets bound to a protocol and an interface process `pid` holds (see
/// [`has_bound_packet_socket`]): one per capture.
pub fn bound_packet_sockets(pid: u32) -> Result<usize> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Ok(0);
    };
    let own_inodes: HashSet<String> = fds
        .filter_map(|entry| fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let Ok(table) = fs::read_to_string(format!("/proc/{pid}/net/packet")) else {
        return Ok(0);
    };
    Ok(table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [
                    _sk,
                    _refs,
                    _type,
                    proto,
                    iface,
                    _running,
                    _rmem,
                    _user,
                    inode,
                ] => *proto != "0000" && *iface != "0" && own_inodes.contains(*inode),
                _ => false,
            }
        })
        .count())
}
