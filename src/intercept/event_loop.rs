//! intercept's one thread: a `poll(2)` loop over the control listener, every reply source and
//! every copy connection.
//!
//! A loop turn: accept new copies, read what copies sent (registrations first, so a SYN-ACK
//! seen in the same turn finds its route), drain every readable source (verdicts given as the
//! headers are taken), then end the turn: each connection writes the combined frames of the
//! replies it got this turn. Owns the clock the switchboard is given; decides no routing.
//!
//! The accept is the first guard of the control port: a peer outside `--allow` is closed at
//! once and counted, and when the process runs out of descriptors the listener rests until
//! the next expiry instead of spinning on a listener it cannot accept from.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use super::connection::ConnectionLimits;
use super::failsafe::{Activity, Guard};
use super::incidents::Incidents;
use super::router::ConnId;
use super::sources::ReplySource;
use super::switchboard::Switchboard;
use crate::addresses::Cidr;
use crate::poll::{poll, pollfd};
use crate::proto::Secret;
use crate::stats::{Counter, Counters};

/// How often parked replies, idle routes and silent connections are expired, and the longest
/// the loop sleeps (the stop flag is looked at at least this often).
const EXPIRE_EVERY: Duration = Duration::from_secs(1);
/// Replies taken from one source per turn, at most: the others and the copies get their turn.
const DRAIN_PER_TURN: usize = 1024;
/// Connections accepted per turn, at most.
const ACCEPTS_PER_TURN: usize = 16;
/// How long the listener rests after an accept failed (no descriptor left).
const LISTENER_REST: Duration = Duration::from_millis(100);
/// Bytes read from a copy connection at a time (registrations are 14 to 42 bytes each).
const READ_CHUNK: usize = 16 * 1024;

/// What one entry of the poll set stands for.
#[derive(Debug, Clone, Copy)]
enum Polled {
    Listener,
    Source(usize),
    Connection(ConnId),
}

/// Who may use the control port: `--allow` and `--secret-file`, and how many strangers may
/// wait for their hello at once.
#[derive(Debug, Clone)]
pub struct PortGuard {
    /// Peers outside these blocks are closed at accept; empty: anyone may connect.
    pub allow: Vec<Cidr>,
    /// What copies must prove at the hello.
    pub secret: Option<Secret>,
    /// Connections waiting for their hello at once, at most (the oldest makes room).
    pub waiting_limit: usize,
}

impl Default for PortGuard {
    fn default() -> Self {
        PortGuard {
            allow: Vec::new(),
            secret: None,
            waiting_limit: ConnectionLimits::default().unopened,
        }
    }
}

/// Whether `peer` may connect under `--allow` (empty: anyone).
fn admitted(allow: &[Cidr], peer: std::net::IpAddr) -> bool {
    allow.is_empty() || allow.iter().any(|block| block.contains(peer))
}

/// The control listener, the reply sources and the copy connections of one intercept.
pub struct EventLoop {
    listener: TcpListener,
    /// The listener is left out of the poll set until then (descriptors ran out).
    listener_resting_until: Option<Instant>,
    allow: Vec<Cidr>,
    sources: Vec<Box<dyn ReplySource>>,
    switchboard: Switchboard,
    counters: Arc<Counters>,
    incidents: Incidents,
    /// Copy connections open now, for `--metrics` (stored at the end of each loop turn).
    copies_connected: Arc<AtomicUsize>,
    /// Looks at the host and the counters once a second, when set.
    guard: Option<Guard>,
}

impl EventLoop {
    pub fn new(
        listener: TcpListener,
        sources: Vec<Box<dyn ReplySource>>,
        counters: Arc<Counters>,
        port_guard: PortGuard,
    ) -> Result<Self> {
        listener
            .set_nonblocking(true)
            .context("cannot make the control listener non-blocking")?;
        Ok(EventLoop {
            listener,
            listener_resting_until: None,
            allow: port_guard.allow,
            sources,
            switchboard: Switchboard::new(
                ConnectionLimits {
                    unopened: port_guard.waiting_limit,
                    ..ConnectionLimits::default()
                },
                Arc::clone(&counters),
                port_guard.secret,
            ),
            incidents: Incidents::new(Arc::clone(&counters)),
            counters,
            copies_connected: Arc::default(),
            guard: None,
        })
    }

