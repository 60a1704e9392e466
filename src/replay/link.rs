//! One shard's connection to one intercept: connected without ever blocking the shard,
//! carrying the hello and the shard's registrations out, and the reply headers of the
//! shard's flows back.
//!
//! The intercept routes a reply to the connection that registered its flow, so a shard that
//! registers its own flows on its own links receives exactly their replies. A link that
//! fails is retried every second; when it comes back it registers every live flow of the
//! shard again (an intercept that restarted knows none).
//!
//! On version 7 the link says which copy process it belongs to; an intercept that already
//! routes a flow for another copy process answers its registration with "taken", and the
//! shard moves that session to another port.
//!
//! Registrations start in version 6, which has no IPv6: IPv6 flows wait until the intercept
//! agrees to version 7, and a link still on version 6 after [`V7_WAIT`] is a TCPCopy 1.x
//! intercept, which is said once, loudly, and counted (`registrations_refused`).
//!
//! With `--secret-file`, nothing is registered until the intercept's challenge is answered
//! (`proto::CopyHandshake`); an intercept that cannot check the secret, or refuses it, is
//! said at most every 30 s, and retried every second.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::addresses::InterceptAddr;
use crate::packet::Flow;
use crate::proto::{
    self, CopyHandshake, CopyStep, HandshakeError, InterceptMessage, InterceptStreamDecoder,
    Secret, Version,
};
use crate::stats::Counter;

use super::core::ShardCore;

/// Pause between connection attempts to an intercept.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// A connection attempt that has not completed by then is given up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often an unreachable intercept is reported again.
const UNREACHABLE_LOG_INTERVAL: Duration = Duration::from_secs(30);
/// Registration bytes a link may hold unsent. An intercept that lets this much pile up reads
/// nothing: the link is dropped, and registers every live flow again when it reconnects.
const MAX_UNSENT: usize = 4 << 20;
/// Bytes read from an intercept in one loop turn at most, so one busy link cannot starve
/// the shard's capture.
const MAX_READ_PER_TURN: usize = 256 << 10;
/// Read buffer size.
const READ_CHUNK: usize = 16 << 10;
/// How long after connecting an intercept may take to agree to version 7 (ours answers the
/// hello at once; TCPCopy 1.x's never does).
const V7_WAIT: Duration = Duration::from_secs(3);

enum State {
    /// Not connected; the next attempt is due at `retry_at`.
    Down { retry_at: Instant },
    /// A non-blocking connect is under way.
    Connecting {
        socket: Socket,
        peer: SocketAddr,
        since: Instant,
    },
    Up {
        stream: TcpStream,
        decoder: InterceptStreamDecoder,
        /// Which version registrations go in, and whether they may go yet.
        handshake: CopyHandshake,
        /// IPv6 flows waiting for version 7.
        waiting: WaitingForV7,
    },
}

/// IPv6 registrations of a link still on version 6.
#[derive(Debug)]
struct WaitingForV7 {
    flows: Vec<Flow>,
    connected_at: Instant,
    /// The link is on version 6 for good: new IPv6 flows are refused at once.
    given_up: bool,
}

impl WaitingForV7 {
    fn new(connected_at: Instant) -> WaitingForV7 {
        WaitingForV7 {
            flows: Vec::new(),
            connected_at,
            given_up: false,
        }
    }

    /// Holds `flow` until version 7; false when the link gave up on it (refuse the flow).
    fn hold(&mut self, flow: Flow) -> bool {
        if !self.given_up {
            self.flows.push(flow);
        }
        !self.given_up
    }

    /// The flows to register now that the intercept agreed to version 7.
    fn release(&mut self) -> Vec<Flow> {
        std::mem::take(&mut self.flows)
    }

    /// Once [`V7_WAIT`] has passed on version 6: how many held flows are refused (`Some`
    /// once, when the link gives up; `None` before and after).
    fn expire(&mut self, now: Instant) -> Option<usize> {
        if self.given_up || now.saturating_duration_since(self.connected_at) < V7_WAIT {
            return None;
        }
        self.given_up = true;
        Some(std::mem::take(&mut self.flows).len())
    }
}

/// A shard's link to one intercept.
pub struct Link {
    addr: InterceptAddr,
    /// For log lines: which shard this link belongs to.
    shard: usize,
    /// Copy's stop flag.
    stopping: Arc<AtomicBool>,
    state: State,
    /// Encoded bytes not yet written.
    unsent: Vec<u8>,
    read_buffer: Box<[u8]>,
    last_failure_log: Option<Instant>,
    /// What this copy proves to every intercept.
    secret: Option<Secret>,
    /// When a refusal at the hello was last logged (kept across reconnections).
    last_refusal_log: Option<Instant>,
}

