//! One copy connection as the event loop owns it: a non-blocking socket, the decoder of what
//! copy sends, the hello's handshake (which decides when the connection is open), the batch
//! of replies collected this loop turn, and a bounded outbound buffer.
//!
//! Knows nothing of routing or of other connections. Never blocks: reads and writes stop at
//! `WouldBlock`, and a reply that would overfill the outbound buffer is refused (the caller
//! counts it and decides when the peer is given up).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use crate::packet::HeaderSplit;
use crate::proto::{
    self, Admission, CopyMessage, CopyStreamDecoder, HandshakeError, InterceptHandshake,
    ProtoError, ReplyBatch, V6Layout, Version,
};

/// Reply payload bytes forwarded to copies that speak version 7.
pub const PAYLOAD_PREFIX: usize = 128;
/// Reads per connection per loop turn, at most: one busy copy cannot starve the others.
const READS_PER_TURN: usize = 4;
/// Capacity an emptied outbound buffer keeps; more is given back.
const KEPT_CAPACITY: usize = 4 * 1024;

/// How much a connection may hold back before it counts as slow, and how long it may stay so.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Encoded bytes waiting for the socket, at most; further replies are dropped.
    pub outbound_bytes: usize,
    /// Replies dropped in a row, buffer full, before the connection is given up as stuck.
    pub slow_peer_replies: usize,
    /// Connections waiting for their hello at once, at most; the oldest makes room for a
    /// new one. A real copy sends its hello as it connects, so only strangers wait long.
    pub unopened: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            outbound_bytes: 512 * 1024,
            slow_peer_replies: 65_536,
            unopened: 1024,
        }
    }
}

/// What became of a reply handed to [`CopyConnection::queue_reply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// In this turn's batch.
    Batched,
    /// Dropped: the outbound buffer is full.
    Dropped,
    /// Dropped, and the peer has taken nothing for too long: close it.
    Stuck,
    /// Not sendable in the version this copy speaks (IPv6 in version 6), or no hello yet.
    Unsendable,
}

/// What a read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The socket is open; messages may be waiting in the decoder.
    Open,
    /// The peer closed its end.
    Closed,
}

/// A copy connected to this intercept.
pub struct CopyConnection {
    stream: TcpStream,
    peer: SocketAddr,
    decoder: CopyStreamDecoder,
    handshake: InterceptHandshake,
    /// This turn's replies, in the negotiated version; `None` until the connection opens.
    replies: Option<ReplyBatch>,
    /// Whether it ever registered a flow (a closing connection that did not has no route
    /// to forget).
    registered: bool,
    outbound: Outbound,
    dropped_in_a_row: usize,
    /// The copy process it belongs to, once it said (version 7).
    instance: Option<u64>,
}