    /// This loop with `guard` looking at the host and the counters once a second.
    pub fn guarded_by(self, guard: Guard) -> Self {
        EventLoop {
            guard: Some(guard),
            ..self
        }
    }

    /// How many copy connections are open, as of the last loop turn.
    pub fn copies_connected(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.copies_connected)
    }

    /// Runs turns until `stop` is set or a source fails.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<()> {
        let mut poll_set: Vec<libc::pollfd> = Vec::new();
        let mut polled: Vec<Polled> = Vec::new();
        let mut scratch = vec![0u8; READ_CHUNK];
        let mut next_expiry = Instant::now() + EXPIRE_EVERY;
        // Sources whose last drain stopped at DRAIN_PER_TURN: what they hold may already be
        // read from their descriptor (the `nfq` crate reads several packets at once), so they
        // are drained again next turn without waiting for `poll` to say so.
        let mut unfinished: Vec<usize> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            self.fill_poll_set(&mut poll_set, &mut polled);
            let wake = self
                .listener_resting_until
                .map_or(next_expiry, |until| until.min(next_expiry));
            let timeout = if unfinished.is_empty() {
                wake.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            if !poll(&mut poll_set, timeout).context("poll on intercept's sockets failed")? {
                // A signal: look at the stop flag.
                continue;
            }
            let now = Instant::now();
            let timestamp_us = unix_micros();
            for (entry, what) in poll_set.iter().zip(&polled) {
                if entry.revents == 0 {
                    continue;
                }
                match *what {
                    Polled::Listener => self.accept(now),
                    Polled::Connection(conn) => {
                        self.switchboard.on_readable(conn, &mut scratch, now);
                    }
                    Polled::Source(_) => {}
                }
            }
            let was_unfinished = std::mem::take(&mut unfinished);
            for (entry, what) in poll_set.iter().zip(&polled) {
                let Polled::Source(index) = *what else {
                    continue;
                };
                if (entry.revents != 0 || was_unfinished.contains(&index))
                    && self.drain_source(index, timestamp_us, now)?
                {
                    unfinished.push(index);
                }
            }
            self.switchboard.end_turn();
            self.copies_connected
                .store(self.switchboard.connection_count(), Ordering::Relaxed);
            if self
                .listener_resting_until
                .is_some_and(|until| now >= until)
            {
                self.listener_resting_until = None;
            }
            if now >= next_expiry {
                self.switchboard.expire(now);
                self.update_kernel_dropped();
                self.look_at_the_host(now);
                next_expiry = now + EXPIRE_EVERY;
            }
        }
        // The totals logged at exit account for every reply: none left parked, the kernel's
        // last drop count read.
        self.switchboard.drop_parked_replies();
        self.update_kernel_dropped();
        Ok(())
    }

    fn fill_poll_set(&self, poll_set: &mut Vec<libc::pollfd>, polled: &mut Vec<Polled>) {
        poll_set.clear();
        polled.clear();
        let readable = |fd| pollfd(fd, libc::POLLIN);
        if self.listener_resting_until.is_none() {
            poll_set.push(readable(self.listener.as_raw_fd()));
            polled.push(Polled::Listener);
        }
        for (index, source) in self.sources.iter().enumerate() {
            poll_set.push(readable(source.fd()));
            polled.push(Polled::Source(index));
        }
        for (conn, fd, wants_write) in self.switchboard.poll_interest() {
            let mut entry = readable(fd);
            if wants_write {
                entry.events |= libc::POLLOUT;
            }
            poll_set.push(entry);
            polled.push(Polled::Connection(conn));
        }
    }

    fn accept(&mut self, now: Instant) {
        for _ in 0..ACCEPTS_PER_TURN {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
                    if !admitted(&self.allow, peer.ip()) {
                        // Dropping the stream closes it before anything is read.
                        drop(stream);
                        self.incidents.report(Counter::ConnectionsRefused, now, || {
                            format!("refused a connection from {peer}: not in --allow")
                        });
                        continue;
                    }
                    if let Err(err) = self.switchboard.connect(stream, peer, now) {
                        log::warn!("cannot take copy connection {peer}: {err}");
                    }
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => {
                    // Out of descriptors or memory: the listener stays readable, so it
                    // rests a while rather than spin.
                    self.listener_resting_until = Some(now + LISTENER_REST);
                    log::warn!(
                        "accepting a copy connection failed: {err}; accepting again in {LISTENER_REST:?}"
                    );
                    return;
                }
            }
        }
    }

    /// Drains source `index`; true when it stopped at [`DRAIN_PER_TURN`] (more may wait).
    fn drain_source(&mut self, index: usize, timestamp_us: u64, now: Instant) -> Result<bool> {
        let (switchboard, counters) = (&mut self.switchboard, &self.counters);
        let source = &mut self.sources[index];
        let taken = source.drain(DRAIN_PER_TURN, &mut |packet, headers| match headers {
            Ok(reply) => switchboard.on_reply(packet, &reply, timestamp_us, now),
            Err(err) => {
                counters.add(Counter::Malformed, 1);
                log::debug!("unusable reply: {err}");
            }
        });
        let taken = taken.with_context(|| format!("reply source {} failed", source.name()))?;
        counters.add(Counter::Captured, taken as u64);
        Ok(taken == DRAIN_PER_TURN)
    }

    fn look_at_the_host(&mut self, now: Instant) {
        let Some(guard) = &mut self.guard else {
            return;
        };
        let activity = Activity {
            flows_registered: self.counters.get(Counter::FlowsRegistered),
            captured: self.counters.get(Counter::Captured),
        };
        for alarm in guard.tick(now, activity) {
            alarm.log();
        }
    }

    fn update_kernel_dropped(&mut self) {
        let dropped: Option<u64> = self
            .sources
            .iter_mut()
            .filter_map(|source| source.kernel_dropped())
            .reduce(|a, b| a + b);
        if let Some(dropped) = dropped {
            self.counters.set(Counter::KernelDropped, dropped);
        }
    }
}

