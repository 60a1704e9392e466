//! The commands a memcached or redis server ran, one record per command, read from the
//! server's own log while a test runs: memcached's `watch fetchers mutations` stream and
//! redis's `MONITOR`. Compared as multisets ([`super::multiset`]), they show a lost and a
//! duplicated command apart, where the servers' counters let them cancel out.
//!
//! [`Lab::watch_commands`] opens the log from inside the server's host (over loopback, so a
//! copy capturing `eth0` never sees it) before the load; a thread reads its lines into
//! records. [`CommandLog::seen`] is what the thread has read so far (for polling);
//! [`CommandLog::up_to_now`] first sends a fence command of its own and waits until the
//! fence is in the log, so it holds every command the server ran before the call (memcached
//! runs with one worker thread, whose log keeps that order; redis runs commands one at a
//! time). Commands the harness itself sends (fences, redis `INFO` from the server's own
//! address) are left out.
//!
//! A log that admits losing lines never passes: memcached's `skipped=N` notice, its
//! `log_worker_dropped` and `log_watcher_skipped` stats (dropped lines it does not announce),
//! a line that does not parse, or a log the server closed fail every later reading.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use super::cache_client::{Connection, resp_command};
use super::host::Host;
use super::lab::Lab;
use super::servers::{MEMCACHED_PORT, REDIS_PORT};
use super::wait::wait_until;

/// One command as the server logged it. memcached: `[item_get, KEY, STATUS]` or
/// `[item_store, KEY, STATUS, COMMAND]` (a `set` also logs the lookup before it); redis: the
/// command and its arguments as `MONITOR` quotes them, without the quotes (`[SET, k0-0, v0]`).
pub type LoggedCommand = Vec<String>;

/// The key of the fence commands [`CommandLog::up_to_now`] sends, followed by a number.
const FENCE_PREFIX: &str = "tcpcopy-fence-";
/// How long a fence may take to show in the log (memcached's logger thread sleeps up to 1 s
/// when idle).
const FENCE_TIMEOUT: Duration = Duration::from_secs(10);
/// memcached's counts of log lines it lost: by a worker whose buffer was full, and by a
/// watcher that could not keep up.
const MEMCACHED_LOST_LINES: [&str; 2] = ["log_worker_dropped", "log_watcher_skipped"];

/// A server whose commands can be logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandServer {
    /// memcached 1.6, `watch fetchers mutations`.
    Memcached,
    /// redis, `MONITOR`.
    Redis,
}

/// One line of a command log.
#[derive(Debug, PartialEq, Eq)]
enum LogLine {
    /// A command the server ran, with the client's address where the log gives it.
    Command {
        client: Option<SocketAddr>,
        command: LoggedCommand,
    },
    /// memcached's notice that the watcher lost this many lines.
    Skipped(u64),
}

impl CommandServer {
    fn port(self) -> u16 {
        match self {
            CommandServer::Memcached => MEMCACHED_PORT,
            CommandServer::Redis => REDIS_PORT,
        }
    }

    /// What turns a connection into a log, and the server's answer to it.
    fn watch_request(self) -> (Vec<u8>, &'static str) {
        match self {
            CommandServer::Memcached => (b"watch fetchers mutations\r\n".to_vec(), "OK"),
            CommandServer::Redis => (resp_command(&["MONITOR"]), "+OK"),
        }
    }

    /// A read of `key`, which no load stores, and the server's answer to it.
    fn fence_request(self, key: &str) -> (Vec<u8>, &'static [&'static str]) {
        match self {
            CommandServer::Memcached => (format!("get {key}\r\n").into_bytes(), &["END"]),
            CommandServer::Redis => (resp_command(&["GET", key]), &["$-1"]),
        }
    }

    /// Parses one line of the log, without its line ending.
    fn parse(self, line: &str) -> Result<LogLine> {
        match self {
            CommandServer::Memcached => parse_watch_line(line),
            CommandServer::Redis => parse_monitor_line(line),
        }
        .with_context(|| format!("{self:?} log line {line:?}"))
    }
}

