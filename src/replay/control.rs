//! The copy side of the control channel: which intercepts to reach, keeping a connection to
//! each, sending it the registrations of [`Registrar`], and feeding the reply headers that
//! come back to the workers.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::dispatch::Dispatcher;
use super::registrar::{Attached, Registrar};
use super::rewrite::SyntaxError;
use super::worker::WorkerInput;
use crate::packet;
use crate::packet::Flow;
use crate::proto;
use crate::stats::{Counter, Counters, LocalCounters};

/// One `-s` intercept: a host name or address and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterceptAddr {
    pub host: String,
    pub port: u16,
}

impl FromStr for InterceptAddr {
    type Err = SyntaxError;

    /// `HOST`, `HOST:PORT`, `[IPV6]` or `[IPV6]:PORT`.
    fn from_str(text: &str) -> Result<Self, SyntaxError> {
        let text = text.trim();
        let invalid = || {
            SyntaxError::new(format!(
                "`{text}` is not an intercept address `HOST[:PORT]`"
            ))
        };
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(invalid)?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(invalid)?)),
            }
        } else if text.matches(':').count() > 1 {
            (text, None) // a bare IPv6 address
        } else {
            match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        let port = match port {
            None => crate::proto::DEFAULT_PORT,
            Some(port) => port.parse().ok().filter(|&p| p != 0).ok_or_else(invalid)?,
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(invalid());
        }
        Ok(InterceptAddr {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for InterceptAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intercept_address_forms() {
        let a: InterceptAddr = "198.51.100.40".parse().unwrap();
        assert_eq!((a.host.as_str(), a.port), ("198.51.100.40", 36524));
        let a: InterceptAddr = "assistant:9000".parse().unwrap();
        assert_eq!((a.host.as_str(), a.port), ("assistant", 9000));
        let a: InterceptAddr = "[2001:db8::4]:9000".parse().unwrap();
        assert_eq!((a.host.as_str(), a.port), ("2001:db8::4", 9000));
        assert_eq!(a.to_string(), "[2001:db8::4]:9000");
        let a: InterceptAddr = "2001:db8::4".parse().unwrap();
        assert_eq!(a.port, 36524);
        for bad in ["", "h:0", "h:x", "[::1", "[::1]x"] {
            assert!(bad.parse::<InterceptAddr>().is_err(), "{bad}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Intercept links.

/// Pause between connection attempts to an intercept.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// How often the blocked threads of a link look at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);
/// How often an unreachable intercept is reported again.
const UNREACHABLE_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// Keeps one intercept connected until `stop`: connects, sends the hello and registrations,
/// and feeds the reply headers it receives to the workers.
pub fn run_link(
    addr: &InterceptAddr,
    registrar: &Registrar,
    dispatcher: &Dispatcher,
    stop: &AtomicBool,
    shared: &Arc<Counters>,
) {
    let mut last_failure_log: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        match connect(addr) {
            Ok(stream) => {
                last_failure_log = None;
                shared.add(Counter::InterceptConnects, 1);
                log::info!("connected to intercept {addr}");
                match serve_link(stream, registrar, dispatcher, stop, shared) {
                    Ok(()) => log::warn!("intercept {addr} closed the connection; reconnecting"),
                    Err(err) => log::warn!("intercept {addr}: {err:#}; reconnecting"),
                }
            }
            Err(err) => {
                let now = Instant::now();
                if last_failure_log.is_none_or(|at| now - at >= UNREACHABLE_LOG_INTERVAL) {
                    log::warn!(
                        "cannot reach intercept {addr}: {err:#}; retrying every {}s",
                        RECONNECT_DELAY.as_secs()
                    );
                    last_failure_log = Some(now);
                }
            }
        }
        sleep_unless_stopped(RECONNECT_DELAY, stop);
    }
}

fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) {
    let until = Instant::now() + duration;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(STOP_CHECK.min(until - Instant::now()));
    }
}

fn connect(addr: &InterceptAddr) -> anyhow::Result<TcpStream> {
    let resolved = (addr.host.as_str(), addr.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {}", addr.host))?;
    let mut last_error = None;
    for candidate in resolved {
        match TcpStream::connect_timeout(&candidate, Duration::from_secs(2)) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error.map_or_else(|| anyhow::anyhow!("no address"), anyhow::Error::new))
}

/// Runs one connection until it fails or `stop`: a writer thread sends the hello and every
/// registration, this thread decodes replies.
fn serve_link(
    stream: TcpStream,
    registrar: &Registrar,
    dispatcher: &Dispatcher,
    stop: &AtomicBool,
    shared: &Arc<Counters>,
) -> anyhow::Result<()> {
    let writer_stream = stream
        .try_clone()
        .context("cannot clone the intercept socket")?;
    let Attached { id, queue, backlog } = registrar.attach();
    let state = LinkState::default();
    let result = std::thread::scope(|scope| {
        let writer =
            scope.spawn(|| write_registrations(writer_stream, &queue, backlog, stop, &state));
        let read_result = read_replies(&stream, dispatcher, stop, &state, shared);
        state.down.store(true, Ordering::Relaxed);
        let _ = stream.shutdown(std::net::Shutdown::Both);
        let write_result = writer
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("writer panicked")));
        read_result.and(write_result)
    });
    registrar.detach(id);
    result
}

/// What the two threads of a link tell each other.
#[derive(Default)]
struct LinkState {
    /// The link failed or is closing.
    down: AtomicBool,
    /// The intercept agreed to version 7: the writer answers with the switch marker and
    /// speaks version 7 from then on.
    switch_to_v7: AtomicBool,
}

fn write_registrations(
    mut stream: TcpStream,
    queue: &Receiver<Flow>,
    backlog: Vec<Flow>,
    stop: &AtomicBool,
    state: &LinkState,
) -> anyhow::Result<()> {
    let mut version = proto::Version::V6;
    let mut buffer = Vec::with_capacity(4096);
    proto::encode_hello(proto::Version::LATEST, &mut buffer);
    for registration in backlog {
        encode_registration(version, registration, &mut buffer);
    }
    stream
        .write_all(&buffer)
        .context("sending the hello failed")?;
    while !stop.load(Ordering::Relaxed) && !state.down.load(Ordering::Relaxed) {
        buffer.clear();
        if version == proto::Version::V6 && state.switch_to_v7.load(Ordering::Relaxed) {
            proto::encode_switch(&mut buffer);
            version = proto::Version::V7;
        }
        match queue.recv_timeout(STOP_CHECK) {
            Ok(first) => {
                for registration in std::iter::once(first).chain(queue.try_iter().take(1023)) {
                    encode_registration(version, registration, &mut buffer);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if !buffer.is_empty() {
            stream
                .write_all(&buffer)
                .context("sending registrations failed")?;
        }
    }
    Ok(())
}

fn encode_registration(version: proto::Version, flow: Flow, out: &mut Vec<u8>) {
    let Flow { client, target } = flow;
    if let Err(err) =
        proto::encode_registration(version, &proto::Registration::add(client, target), out)
    {
        log::debug!("cannot register {client} -> {target}: {err}");
    }
}

fn read_replies(
    mut stream: &TcpStream,
    dispatcher: &Dispatcher,
    stop: &AtomicBool,
    state: &LinkState,
    shared: &Arc<Counters>,
) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(STOP_CHECK))?;
    let mut decoder = proto::InterceptStreamDecoder::new(proto::Version::LATEST);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut counters = LocalCounters::default();
    let mut batcher = dispatcher.batcher();
    while !stop.load(Ordering::Relaxed) && !state.down.load(Ordering::Relaxed) {
        let n = match stream.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                counters.flush_into(shared);
                continue;
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(err).context("reading from intercept failed"),
        };
        decoder.feed(&buffer[..n]);
        while let Some(message) = decoder.next_message().context("bad data from intercept")? {
            let reply = match message {
                proto::InterceptMessage::Reply(reply) => reply,
                proto::InterceptMessage::Switch(version) => {
                    log::info!("intercept speaks protocol version {}", version.number());
                    state
                        .switch_to_v7
                        .store(version == proto::Version::V7, Ordering::Relaxed);
                    continue;
                }
                proto::InterceptMessage::Counters(_) | proto::InterceptMessage::Unknown { .. } => {
                    continue;
                }
            };
            counters.bump(Counter::RepliesReceived);
            match packet::parse_ip_headers(reply.headers()) {
                Ok(segment) => {
                    let client = segment.dst;
                    let lost = batcher.push(client, WorkerInput::Reply { segment });
                    counters.add(Counter::QueueFull, lost as u64);
                }
                Err(err) => {
                    counters.bump(Counter::Malformed);
                    log::debug!("unusable reply headers from intercept: {err}");
                }
            }
        }
        counters.add(Counter::QueueFull, batcher.flush() as u64);
        if counters.should_flush() {
            counters.flush_into(shared);
        }
    }
    counters.flush_into(shared);
    Ok(())
}