/// Microseconds since the Unix epoch: the capture time version-7 replies carry.
fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intercept::sources::ReplyHandler;
    use crate::packet::{self, Segment, SeqNum, TcpFlags, TcpOptions};
    use crate::proto::{self, Version};
    use std::collections::VecDeque;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::os::fd::RawFd;
    use std::os::unix::net::UnixDatagram;
    use std::thread;

    /// A reply source fed by the test: one datagram per captured IP packet.
    struct DatagramReplies(UnixDatagram);

    impl ReplySource for DatagramReplies {
        fn name(&self) -> &str {
            "test datagrams"
        }
        fn fd(&self) -> RawFd {
            self.0.as_raw_fd()
        }
        fn drain(&mut self, max: usize, handle: &mut ReplyHandler<'_>) -> Result<usize> {
            let mut buffer = [0u8; 512];
            for handed in 0..max {
                match self.0.recv(&mut buffer) {
                    Ok(n) => handle(&buffer[..n], packet::split_ip_headers(&buffer[..n])),
                    Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(handed),
                    Err(err) => return Err(err.into()),
                }
            }
            Ok(max)
        }
        fn kernel_dropped(&mut self) -> Option<u64> {
            None
        }
    }

    /// A reply source that, like the `nfq` crate, reads everything its descriptor holds into
    /// a buffer of its own at the first drain: `poll` never reports the rest.
    struct BufferingReplies {
        socket: UnixDatagram,
        buffered: VecDeque<Vec<u8>>,
    }

    impl ReplySource for BufferingReplies {
        fn name(&self) -> &str {
            "test buffering datagrams"
        }
        fn fd(&self) -> RawFd {
            self.socket.as_raw_fd()
        }
        fn drain(&mut self, max: usize, handle: &mut ReplyHandler<'_>) -> Result<usize> {
            let mut buffer = [0u8; 512];
            while let Ok(n) = self.socket.recv(&mut buffer) {
                self.buffered.push_back(buffer[..n].to_vec());
            }
            let handed = max.min(self.buffered.len());
            for packet in self.buffered.drain(..handed) {
                handle(&packet, packet::split_ip_headers(&packet));
            }
            Ok(handed)
        }
        fn kernel_dropped(&mut self) -> Option<u64> {
            None
        }
    }

    /// A SYN-ACK from the target 10.77.1.3:8080 to the copy's client 10.77.9.1:52302.
    fn syn_ack() -> Vec<u8> {
        let segment = Segment {
            src: "10.77.1.3:8080".parse().unwrap(),
            dst: "10.77.9.1:52302".parse().unwrap(),
            seq: SeqNum(0x1234),
            ack: SeqNum(0x5678),
            flags: TcpFlags::SYN | TcpFlags::ACK,
            window: 65160,
            options: TcpOptions {
                mss: Some(1460),
                ..TcpOptions::default()
            },
            ip_id: 0,
            ttl: 64,
            payload_len: 0,
        };
        let mut bytes = Vec::new();
        packet::emit_ip(&segment, &[], &mut bytes).unwrap();
        bytes
    }

    /// Runs a loop on 127.0.0.1 with a datagram source; returns its address, the source's
    /// feeding end and the stop flag.
    fn start_loop() -> (SocketAddr, UnixDatagram, Arc<AtomicBool>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (feed, source) = UnixDatagram::pair().unwrap();
        source.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let loop_stop = Arc::clone(&stop);
        thread::spawn(move || {
            let sources: Vec<Box<dyn ReplySource>> = vec![Box::new(DatagramReplies(source))];
            EventLoop::new(
                listener,
                sources,
                Arc::new(Counters::default()),
                PortGuard::default(),
            )?
            .run(&loop_stop)
        });
        (addr, feed, stop)
    }

    fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
        let mut bytes = vec![0; len];
        stream.read_exact(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn a_tcpcopy_1x_client_gets_version_6_combined_frames() {
        let (addr, feed, stop) = start_loop();
        let mut copy = TcpStream::connect(addr).unwrap();
        copy.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // The bytes TCPCopy 1.3 sends: the hello, then CLIENT_ADD for 10.77.9.1:52302 → 10.77.1.3:8080.
        copy.write_all(&[0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0])
            .unwrap();
        copy.write_all(&[
            0x0a, 0x4d, 0x09, 0x01, 0xcc, 0x4e, 0, 1, 0x0a, 0x4d, 0x01, 0x03, 0x1f, 0x90,
        ])
        .unwrap();
        let bytes = syn_ack();
        // The SYN-ACK may arrive before the registration is read: it is parked, then sent.
        feed.send(&bytes).unwrap();

        let frame = read_exactly(&mut copy, 2 + 64);
        assert_eq!(&frame[..2], &[0, 1], "a combined frame of one message");
        assert_eq!(&frame[2..22], &bytes[..20], "the IPv4 header as captured");
        assert_eq!(
            &frame[22..22 + 24],
            &bytes[20..44],
            "the TCP header with its options"
        );
        assert!(
            frame[46..].iter().all(|&b| b == 0),
            "zero padding to 64 bytes"
        );
        stop.store(true, Ordering::Relaxed);
    }

    #[test]
    fn our_copy_is_answered_with_the_version_switch_then_v7_replies() {
        let (addr, feed, stop) = start_loop();
        let mut copy = TcpStream::connect(addr).unwrap();
        copy.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut hello = Vec::new();
        proto::encode_hello(Version::V7, &mut hello);
        let registration = proto::Registration::add(
            "10.77.9.1:52302".parse().unwrap(),
            "10.77.1.3:8080".parse().unwrap(),
        );
        proto::encode_registration(Version::V6, &registration, &mut hello).unwrap();
        copy.write_all(&hello).unwrap();
        let mut switch = Vec::new();
        proto::encode_switch(&mut switch);
        assert_eq!(read_exactly(&mut copy, switch.len()), switch);

        feed.send(&syn_ack()).unwrap();
        let mut decoder = proto::InterceptStreamDecoder::new(Version::V7);
        decoder.feed(&switch);
        assert_eq!(
            decoder.next_message().unwrap(),
            Some(proto::InterceptMessage::Switch(Version::V7))
        );
        let reply = loop {
            match decoder.next_message().unwrap() {
                // Without a secret: nothing to prove.
                Some(proto::InterceptMessage::Challenge(proto::Challenge::None)) => continue,
                Some(message) => break message,
                None => {}
            }
            let mut chunk = [0u8; 256];
            let n = copy.read(&mut chunk).unwrap();
            assert!(n > 0, "intercept closed the connection");
            decoder.feed(&chunk[..n]);
        };
        let proto::InterceptMessage::Reply(reply) = reply else {
            panic!("expected a reply, got {reply:?}");
        };
        assert_eq!(reply.headers(), &syn_ack()[..]);
        assert!(reply.timestamp_us().is_some());
        stop.store(true, Ordering::Relaxed);
    }

    #[test]
    fn only_peers_in_an_allowed_block_are_admitted_and_anyone_without_allow() {
        let allow: Vec<Cidr> = vec![
            "198.51.100.20".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ];
        let ip = |text: &str| text.parse().unwrap();
        assert!(admitted(&allow, ip("198.51.100.20")));
        assert!(admitted(&allow, ip("2001:db8::20")));
        assert!(!admitted(&allow, ip("198.51.100.21")));
        assert!(!admitted(&allow, ip("2001:db9::1")));
        assert!(admitted(&[], ip("203.0.113.1")));
    }

    #[test]
    fn a_peer_outside_allow_is_closed_unread_and_counted() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(Counters::default());
        let guard = PortGuard {
            allow: vec!["198.51.100.0/24".parse().unwrap()],
            ..PortGuard::default()
        };
        let mut event_loop =
            EventLoop::new(listener, Vec::new(), Arc::clone(&counters), guard).unwrap();
        let mut stranger = TcpStream::connect(addr).unwrap();
        stranger
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut hello = Vec::new();
        proto::encode_hello(Version::V7, &mut hello);
        stranger.write_all(&hello).unwrap();
        for _ in 0..500 {
            event_loop.accept(Instant::now());
            if counters.get(Counter::ConnectionsRefused) > 0 {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(counters.get(Counter::ConnectionsRefused), 1);
        assert_eq!(event_loop.switchboard.connection_count(), 0);
        let mut answer = [0u8; 8];
        assert!(
            !matches!(stranger.read(&mut answer), Ok(n) if n > 0),
            "the stranger reads nothing but the close"
        );
    }

    #[test]
    fn a_source_holding_more_than_a_turn_is_drained_without_waiting_for_poll() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (feed, socket) = UnixDatagram::pair().unwrap();
        socket.set_nonblocking(true).unwrap();
        // Two turns' worth already read, and one datagram that makes the descriptor readable.
        let buffered: VecDeque<Vec<u8>> = (0..DRAIN_PER_TURN * 2).map(|_| syn_ack()).collect();
        let queued = buffered.len() + 1;
        feed.send(&syn_ack()).unwrap();
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (loop_counters, loop_stop) = (Arc::clone(&counters), Arc::clone(&stop));
        let running = thread::spawn(move || {
            let source = BufferingReplies { socket, buffered };
            let sources: Vec<Box<dyn ReplySource>> = vec![Box::new(source)];
            EventLoop::new(listener, sources, loop_counters, PortGuard::default())?.run(&loop_stop)
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while counters.get(Counter::Captured) < queued as u64 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        running.join().unwrap().unwrap();
        assert_eq!(counters.get(Counter::Captured), queued as u64);
    }

    #[test]
    fn unreadable_replies_are_counted_malformed() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (feed, source) = UnixDatagram::pair().unwrap();
        source.set_nonblocking(true).unwrap();
        let counters = Arc::new(Counters::default());
        let sources: Vec<Box<dyn ReplySource>> = vec![Box::new(DatagramReplies(source))];
        let mut event_loop = EventLoop::new(
            listener,
            sources,
            Arc::clone(&counters),
            PortGuard::default(),
        )
        .unwrap();
        feed.send(&[0x45, 0, 0]).unwrap();
        event_loop.drain_source(0, 0, Instant::now()).unwrap();
        assert_eq!(counters.get(Counter::Captured), 1);
        assert_eq!(counters.get(Counter::Malformed), 1);
    }
}