/// memcached's `ts=... gid=... type=item_get key=K status=S ...`,
/// `... type=item_store key=K status=S cmd=C ...` or `skipped=N`.
fn parse_watch_line(line: &str) -> Result<LogLine> {
    if let Some(skipped) = line.strip_prefix("skipped=") {
        return Ok(LogLine::Skipped(skipped.parse().context("skipped count")?));
    }
    let field = |name: &str| {
        line.split(' ')
            .find_map(|field| field.strip_prefix(name)?.strip_prefix('='))
            .with_context(|| format!("no {name}="))
    };
    let kind = field("type")?;
    let mut command = vec![kind.to_owned(), field("key")?.to_owned()];
    command.push(field("status")?.to_owned());
    match kind {
        "item_get" => {}
        "item_store" => command.push(field("cmd")?.to_owned()),
        other => bail!("type {other} is neither a fetch nor a mutation"),
    }
    Ok(LogLine::Command {
        client: None,
        command,
    })
}

/// redis's `+TIME [DB ADDR] "cmd" "arg" ...`: every argument in double quotes, with `\"`,
/// `\\` and `\xHH` escapes (kept as they are: the same bytes log the same text). ADDR is
/// `IP:PORT`, or `lua`/`unix:PATH` for commands from no TCP client.
fn parse_monitor_line(line: &str) -> Result<LogLine> {
    let rest = line.strip_prefix('+').context("no leading +")?;
    let (_time, rest) = rest.split_once(" [").context("no [DB ADDR]")?;
    let (source, mut rest) = rest.split_once("] ").context("no ] after DB ADDR")?;
    let (_db, addr) = source.split_once(' ').context("no ADDR in [DB ADDR]")?;
    let mut command = Vec::new();
    while !rest.is_empty() {
        let quoted = rest
            .strip_prefix('"')
            .context("an argument without quotes")?;
        let end = closing_quote(quoted).context("an argument without its closing quote")?;
        command.push(quoted[..end].to_owned());
        rest = &quoted[end + 1..];
        rest = rest.strip_prefix(' ').unwrap_or(rest);
    }
    ensure!(!command.is_empty(), "no command");
    Ok(LogLine::Command {
        client: addr.parse().ok(),
        command,
    })
}

/// Where the quote that closes `text` is: the first `"` not escaped by a backslash.
fn closing_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (at, c) in text.char_indices() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => return Some(at),
            (false, _) => {}
        }
    }
    None
}

/// The number of a fence command of [`CommandLog::up_to_now`], if `command` is one.
fn fence_number(command: &LoggedCommand) -> Option<u32> {
    command.get(1)?.strip_prefix(FENCE_PREFIX)?.parse().ok()
}

/// What the reader thread has read.
#[derive(Debug, Default)]
struct Seen {
    /// The load's commands, in log order.
    commands: Vec<LoggedCommand>,
    /// The highest fence number read.
    fence: u32,
    /// Why the log can no longer be trusted, once it cannot.
    fault: Option<String>,
}

/// A server's command log, read on a thread from the moment [`Lab::watch_commands`] returns
/// until it is dropped.
#[derive(Debug)]
pub struct CommandLog<'lab> {
    lab: &'lab Lab,
    host: Host,
    server: CommandServer,
    seen: Arc<Mutex<Seen>>,
    fences_sent: u32,
    /// The log connection, to shut it down.
    connection: TcpStream,
    stopping: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl Lab {
    /// Opens the command log of the `server` running on `host`, from `host` itself; every
    /// command the server runs after this returns is in the log.
    pub fn watch_commands(&self, host: Host, server: CommandServer) -> Result<CommandLog<'_>> {
        let addr = host.socket(server.port());
        let (lines, connection) = self.in_host(host, || {
            let mut connection = Connection::open(addr)?;
            let (request, answer) = server.watch_request();
            connection.exchange(&request, &[answer])?;
            connection.into_log_reader()
        })?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stopping = Arc::new(AtomicBool::new(false));
        let reader = {
            let (seen, stopping) = (Arc::clone(&seen), Arc::clone(&stopping));
            thread::Builder::new()
                .name(format!("{host}-{server:?}-log"))
                .spawn(move || read_log(lines, server, host.addr().into(), &seen, &stopping))
                .context("starting a command log reader")?
        };
        Ok(CommandLog {
            lab: self,
            host,
            server,
            seen,
            fences_sent: 0,
            connection,
            stopping,
            reader: Some(reader),
        })
    }
}

