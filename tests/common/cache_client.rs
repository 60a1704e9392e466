//! Bounded clients for memcached's text protocol and redis's RESP, run inside a lab host
//! (through `Lab::memcached_load`, `Lab::redis_load` and the stats readers): a load of
//! request/response commands over several concurrent keep-alive connections, and the servers'
//! own counters (`stats`, `INFO commandstats`). Every socket operation has a timeout.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use super::client::LoadReport;
use super::host::Host;
use super::lab::Lab;

/// Per-operation socket timeout of these clients.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The shape of a command load: `connections` concurrent keep-alive connections, each
/// running `rounds` rounds of the protocol's command mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandLoad {
    /// Connections opened at once, each on its own thread.
    pub connections: usize,
    /// Rounds per connection.
    pub rounds: usize,
}

impl CommandLoad {
    /// Commands one memcached round sends: `set`, a `get` that hits, a `get` that misses.
    pub const MEMCACHED_COMMANDS_PER_ROUND: usize = 3;
    /// Commands one redis round sends: `SET`, `GET`, `INCR`.
    pub const REDIS_COMMANDS_PER_ROUND: usize = 3;

    /// Rounds in the whole load.
    pub fn total_rounds(self) -> usize {
        self.connections * self.rounds
    }
}

impl Lab {
    /// Runs a memcached load from `from` to `to`. Each round on connection `c` stores
    /// `k{c}-{r}`, reads it back (a hit) and reads `miss{c}-{r}` (a miss); a command counts as
    /// ok when the answer is exactly the expected one.
    pub fn memcached_load(&self, from: Host, to: SocketAddrV4, load: CommandLoad) -> LoadReport {
        self.in_host(from, || Ok(concurrent(to, load, memcached_rounds)))
            .unwrap_or_else(|err| failed_load(load, CommandLoad::MEMCACHED_COMMANDS_PER_ROUND, err))
    }

    /// Runs a redis load from `from` to `to`. Each round on connection `c` sends
    /// `SET k{c}-{r} v{r}`, `GET k{c}-{r}` and `INCR counter{c}`, checking each answer.
    pub fn redis_load(&self, from: Host, to: SocketAddrV4, load: CommandLoad) -> LoadReport {
        self.in_host(from, || Ok(concurrent(to, load, redis_rounds)))
            .unwrap_or_else(|err| failed_load(load, CommandLoad::REDIS_COMMANDS_PER_ROUND, err))
    }

    /// memcached's `stats` on `host`, asked from `host` itself (over loopback, so a copy
    /// capturing `eth0` never sees the question).
    pub fn memcached_stats(&self, host: Host, port: u16) -> Result<BTreeMap<String, String>> {
        self.in_host(host, || memcached_stats(host.socket(port)))
    }

    /// Calls per command from redis's `INFO commandstats` on `host` (lowercase command names),
    /// asked from `host` itself over loopback.
    pub fn redis_command_calls(&self, host: Host, port: u16) -> Result<BTreeMap<String, u64>> {
        self.in_host(host, || redis_command_calls(host.socket(port)))
    }
}