impl Link {
    /// The link of shard `shard` to `addr`, proving `secret` if given; `stopping` is copy's
    /// stop flag (a link that fails once it is set is no news: intercepts stopped with copy
    /// close their end).
    pub fn new(
        addr: InterceptAddr,
        shard: usize,
        now: Instant,
        stopping: Arc<AtomicBool>,
        secret: Option<Secret>,
    ) -> Link {
        Link {
            addr,
            shard,
            stopping,
            state: State::Down { retry_at: now },
            unsent: Vec::new(),
            read_buffer: vec![0; READ_CHUNK].into_boxed_slice(),
            last_failure_log: None,
            secret,
            last_refusal_log: None,
        }
    }

    pub fn is_up(&self) -> bool {
        matches!(self.state, State::Up { .. })
    }

    /// The descriptor to poll and for what, if any.
    pub fn interest(&self) -> Option<(RawFd, libc::c_short)> {
        match &self.state {
            State::Down { .. } => None,
            State::Connecting { socket, .. } => Some((socket.as_raw_fd(), libc::POLLOUT)),
            State::Up { stream, .. } => {
                let write = if self.unsent.is_empty() {
                    0
                } else {
                    libc::POLLOUT
                };
                Some((stream.as_raw_fd(), libc::POLLIN | write))
            }
        }
    }

