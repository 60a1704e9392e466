//! The servers tests talk to, each a fresh instance inside one lab host, listening on that
//! host's address, with its files in the lab's scratch directory: nginx (`return 200`, an
//! access log to count requests), memcached and redis (no persistence).

use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use super::host::Host;
use super::lab::{LAB_SCRIPT, Lab};
use super::process::Proc;

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// The port nginx listens on.
pub const HTTP_PORT: u16 = 80;
/// The port memcached listens on.
pub const MEMCACHED_PORT: u16 = 11211;
/// The port redis listens on.
pub const REDIS_PORT: u16 = 6379;
/// memcached's log buffers (KiB), large enough that its `watch` stream
/// (`super::command_log`) drops no line of a test's load: with the default 64 KiB per worker,
/// 244 of 20,000 gets back to back were dropped while the logger thread slept.
const MEMCACHED_LOG_BUFFERS: &str = "worker_logbuf_size=4096,watcher_logbuf_size=4096";

/// An nginx answering every request on port 80 with `200 ok` and logging it.
#[derive(Debug)]
pub struct Nginx {
    proc: Proc,
    dir: PathBuf,
}

impl Nginx {
    /// How many requests nginx has logged so far.
    pub fn access_count(&self) -> Result<usize> {
        let log = self.dir.join("access.log");
        match fs::read_to_string(&log) {
            Ok(text) => Ok(text.lines().count()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(err) => Err(err).with_context(|| format!("reading {}", log.display())),
        }
    }

    /// The file nginx logs each request to (format: `scripts/lab.sh nginx`).
    pub fn access_log_path(&self) -> PathBuf {
        self.dir.join("access.log")
    }

    /// The same requests in nginx's combined format, with their times.
    pub fn combined_log_path(&self) -> PathBuf {
        self.dir.join("access.combined.log")
    }

    /// The client address of every request nginx has logged so far, in order.
    pub fn client_addrs(&self) -> Result<Vec<IpAddr>> {
        Ok(self
            .access_entries()?
            .iter()
            .map(|entry| entry.client.ip())
            .collect())
    }

    /// The nginx process.
    pub fn proc_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

impl Lab {
    /// Starts nginx on `host` (config written by `lab.sh nginx`) and waits until it accepts.
    pub fn start_nginx(&self, host: Host) -> Result<Nginx> {
        self.start_nginx_answering(host, &[])
    }

    /// [`Lab::start_nginx`], answering each `(path, status)` of `answers` with that status
    /// instead of `200 ok` (`lab.sh nginx --answer`).
    pub fn start_nginx_answering(&self, host: Host, answers: &[(&str, u16)]) -> Result<Nginx> {
        let dir = self.dir().join(format!("nginx-{host}"));
        let mut command = Command::new(LAB_SCRIPT);
        command.args(["nginx", "--prefix", self.prefix()]);
        for (path, status) in answers {
            command.args(["--answer", &format!("{path}={status}")]);
        }
        command.arg(host.name()).arg(&dir);
        let proc = self.spawn_command(&format!("{host}-nginx"), command)?;
        let mut nginx = Nginx { proc, dir };
        self.wait_for_server(host, HTTP_PORT, &mut nginx.proc)?;
        Ok(nginx)
    }

    /// Starts memcached on `host` (TCP only, one worker thread, so its log keeps the order in
    /// which commands ran) and waits until it accepts.
    pub fn start_memcached(&self, host: Host) -> Result<Proc> {
        let addr = host.addr().to_string();
        let port = MEMCACHED_PORT.to_string();
        let args = [
            "memcached",
            "-u",
            "root",
            "-l",
            &addr,
            "-p",
            &port,
            "-U",
            "0",
            "-t",
            "1",
            "-o",
            MEMCACHED_LOG_BUFFERS,
        ];
        let mut proc = self.spawn(host, &args)?;
        self.wait_for_server(host, MEMCACHED_PORT, &mut proc)?;
        Ok(proc)
    }

    /// Starts redis-server on `host`, without persistence, and waits until it accepts.
    pub fn start_redis(&self, host: Host) -> Result<Proc> {
        let dir = self.dir().join(format!("redis-{host}"));
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let addr = host.addr().to_string();
        let port = REDIS_PORT.to_string();
        let dir = dir.to_string_lossy().into_owned();
        let args = [
            "redis-server",
            "--bind",
            &addr,
            "--port",
            &port,
            "--dir",
            &dir,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
        ];
        let mut proc = self.spawn(host, &args)?;
        self.wait_for_server(host, REDIS_PORT, &mut proc)?;
        Ok(proc)
    }

    /// Waits until `host:port` accepts, failing early (with the server's stderr) if the
    /// server exits.
    fn wait_for_server(&self, host: Host, port: u16, server: &mut Proc) -> Result<()> {
        let addr = host.socket(port);
        self.in_host(host, || {
            super::wait_until(
                START_TIMEOUT,
                &format!("{} on {addr}", server.label()),
                || {
                    server.ensure_running()?;
                    Ok(super::wait::port_open(addr))
                },
            )
        })
    }
}
