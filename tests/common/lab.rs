//! [`Lab`]: one instance of the network-namespace lab, built by `scripts/lab.sh` under a
//! unique prefix and torn down on drop, with the ways to run things inside its hosts.

use std::ffi::OsStr;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use super::capture::Capture;
use super::client::{self, Connections, LoadReport};
use super::host::Host;
use super::netns::in_netns;
use super::process::{Output, Proc};
use super::temp_dir::TempDir;
use super::wait::{port_open, wait_until};

/// The script that builds and removes labs.
pub const LAB_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/lab.sh");

/// How long a [`Lab::run`] command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Per-operation socket timeout of the harness's clients.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// One lab at a time per test process: with two cores, labs running side by side only make
/// timings flaky.
static SERIAL: Mutex<()> = Mutex::new(());

/// A running lab. Dropping it kills whatever still runs in its hosts and deletes its
/// namespaces, also when the test panics.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    next_label: AtomicU32,
    dir: TempDir,
    _serial: MutexGuard<'static, ()>,
}

impl Lab {
    /// Builds a lab named after `name` (a unique prefix is derived from it), with offloads on
    /// or off. Fails, saying why, when not root or when a needed command is missing.
    pub fn up(name: &str, offloads: bool) -> Result<Lab> {
        let offloads = if offloads { "on" } else { "off" };
        Self::build(name, &["--offloads", offloads])
    }

    /// [`Lab::up`] with offloads off and IPv6 on every host too (`lab.sh up --ipv6`).
    pub fn up_ipv6(name: &str) -> Result<Lab> {
        Self::build(name, &["--offloads", "off", "--ipv6"])
    }

    fn build(name: &str, options: &[&str]) -> Result<Lab> {
        // SAFETY: geteuid(2) cannot fail and touches no memory.
        let euid = unsafe { libc::geteuid() };
        ensure!(
            euid == 0,
            "e2e tests build network namespaces and need root (CAP_NET_ADMIN, CAP_NET_RAW, \
             CAP_SYS_ADMIN); euid is {euid}: run `sudo scripts/test.sh`"
        );
        let check = run_script(&["check"])?;
        ensure!(
            check.status.success(),
            "the lab cannot be built: {}",
            check.stderr.trim()
        );

        let serial = SERIAL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let prefix = unique_prefix(name)?;
        let dir = TempDir::new(&format!("tcpcopy-e2e-{prefix}"))?;
        let lab = Lab {
            prefix,
            next_label: AtomicU32::new(0),
            dir,
            _serial: serial,
        };
        let up = run_script(&[&["up", "--prefix", lab.prefix.as_str()][..], options].concat())?;
        ensure!(
            up.status.success(),
            "lab.sh up failed ({}): {}",
            up.status,
            up.stderr.trim()
        );
        Ok(lab)
    }

    /// The prefix of this lab's namespace names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The lab's scratch directory (configs, logs, captures).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The network namespace of `host`.
    pub fn ns(&self, host: Host) -> String {
        format!("{}-{}", self.prefix, host.name())
    }

    /// Starts `command` (already set to run inside a host), its output captured under a
    /// label unique in this lab built from `label`.
    pub fn spawn_command(&self, label: &str, command: Command) -> Result<Proc> {
        let n = self.next_label.fetch_add(1, Ordering::Relaxed);
        Proc::spawn(&format!("{n:02}-{label}"), command, self.dir())
    }