    /// When this link next needs the shard's attention without any descriptor being ready:
    /// a retry or a connect timeout.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Down { retry_at } => Some(*retry_at),
            State::Connecting { since, .. } => Some(*since + CONNECT_TIMEOUT),
            State::Up { .. } => None,
        }
    }

    /// Starts a connection when one is due, and gives up an attempt that took too long.
    pub fn tick(&mut self, now: Instant) {
        match &self.state {
            State::Down { retry_at } if now >= *retry_at => match self.start_connect(now) {
                Ok(()) => {}
                Err(err) => self.failed(now, &format!("cannot connect: {err:#}")),
            },
            State::Connecting { since, .. } if now - *since >= CONNECT_TIMEOUT => {
                self.failed(now, "cannot connect: timed out");
            }
            _ => {}
        }
    }

    fn start_connect(&mut self, now: Instant) -> Result<()> {
        let peer = resolve(&self.addr)?;
        // socket2 opens it close-on-exec.
        let socket = Socket::new(Domain::for_address(peer), Type::STREAM, Some(Protocol::TCP))
            .context("cannot create a socket")?;
        socket.set_nonblocking(true)?;
        match socket.connect(&SockAddr::from(peer)) {
            Ok(()) => {}
            Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(err) => return Err(err).with_context(|| format!("connect to {peer}")),
        }
        self.state = State::Connecting {
            socket,
            peer,
            since: now,
        };
        Ok(())
    }

    /// The descriptor of this link was reported ready with `revents`.
    pub fn on_ready(&mut self, now: Instant, revents: libc::c_short, core: &mut ShardCore) {
        let result = match &self.state {
            State::Down { .. } => Ok(()),
            State::Connecting { .. } => self.finish_connect(core),
            State::Up { .. } => {
                let mut result = Ok(());
                if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                    result = self.read_replies(now, core);
                }
                if result.is_ok() && revents & libc::POLLOUT != 0 {
                    result = self.write_unsent();
                }
                result
            }
        };
        if let Err(err) = result {
            match err.downcast_ref::<HandshakeError>() {
                Some(refusal) => self.refused(now, refusal),
                None => self.failed(now, &format!("{err:#}")),
            }
        }
    }

    fn finish_connect(&mut self, core: &mut ShardCore) -> Result<()> {
        let placeholder = State::Down {
            retry_at: Instant::now(),
        };
        let State::Connecting { socket, peer, .. } =
            std::mem::replace(&mut self.state, placeholder)
        else {
            return Ok(());
        };
        if let Some(err) = socket.take_error()? {
            return Err(err).with_context(|| format!("cannot connect to {peer}"));
        }
        let stream: TcpStream = socket.into();
        stream.set_nodelay(true)?;
        let now = Instant::now();
        self.state = State::Up {
            stream,
            decoder: InterceptStreamDecoder::new(Version::LATEST),
            handshake: CopyHandshake::new(self.secret.clone(), now, V7_WAIT),
            waiting: WaitingForV7::new(now),
        };
        self.last_failure_log = None;
        core.emitted().counters.bump(Counter::InterceptConnects);
        log::info!("shard {}: connected to intercept {}", self.shard, self.addr);
        self.unsent.clear();
        proto::encode_hello(Version::LATEST, &mut self.unsent);
        for flow in core.sessions().live_flows() {
            self.register(flow);
        }
        self.write_unsent()
    }

    /// Reads what the intercept sent and hands each reply to `core`.
    fn read_replies(&mut self, now: Instant, core: &mut ShardCore) -> Result<()> {
        let State::Up {
            stream,
            decoder,
            handshake,
            waiting,
        } = &mut self.state
        else {
            return Ok(());
        };
        let mut read = 0;
        while read < MAX_READ_PER_TURN {
            let n = match stream.read(&mut self.read_buffer) {
                Ok(0) => anyhow::bail!("it closed the connection"),
                Ok(n) => n,
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => return Err(err).context("reading from intercept failed"),
            };
            read += n;
            decoder.feed(&self.read_buffer[..n]);
            while let Some(message) = decoder.next_message().context("bad data from intercept")? {
                match handshake.on_message(message, &mut self.unsent) {
                    CopyStep::Deliver(InterceptMessage::Reply(reply)) => {
                        core.on_reply(now, &reply);
                    }
                    CopyStep::Deliver(InterceptMessage::FlowTaken(flow)) => {
                        core.on_flow_taken(now, flow);
                    }
                    CopyStep::Deliver(_) | CopyStep::Held => {}
                    CopyStep::Opened { held_back } => {
                        log::info!(
                            "shard {}: intercept {} speaks protocol version 7{}",
                            self.shard,
                            self.addr,
                            if held_back {
                                "; its secret challenge answered"
                            } else {
                                ""
                            }
                        );
                        proto::encode_instance(process_instance(), &mut self.unsent);
                        let held = held_back.then(|| core.sessions().live_flows());
                        for flow in held.into_iter().flatten().chain(waiting.release()) {
                            encode_registration(Version::V7, flow, &mut self.unsent);
                        }
                    }
                    CopyStep::Failed(err) => {
                        // Let it read the refusal this side queued, if any.
                        let _ = stream.write_all(&self.unsent);
                        return Err(err.into());
                    }
                }
            }
        }
        Ok(())
    }

    /// Queues the registration of `flow`, if connected (a link that connects later
    /// registers every live flow then). Returns false when the intercept cannot take it (an
    /// IPv6 flow, and the intercept speaks only version 6).
    pub fn register(&mut self, flow: Flow) -> bool {
        let State::Up {
            handshake, waiting, ..
        } = &mut self.state
        else {
            return true;
        };
        match handshake.registrations() {
            // Registered with every other live flow once the handshake opens.
            None => true,
            Some(Version::V6) if flow.client.is_ipv6() => waiting.hold(flow),
            Some(version) => {
                encode_registration(version, flow, &mut self.unsent);
                true
            }
        }
    }

    /// Writes what is queued, as far as the socket takes it without blocking. Returns how
    /// many held IPv6 registrations this link gave up on (see [`V7_WAIT`]).
    pub fn flush(&mut self, now: Instant) -> usize {
        if let State::Up { handshake, .. } = &mut self.state
            && let Some(err) = handshake.on_timeout(now)
        {
            self.refused(now, &err);
            return 0;
        }
        let refused = self.expire_v6_wait(now);
        if self.unsent.is_empty() || !self.is_up() {
            return refused;
        }
        let result = if self.unsent.len() > MAX_UNSENT {
            Err(anyhow::anyhow!(
                "it reads nothing ({} bytes of registrations waiting)",
                self.unsent.len()
            ))
        } else {
            self.write_unsent()
        };
        if let Err(err) = result {
            self.failed(now, &format!("{err:#}"));
        }
        refused
    }

    /// Gives up the IPv6 registrations of a link that stayed on version 6, saying why once.
    fn expire_v6_wait(&mut self, now: Instant) -> usize {
        let State::Up { waiting, .. } = &mut self.state else {
            return 0;
        };
        let Some(refused) = waiting.expire(now) else {
            return 0;
        };
        if refused > 0 {
            log::error!("shard {}: {}", self.shard, v6_only_peer(&self.addr));
        }
        refused
    }

    fn write_unsent(&mut self) -> Result<()> {
        let State::Up { stream, .. } = &mut self.state else {
            return Ok(());
        };
        let mut written = 0;
        while written < self.unsent.len() {
            match stream.write(&self.unsent[written..]) {
                Ok(0) => anyhow::bail!("it stopped reading"),
                Ok(n) => written += n,
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(err).context("sending registrations failed"),
            }
        }
        self.unsent.drain(..written);
        Ok(())
    }

    /// The link failed: say so (an unreachable intercept at most every 30 s; only as news
    /// while copy stops) and retry later.
    fn failed(&mut self, now: Instant, why: &str) {
        let was_up = self.is_up();
        self.state = State::Down {
            retry_at: now + RECONNECT_DELAY,
        };
        self.unsent.clear();
        if self.stopping.load(Ordering::Relaxed) {
            log::info!(
                "shard {}: intercept {}: {why}, as copy stops",
                self.shard,
                self.addr
            );
        } else if was_up {
            log::warn!(
                "shard {}: intercept {}: {why}; reconnecting",
                self.shard,
                self.addr
            );
        } else if self
            .last_failure_log
            .is_none_or(|at| now - at >= UNREACHABLE_LOG_INTERVAL)
        {
            log::warn!(
                "shard {}: intercept {}: {why}; retrying every {}s",
                self.shard,
                self.addr,
                RECONNECT_DELAY.as_secs()
            );
            self.last_failure_log = Some(now);
        }
    }
}