/// Runs `rounds` on `load.connections` threads (which inherit the calling thread's network
/// namespace) and adds their reports up.
fn concurrent(
    addr: SocketAddrV4,
    load: CommandLoad,
    rounds: fn(SocketAddrV4, usize, usize, &mut LoadReport),
) -> LoadReport {
    let reports: Vec<LoadReport> = thread::scope(|scope| {
        let workers: Vec<_> = (0..load.connections)
            .map(|connection| {
                scope.spawn(move || {
                    let mut report = LoadReport::default();
                    rounds(addr, connection, load.rounds, &mut report);
                    report
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut total = LoadReport::default();
    for report in reports {
        total.absorb(report);
    }
    total
}

/// A report for a load that could not start at all: every command failed with `err`.
fn failed_load(load: CommandLoad, per_round: usize, err: anyhow::Error) -> LoadReport {
    let mut report = LoadReport::default();
    report.record(Err(err));
    report.failed = load.total_rounds() * per_round;
    report
}

/// One keep-alive connection: commands written, answers read line by line.
pub(super) struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    pub(super) fn open(addr: SocketAddrV4) -> Result<Connection> {
        let stream = TcpStream::connect_timeout(&addr.into(), TIMEOUT)
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream: BufReader::new(stream),
        })
    }

    pub(super) fn send(&mut self, command: &[u8]) -> Result<()> {
        self.stream
            .get_mut()
            .write_all(command)
            .context("sending a command")
    }

    /// The next line of the answer without its `\r\n`.
    pub(super) fn line(&mut self) -> Result<String> {
        let mut line = String::new();
        if self
            .stream
            .read_line(&mut line)
            .context("reading an answer")?
            == 0
        {
            bail!("connection closed while an answer was due");
        }
        let Some(line) = line.strip_suffix("\r\n") else {
            bail!("answer line without CRLF: {line:?}");
        };
        Ok(line.to_owned())
    }

    /// Sends `command` and fails unless the answer is exactly `expected` (lines joined by
    /// `\r\n`, without the last one).
    pub(super) fn exchange(&mut self, command: &[u8], expected: &[&str]) -> Result<()> {
        self.send(command)?;
        for want in expected {
            let got = self.line()?;
            ensure!(
                got == *want,
                "{:?} answered {got:?}, expected {want:?}",
                String::from_utf8_lossy(command)
            );
        }
        Ok(())
    }

    /// This connection as the reader of a log the server streams to it from now on, without
    /// a read timeout (a log may stay quiet for long), and a handle that can shut it down.
    pub(super) fn into_log_reader(self) -> Result<(BufReader<TcpStream>, TcpStream)> {
        let stream = self.stream.get_ref();
        stream.set_read_timeout(None)?;
        let handle = stream.try_clone().context("cloning a log connection")?;
        Ok((self.stream, handle))
    }

    /// Reads `len` bytes and the `\r\n` after them.
    fn bytes(&mut self, len: usize) -> Result<Vec<u8>> {
        let mut data = vec![0; len + 2];
        self.stream
            .read_exact(&mut data)
            .context("reading a bulk answer")?;
        ensure!(data.ends_with(b"\r\n"), "bulk answer without CRLF");
        data.truncate(len);
        Ok(data)
    }
}

/// Runs `rounds` of `round` on one connection, reopening it after a failure (so one lost
/// answer does not fail every command after it), recording each command's outcome.
fn run_rounds(
    addr: SocketAddrV4,
    rounds: usize,
    report: &mut LoadReport,
    mut round: impl FnMut(&mut Connection, usize, &mut LoadReport) -> Result<()>,
) {
    let mut open: Option<Connection> = None;
    for r in 0..rounds {
        let connection = match open.take() {
            Some(connection) => connection,
            None => match Connection::open(addr) {
                Ok(connection) => connection,
                Err(err) => {
                    report.record(Err(err));
                    continue;
                }
            },
        };
        let mut connection = connection;
        if round(&mut connection, r, report).is_ok() {
            open = Some(connection);
        }
    }
}

/// Records `outcome` and passes it on, so a round stops at its first failed command.
fn step(report: &mut LoadReport, outcome: Result<()>) -> Result<()> {
    let failed = outcome.as_ref().err().map(|err| anyhow::anyhow!("{err:#}"));
    report.record(outcome);
    failed.map_or(Ok(()), Err)
}

fn memcached_rounds(addr: SocketAddrV4, c: usize, rounds: usize, report: &mut LoadReport) {
    run_rounds(addr, rounds, report, |conn, r, report| {
        let (key, value) = (format!("k{c}-{r}"), format!("v{r}"));
        let set = format!("set {key} 0 0 {}\r\n{value}\r\n", value.len());
        step(report, conn.exchange(set.as_bytes(), &["STORED"]))?;
        let hit = format!("VALUE {key} 0 {}", value.len());
        let get = format!("get {key}\r\n");
        step(
            report,
            conn.exchange(get.as_bytes(), &[&hit, &value, "END"]),
        )?;
        let miss = format!("get miss{c}-{r}\r\n");
        step(report, conn.exchange(miss.as_bytes(), &["END"]))
    });
}

/// A RESP array of bulk strings: how redis clients send commands.
pub(super) fn resp_command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    out
}

fn redis_rounds(addr: SocketAddrV4, c: usize, rounds: usize, report: &mut LoadReport) {
    let counter = format!("counter{c}");
    let mut increments = 0;
    run_rounds(addr, rounds, report, |conn, r, report| {
        let (key, value) = (format!("k{c}-{r}"), format!("v{r}"));
        step(
            report,
            conn.exchange(&resp_command(&["SET", &key, &value]), &["+OK"]),
        )?;
        let length = format!("${}", value.len());
        step(
            report,
            conn.exchange(&resp_command(&["GET", &key]), &[&length, &value]),
        )?;
        increments += 1;
        let incremented = format!(":{increments}");
        step(
            report,
            conn.exchange(&resp_command(&["INCR", &counter]), &[&incremented]),
        )
    });
}

fn memcached_stats(addr: SocketAddrV4) -> Result<BTreeMap<String, String>> {
    let mut conn = Connection::open(addr)?;
    conn.send(b"stats\r\n")?;
    let mut stats = BTreeMap::new();
    loop {
        let line = conn.line()?;
        if line == "END" {
            return Ok(stats);
        }
        let Some((name, value)) = line
            .strip_prefix("STAT ")
            .and_then(|stat| stat.split_once(' '))
        else {
            bail!("unexpected line in memcached stats: {line:?}");
        };
        stats.insert(name.to_owned(), value.to_owned());
    }
}

fn redis_command_calls(addr: SocketAddrV4) -> Result<BTreeMap<String, u64>> {
    let mut conn = Connection::open(addr)?;
    conn.send(&resp_command(&["INFO", "commandstats"]))?;
    let header = conn.line()?;
    let length: usize = header
        .strip_prefix('$')
        .and_then(|len| len.parse().ok())
        .with_context(|| format!("INFO answered {header:?}"))?;
    let body = String::from_utf8(conn.bytes(length)?).context("INFO is not UTF-8")?;
    // Lines like `cmdstat_get:calls=5,usec=12,usec_per_call=2.40,...`.
    body.lines()
        .filter_map(|line| line.trim().strip_prefix("cmdstat_"))
        .map(|stat| {
            let calls = stat.split_once(':').and_then(|(name, fields)| {
                let calls = fields
                    .split(',')
                    .find_map(|field| field.strip_prefix("calls="))?;
                Some((name.to_owned(), calls.parse().ok()?))
            });
            calls.with_context(|| format!("unexpected commandstats line {stat:?}"))
        })
        .collect()
}