    /// Starts `args` inside `host` with `ip netns exec` (which execs, so the pid is the
    /// program's own).
    pub fn spawn<S: AsRef<OsStr>>(&self, host: Host, args: &[S]) -> Result<Proc> {
        let Some(program) = args.first() else {
            bail!("spawn in {host} needs a command");
        };
        let program = Path::new(program.as_ref())
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns(host)]).args(args);
        self.spawn_command(&format!("{host}-{program}"), command)
    }

    /// Runs `args` inside `host` to completion (at most 30 s) and returns its output.
    pub fn run<S: AsRef<OsStr>>(&self, host: Host, args: &[S]) -> Result<Output> {
        self.spawn(host, args)?.finish(COMMAND_TIMEOUT)
    }

    /// Runs `args` inside `host` and returns its stdout; fails unless it exits 0.
    pub fn run_ok<S: AsRef<OsStr>>(&self, host: Host, args: &[S]) -> Result<String> {
        let output = self.run(host, args)?;
        ensure!(
            output.status.success(),
            "command in {host} failed ({}): {}",
            output.status,
            output.stderr.trim()
        );
        Ok(output.stdout)
    }

    /// Runs `work` on a thread inside `host`'s network namespace.
    pub fn in_host<T: Send>(
        &self,
        host: Host,
        work: impl FnOnce() -> Result<T> + Send,
    ) -> Result<T> {
        in_netns(&self.ns(host), work)
    }

    /// Waits until `addr` accepts TCP connections from `from`.
    pub fn wait_for_port(&self, from: Host, addr: SocketAddrV4, timeout: Duration) -> Result<()> {
        self.in_host(from, || {
            wait_until(timeout, &format!("{addr} to accept"), || {
                Ok(port_open(addr))
            })
        })
    }

    /// Sends `requests` HTTP GETs from `from` to `to` and counts the successes.
    pub fn http_load(
        &self,
        from: Host,
        to: impl Into<SocketAddr>,
        requests: usize,
        connections: Connections,
    ) -> Result<LoadReport> {
        let to = to.into();
        self.in_host(from, || {
            Ok(client::http_load(to, requests, connections, CLIENT_TIMEOUT))
        })
    }

    /// Sends `request` from `from` to `to` and returns the first line of the answer.
    pub fn line_exchange(&self, from: Host, to: SocketAddrV4, request: &[u8]) -> Result<String> {
        self.in_host(from, || {
            client::line_exchange(to.into(), request, CLIENT_TIMEOUT)
        })
    }

    /// Starts tcpdump on `host`'s `eth0` with the BPF `filter` and waits until it listens.
    pub fn capture(&self, host: Host, filter: &str) -> Result<Capture> {
        let n = self.next_label.fetch_add(1, Ordering::Relaxed);
        let file = self.dir().join(format!("{n:02}-{host}.pcap"));
        let proc = self.spawn(host, &Capture::tcpdump_args(&file, filter))?;
        Capture::started(proc, file)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        match run_script(&["down", "--prefix", &self.prefix]) {
            Ok(down) if down.status.success() => {}
            Ok(down) => eprintln!("e2e: lab.sh down {} failed: {}", self.prefix, down.stderr),
            Err(err) => eprintln!("e2e: lab.sh down {}: {err:#}", self.prefix),
        }
    }
}

/// Runs `lab.sh ARGS` in the root namespace. The script bounds its own run time.
fn run_script(args: &[&str]) -> Result<Output> {
    let output = Command::new(LAB_SCRIPT)
        .args(args)
        .output()
        .with_context(|| format!("running {LAB_SCRIPT} {}", args.join(" ")))?;
    Ok(Output {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// A prefix no other lab on this machine uses: up to five letters of `name`, then this
/// process's id and a per-process counter, both fixed-width base 36 (at most 12 characters,
/// as `lab.sh` requires).
fn unique_prefix(name: &str) -> Result<String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let stem: String = name
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        .take(5)
        .collect();
    ensure!(
        stem.starts_with(|c: char| c.is_ascii_lowercase()),
        "lab name {name:?} must start with a lowercase letter"
    );
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Ok(format!(
        "{stem}{}{}",
        base36(std::process::id(), 5),
        base36(n, 2)
    ))
}

/// `value` in base 36, zero-padded to `width` digits (the low digits if it is wider).
fn base36(mut value: u32, width: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut digits = vec![b'0'; width];
    for digit in digits.iter_mut().rev() {
        *digit = DIGITS[(value % 36) as usize];
        value /= 36;
    }
    String::from_utf8_lossy(&digits).into_owned()
}