impl Link {
    /// The hello failed (a secret the intercept cannot check or refuses): an error, said at
    /// most every 30 s however often the link retries.
    fn refused(&mut self, now: Instant, err: &HandshakeError) {
        self.state = State::Down {
            retry_at: now + RECONNECT_DELAY,
        };
        self.unsent.clear();
        if self
            .last_refusal_log
            .is_none_or(|at| now - at >= UNREACHABLE_LOG_INTERVAL)
        {
            log::error!(
                "shard {}: intercept {}: {err}; retrying every {}s",
                self.shard,
                self.addr,
                RECONNECT_DELAY.as_secs()
            );
            self.last_refusal_log = Some(now);
        }
    }
}

/// This copy process's id on every intercept connection (version 7), random per process:
/// an intercept tells two copies that replay the same client onto one 4-tuple apart by it.
pub fn process_instance() -> u64 {
    static INSTANCE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *INSTANCE.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.finish()
    })
}

/// Appends the registration of `flow` in `version` (which can carry it).
fn encode_registration(version: Version, flow: Flow, out: &mut Vec<u8>) {
    let Flow { client, target } = flow;
    if let Err(err) =
        proto::encode_registration(version, &proto::Registration::add(client, target), out)
    {
        log::debug!("cannot register {client} -> {target}: {err}");
    }
}

/// The first address `addr` resolves to. Addresses given as IP literals resolve without a
/// lookup; a host name is looked up at each attempt.
/// What a copy says when an intercept at `addr` stayed on version 6 while IPv6 sessions
/// waited for it.
fn v6_only_peer(addr: &InterceptAddr) -> String {
    format!(
        "intercept {addr} speaks only protocol version 6 (TCPCopy 1.x's intercept), which \
         cannot carry IPv6: IPv6 sessions get no replies through it; use tcpcopy intercept \
         for IPv6 targets"
    )
}

fn resolve(addr: &InterceptAddr) -> Result<SocketAddr> {
    (addr.host.as_str(), addr.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {}", addr.host))?
        .next()
        .with_context(|| format!("{} has no address", addr.host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_6_intercept_is_told_to_be_replaced_for_ipv6() {
        let addr: InterceptAddr = "198.51.100.40:36524".parse().unwrap();
        let message = v6_only_peer(&addr);
        assert!(
            message.starts_with("intercept 198.51.100.40:36524 speaks only protocol version 6")
        );
        assert!(message.ends_with("use tcpcopy intercept for IPv6 targets"));
        assert!(!message.contains("  "), "one line: {message}");
    }

    fn flow(client: &str) -> Flow {
        Flow {
            client: client.parse().unwrap(),
            target: "[2001:db8::30]:80".parse().unwrap(),
        }
    }

    #[test]
    fn ipv6_flows_wait_for_version_7_and_a_1x_intercept_refuses_them() {
        let start = Instant::now();
        let mut waiting = WaitingForV7::new(start);
        assert!(waiting.hold(flow("[2001:db8:1::5]:40000")));
        assert_eq!(waiting.expire(start + Duration::from_secs(1)), None);
        assert_eq!(
            waiting.release().len(),
            1,
            "registered once version 7 is agreed"
        );

        let mut stuck = WaitingForV7::new(start);
        stuck.hold(flow("[2001:db8:1::5]:40001"));
        stuck.hold(flow("[2001:db8:1::5]:40002"));
        assert_eq!(stuck.expire(start + V7_WAIT), Some(2), "given up, once");
        assert_eq!(stuck.expire(start + V7_WAIT * 2), None);
        assert!(
            !stuck.hold(flow("[2001:db8:1::5]:40003")),
            "later ones refused at once"
        );
    }
}