impl CopyConnection {
    /// Takes over an accepted socket, making it non-blocking; `handshake` decides when it
    /// opens.
    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        handshake: InterceptHandshake,
    ) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        Ok(CopyConnection {
            stream,
            peer,
            decoder: CopyStreamDecoder::new(Version::LATEST),
            handshake,
            replies: None,
            registered: false,
            outbound: Outbound::default(),
            dropped_in_a_row: 0,
            instance: None,
        })
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Whether the hello is done (and the secret proven, if there is one).
    pub fn is_open(&self) -> bool {
        self.handshake.is_open()
    }

    /// Passes a message through the handshake; what it answers goes into the outbound buffer.
    pub fn admit(&mut self, message: CopyMessage) -> Admission {
        self.handshake.on_message(message, &mut self.outbound.bytes)
    }

    /// The error that closes a connection still not open at `now`, past its time.
    pub fn on_timeout(&mut self, now: Instant) -> Option<HandshakeError> {
        self.handshake.on_timeout(now)
    }

    /// Whether it ever registered a flow.
    pub fn has_registered(&self) -> bool {
        self.registered
    }

    pub fn set_registered(&mut self) {
        self.registered = true;
    }

    /// Before the connection is dropped: writes what the socket takes (a refusal frame),
    /// ends the sending side and discards what the peer sent unread, so the close is a FIN
    /// the peer reads after the refusal rather than a reset that may discard it.
    pub fn close_gracefully(&mut self, scratch: &mut [u8]) {
        let _ = self.outbound.write_to(&mut self.stream);
        let _ = self.stream.shutdown(Shutdown::Write);
        for _ in 0..READS_PER_TURN {
            if !matches!(self.stream.read(scratch), Ok(n) if n > 0) {
                break;
            }
        }
    }

    /// Whether the loop should wait for the socket to take more bytes.
    pub fn wants_write(&self) -> bool {
        self.outbound.pending() > 0
    }

    /// Reads what the socket holds (a few reads at most) into the decoder.
    pub fn read_available(&mut self, scratch: &mut [u8]) -> io::Result<ReadOutcome> {
        for _ in 0..READS_PER_TURN {
            match self.stream.read(scratch) {
                Ok(0) => return Ok(ReadOutcome::Closed),
                Ok(n) => self.decoder.feed(&scratch[..n]),
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(ReadOutcome::Open)
    }

    /// The next whole message copy sent, if any.
    pub fn next_message(&mut self) -> Result<Option<CopyMessage>, ProtoError> {
        self.decoder.next_message()
    }

    /// The handshake opened the connection in `version`: replies flow from now on (the
    /// handshake has queued the switch marker of version 7).
    pub fn start(&mut self, version: Version) {
        self.replies = Some(match version {
            Version::V6 => ReplyBatch::v6(V6Layout::Headers),
            Version::V7 => ReplyBatch::v7(PAYLOAD_PREFIX),
        });
    }

    /// The copy process this connection belongs to, if it said.
    pub fn instance(&self) -> Option<u64> {
        self.instance
    }

    pub fn set_instance(&mut self, id: u64) {
        self.instance = Some(id);
    }

    /// Tells the copy that another copy process holds `flow` (it sent its instance, so it
    /// speaks version 7).
    pub fn queue_flow_taken(&mut self, flow: &crate::packet::Flow) {
        if let Err(err) = proto::encode_flow_taken(flow, &mut self.outbound.bytes) {
            log::debug!(
                "cannot tell copy {} that {flow:?} is taken: {err}",
                self.peer
            );
        }
    }

    /// Adds a reply to this turn's batch unless the outbound buffer is full.
    pub fn queue_reply(
        &mut self,
        reply: &HeaderSplit<'_>,
        timestamp_us: u64,
        limits: &ConnectionLimits,
    ) -> Queued {
        let Some(batch) = self.replies.as_mut() else {
            return Queued::Unsendable;
        };
        if self.outbound.pending() >= limits.outbound_bytes {
            self.dropped_in_a_row += 1;
            return if self.dropped_in_a_row >= limits.slow_peer_replies {
                Queued::Stuck
            } else {
                Queued::Dropped
            };
        }
        if batch.is_full() {
            batch.flush_into(&mut self.outbound.bytes);
        }
        match batch.push_split(reply, timestamp_us) {
            Ok(()) => {
                self.dropped_in_a_row = 0;
                Queued::Batched
            }
            Err(err) => {
                log::debug!("cannot forward a reply to copy {}: {err}", self.peer);
                Queued::Unsendable
            }
        }
    }

    /// Ends the turn: the batch becomes frames in the outbound buffer, and as much of that as
    /// the socket takes is written.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(batch) = self.replies.as_mut() {
            batch.flush_into(&mut self.outbound.bytes);
        }
        self.outbound.write_to(&mut self.stream)
    }
}

impl AsRawFd for CopyConnection {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}

/// Encoded bytes not yet taken by the socket.
#[derive(Debug, Default)]
struct Outbound {
    bytes: Vec<u8>,
    /// How many leading bytes were written already.
    written: usize,
}

impl Outbound {
    fn pending(&self) -> usize {
        self.bytes.len() - self.written
    }

    /// Writes until the socket is full or nothing is left.
    fn write_to(&mut self, socket: &mut impl Write) -> io::Result<()> {
        while self.written < self.bytes.len() {
            match socket.write(&self.bytes[self.written..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        if self.written == self.bytes.len() {
            self.bytes.clear();
            self.bytes.shrink_to(KEPT_CAPACITY);
            self.written = 0;
        } else if self.written >= self.bytes.len() / 2 {
            self.bytes.drain(..self.written);
            self.written = 0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket that takes `room` bytes, then would block.
    struct Narrow {
        taken: Vec<u8>,
        room: usize,
    }

    impl Write for Narrow {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let n = bytes.len().min(self.room - self.taken.len());
            if n == 0 {
                return Err(ErrorKind::WouldBlock.into());
            }
            self.taken.extend_from_slice(&bytes[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn outbound_keeps_what_the_socket_did_not_take_in_order() {
        let mut outbound = Outbound::default();
        outbound.bytes.extend(0..10u8);
        let mut socket = Narrow {
            taken: Vec::new(),
            room: 4,
        };
        outbound.write_to(&mut socket).unwrap();
        assert_eq!(outbound.pending(), 6);
        outbound.bytes.extend(10..12u8);
        socket.room = 12;
        outbound.write_to(&mut socket).unwrap();
        assert_eq!(outbound.pending(), 0);
        assert_eq!(socket.taken, (0..12u8).collect::<Vec<_>>());
    }
}