impl CommandLog<'_> {
    /// The load's commands the log has shown so far, in log order; fails once the log has
    /// lost a line.
    pub fn seen(&self) -> Result<Vec<LoggedCommand>> {
        let seen = self.lock();
        if let Some(fault) = &seen.fault {
            bail!("the {:?} log of {}: {fault}", self.server, self.host);
        }
        Ok(seen.commands.clone())
    }

    /// Every command of the load the server ran before this call, in log order: sends a
    /// fence and waits until the log shows it. Fails if the log or the server says it lost a
    /// line.
    pub fn up_to_now(&mut self) -> Result<Vec<LoggedCommand>> {
        self.fences_sent += 1;
        let fence = self.fences_sent;
        let key = format!("{FENCE_PREFIX}{fence}");
        let (server, addr) = (self.server, self.host.socket(self.server.port()));
        self.lab.in_host(self.host, || {
            let (request, answer) = server.fence_request(&key);
            Connection::open(addr)?.exchange(&request, answer)
        })?;
        let what = format!("{key} in the {server:?} log of {}", self.host);
        wait_until(FENCE_TIMEOUT, &what, || {
            let seen = self.lock();
            Ok(seen.fence >= fence || seen.fault.is_some())
        })?;
        if server == CommandServer::Memcached {
            self.ensure_memcached_lost_nothing()?;
        }
        self.seen()
    }

    /// Fails unless memcached's own counts of lost log lines are 0.
    fn ensure_memcached_lost_nothing(&self) -> Result<()> {
        let stats = self.lab.memcached_stats(self.host, MEMCACHED_PORT)?;
        for name in MEMCACHED_LOST_LINES {
            let value = stats
                .get(name)
                .with_context(|| format!("memcached stats on {}: no {name}", self.host))?;
            ensure!(
                value == "0",
                "memcached on {} lost log lines: {name} {value}",
                self.host
            );
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Seen> {
        lock(&self.seen)
    }
}

impl Drop for CommandLog<'_> {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Errors mean the connection is already gone; the reader ends either way.
        let _ = self.connection.shutdown(Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

fn lock(seen: &Mutex<Seen>) -> MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The reader thread: parses each line into `seen` until the log ends, leaving out the
/// commands of `own` (the server's host, where the harness asks its questions) and noting
/// fences; the first fault ends it.
fn read_log(
    mut lines: BufReader<TcpStream>,
    server: CommandServer,
    own: IpAddr,
    seen: &Mutex<Seen>,
    stopping: &AtomicBool,
) {
    let mut line = String::new();
    let fault = loop {
        line.clear();
        let line = match lines.read_line(&mut line) {
            Ok(0) => break "the server closed the log".to_owned(),
            Ok(_) => line.trim_end_matches(['\r', '\n']),
            Err(err) => break format!("reading the log: {err}"),
        };
        match server.parse(line) {
            Ok(LogLine::Command { client, command }) => {
                let mut seen = lock(seen);
                if let Some(fence) = fence_number(&command) {
                    seen.fence = seen.fence.max(fence);
                } else if client.is_none_or(|client| client.ip() != own) {
                    seen.commands.push(command);
                }
            }
            Ok(LogLine::Skipped(lines)) => break format!("the server skipped {lines} lines"),
            Err(err) => break format!("{err:#}"),
        }
    };
    if !stopping.load(Ordering::SeqCst) {
        lock(seen).fault.get_or_insert(fault);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::{multiset, multiset_differences};

    fn command(words: &[&str]) -> LoggedCommand {
        words.iter().map(|word| (*word).to_owned()).collect()
    }

    #[test]
    fn parses_memcached_fetches_and_mutations() {
        let parse = |line| CommandServer::Memcached.parse(line).unwrap();
        assert_eq!(
            parse(
                "ts=1796195241.115478 gid=4 type=item_get key=k1 status=found clsid=1 cfd=13 size=2"
            ),
            LogLine::Command {
                client: None,
                command: command(&["item_get", "k1", "found"])
            }
        );
        assert_eq!(
            parse(
                "ts=1796195241.466246 gid=12 type=item_store key=k1 status=not_stored cmd=add \
                 ttl=0 clsid=1 cfd=13 size=1"
            ),
            LogLine::Command {
                client: None,
                command: command(&["item_store", "k1", "not_stored", "add"])
            }
        );
        assert_eq!(parse("skipped=244"), LogLine::Skipped(244));
    }

    #[test]
    fn refuses_memcached_lines_it_cannot_count() {
        let parse = |line| CommandServer::Memcached.parse(line);
        assert!(parse("ts=1.2 gid=3 type=eviction key=k1 fetch=no ttl=0").is_err());
        assert!(parse("ts=1.2 gid=3 type=item_get key=k1 clsid=1").is_err());
        assert!(parse("ts=1.2 gid=3 type=item_store key=k1 status=stored").is_err());
        assert!(parse("skipped=many").is_err());
        assert!(parse("OK").is_err());
    }

    #[test]
    fn parses_redis_monitor_lines_with_their_client() {
        let parse = |line| CommandServer::Redis.parse(line).unwrap();
        assert_eq!(
            parse(r#"+1796195403.830396 [0 198.51.100.10:49192] "SET" "k0-0" "v0""#),
            LogLine::Command {
                client: Some("198.51.100.10:49192".parse().unwrap()),
                command: command(&["SET", "k0-0", "v0"])
            }
        );
        assert_eq!(
            parse(r#"+1796195403.981121 [0 lua] "SET" "we\"ird \\x" "a\r\nb\x01\xff""#),
            LogLine::Command {
                client: None,
                command: command(&["SET", r#"we\"ird \\x"#, r"a\r\nb\x01\xff"])
            }
        );
        assert_eq!(
            parse(r#"+1796195404.081658 [0 127.0.0.1:49192] "PING""#),
            LogLine::Command {
                client: Some("127.0.0.1:49192".parse().unwrap()),
                command: command(&["PING"])
            }
        );
    }

    #[test]
    fn refuses_redis_lines_it_cannot_count() {
        let parse = |line| CommandServer::Redis.parse(line);
        assert!(parse(r#"1.2 [0 127.0.0.1:1] "GET" "k""#).is_err());
        assert!(parse(r#"+1.2 "GET" "k""#).is_err());
        assert!(parse(r#"+1.2 [0 127.0.0.1:1] "GET" "k"#).is_err());
        assert!(parse(r#"+1.2 [0 127.0.0.1:1] GET"#).is_err());
        assert!(parse("+1.2 [0 127.0.0.1:1] ").is_err());
    }

    #[test]
    fn knows_its_fences() {
        assert_eq!(
            fence_number(&command(&["item_get", "tcpcopy-fence-7", "not_found"])),
            Some(7)
        );
        assert_eq!(
            fence_number(&command(&["GET", "tcpcopy-fence-12"])),
            Some(12)
        );
        assert_eq!(fence_number(&command(&["GET", "k0-0"])), None);
    }

    /// The comparison the e2e tests make, on logged lines: one line less on one side shows,
    /// and so does a lost line next to a duplicated one, which the counters would not show.
    #[test]
    fn a_lost_or_a_duplicated_logged_command_shows() {
        let lines = [
            "ts=1.1 gid=1 type=item_get key=k0-0 status=not_found clsid=0 cfd=13 size=0",
            "ts=1.1 gid=2 type=item_store key=k0-0 status=stored cmd=set ttl=0 clsid=1 cfd=13",
            "ts=1.2 gid=3 type=item_get key=k0-0 status=found clsid=1 cfd=13 size=2",
            "ts=1.3 gid=4 type=item_get key=miss0-0 status=not_found clsid=0 cfd=13 size=0",
            "ts=1.4 gid=5 type=item_get key=k0-1 status=not_found clsid=0 cfd=13 size=0",
            "ts=1.4 gid=6 type=item_store key=k0-1 status=stored cmd=set ttl=0 clsid=1 cfd=13",
        ];
        let logged =
            |lines: &[&str]| {
                multiset(lines.iter().map(
                    |line| match CommandServer::Memcached.parse(line).unwrap() {
                        LogLine::Command { command, .. } => command,
                        LogLine::Skipped(_) => unreachable!("no skipped line here"),
                    },
                ))
            };
        let online = logged(&lines);
        assert!(multiset_differences(&online, &logged(&lines), 10).is_empty());

        let one_less = logged(&lines[..5]);
        assert_eq!(
            multiset_differences(&online, &one_less, 10),
            vec![(command(&["item_store", "k0-1", "stored", "set"]), 1, 0)]
        );

        let mut lost_and_duplicated = lines.to_vec();
        lost_and_duplicated[3] = lines[2];
        assert_eq!(
            multiset_differences(&online, &logged(&lost_and_duplicated), 10),
            vec![
                (command(&["item_get", "k0-0", "found"]), 1, 2),
                (command(&["item_get", "miss0-0", "not_found"]), 1, 0)
            ]
        );
    }
}
