//! One side's view of a session, online or target: the client's bytes and the server's,
//! cut into exchanges. A request starts with client bytes that come after server bytes (or
//! first); its reply is the server bytes until the next request starts, the server closes,
//! the connection is reset, or the comparison decides nothing more will come.
//!
//! Exchanges are named by the client sequence number their request starts at. copy keeps
//! the client's sequence numbers on the target, so the same request starts at the same
//! number on both sides, which is what the matcher joins them by. Retransmitted bytes are
//! counted once; server bytes before the first request (a greeting of a server-first
//! protocol) or after a reply was closed belong to no exchange and are only counted.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::bytes::Bytes;
use crate::packet::{SeqNum, TcpFlags};

/// A segment as a side sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece<'a> {
    /// When it was sent, in µs since the Unix epoch on copy's clock.
    pub at_us: u64,
    pub seq: SeqNum,
    pub flags: TcpFlags,
    /// Its payload length.
    pub len: u32,
    /// The first payload bytes at hand (at most `len`; none when only counted).
    pub known: &'a [u8],
}

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    /// The client's next request started.
    NextRequest,
    /// The server closed its side (FIN).
    ServerClosed,
    /// The connection was reset.
    Reset,
    /// Nothing more came: the reply was whole, or the quiet limit passed.
    Quiet,
    /// The session ended without a close seen (copy stopped, or gave it up).
    Gone,
}

/// One request and its reply on one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The client sequence number of the request's first byte.
    pub start: SeqNum,
    pub request: Bytes,
    pub reply: Bytes,
    /// `None` while it is open.
    pub end: Option<End>,
}

/// Bytes that belong to no exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stray {
    /// Server bytes before the first request.
    pub greeting: u64,
    /// Server bytes after an exchange was closed and before the next request.
    pub late: u64,
}

/// One side of one session.
#[derive(Debug, Clone, Default)]
pub struct SideTrack {
    /// The client sequence number after the last new client byte.
    client_next: Option<SeqNum>,
    /// The server's, likewise.
    server_next: Option<SeqNum>,
    current: Option<Exchange>,
    done: VecDeque<Exchange>,
    /// An exchange has started on this side.
    started: bool,
    client_fin: bool,
    server_fin: bool,
    reset: bool,
    /// When the side last saw anything, in µs.
    pub last_us: u64,
    pub stray: Stray,
}

/// The part of a segment not seen before: how many leading bytes to skip, and the sequence
/// number where the new bytes start. `next` moves past them.
fn new_part(next: &mut Option<SeqNum>, seq: SeqNum, len: u32) -> Option<(usize, SeqNum)> {
    let end = seq + len;
    match *next {
        Some(expected) if end <= expected => None,
        Some(expected) if seq < expected => {
            *next = Some(end);
            Some((expected.distance_from(seq) as usize, expected))
        }
        _ => {
            *next = Some(end);
            Some((0, seq))
        }
    }
}

impl SideTrack {
    /// A segment from the client; at most `keep` request bytes are kept.
    pub fn client(&mut self, piece: Piece<'_>, keep: usize) {
        self.last_us = self.last_us.max(piece.at_us);
        if piece.flags.rst() {
            self.close(End::Reset);
            return;
        }
        if piece.flags.fin() {
            self.client_fin = true;
        }
        if piece.flags.syn() {
            self.client_next.get_or_insert(piece.seq + 1u32);
        }
        if piece.len == 0 || self.reset {
            return;
        }
        let Some((skip, start)) = new_part(&mut self.client_next, piece.seq, piece.len) else {
            return;
        };
        let known = piece.known.get(skip..).unwrap_or_default();
        let len = u64::from(piece.len) - skip as u64;
        let starts_request = self
            .current
            .as_ref()
            .is_none_or(|exchange| !exchange.reply.is_empty() || exchange.end.is_some());
        if starts_request {
            self.finish(End::NextRequest);
            self.started = true;
            self.current = Some(Exchange {
                start,
                request: Bytes::default(),
                reply: Bytes::default(),
                end: None,
            });
        }
        if let Some(exchange) = &mut self.current {
            exchange.request.add(piece.at_us, known, len, keep);
        }
    }

    /// A segment from the server; at most `keep` reply bytes are kept.
    pub fn server(&mut self, piece: Piece<'_>, keep: usize) {
        self.last_us = self.last_us.max(piece.at_us);
        if piece.flags.rst() {
            self.close(End::Reset);
            return;
        }
        if piece.flags.syn() {
            // A new connection (also one the target side rebuilt after the target closed or
            // reset it): the server's numbers start again.
            self.server_next = Some(piece.seq + 1u32);
            self.client_fin = false;
            self.server_fin = false;
            self.reset = false;
        }
        if piece.len > 0
            && !self.reset
            && let Some((skip, _)) = new_part(&mut self.server_next, piece.seq, piece.len)
        {
            let known = piece.known.get(skip..).unwrap_or_default();
            let len = u64::from(piece.len) - skip as u64;
            match &mut self.current {
                Some(exchange) if exchange.end.is_none() => {
                    exchange.reply.add(piece.at_us, known, len, keep);
                }
                _ if !self.started => self.stray.greeting += len,
                _ => self.stray.late += len,
            }
        }
        if piece.flags.fin() {
            self.server_fin = true;
            self.finish(End::ServerClosed);
        }
    }

    /// The connection is over: the open exchange ends with `end`, and so does the side.
    pub fn close(&mut self, end: End) {
        self.finish(end);
        self.reset |= end == End::Reset;
        self.client_fin = true;
        self.server_fin = true;
    }

    /// Ends the open exchange, if any, with `end`.
    pub fn finish(&mut self, end: End) {
        if let Some(mut exchange) = self.current.take() {
            if exchange.end.is_none() {
                exchange.end = Some(end);
                self.done.push_back(exchange);
            }
        }
    }

    /// Both directions closed, or reset: nothing more will come.
    pub fn closed(&self) -> bool {
        self.reset || (self.client_fin && self.server_fin)
    }

    /// The open exchange.
    pub fn current(&self) -> Option<&Exchange> {
        self.current.as_ref()
    }

    /// The oldest ended exchange not taken yet.
    pub fn peek_done(&self) -> Option<&Exchange> {
        self.done.front()
    }

    pub fn take_done(&mut self) -> Option<Exchange> {
        self.done.pop_front()
    }

    /// Ended exchanges not taken yet.
    pub fn done_len(&self) -> usize {
        self.done.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: usize = 64;

    fn piece(at_us: u64, seq: u32, flags: TcpFlags, known: &[u8]) -> Piece<'_> {
        Piece {
            at_us,
            seq: SeqNum(seq),
            flags,
            len: known.len() as u32,
            known,
        }
    }

    fn data(at_us: u64, seq: u32, known: &[u8]) -> Piece<'_> {
        piece(at_us, seq, TcpFlags::ACK, known)
    }

    #[test]
    fn turns_make_exchanges_named_by_their_first_client_byte() {
        let mut side = SideTrack::default();
        side.client(piece(0, 99, TcpFlags::SYN, b""), KEEP);
        side.server(piece(1, 499, TcpFlags::SYN | TcpFlags::ACK, b""), KEEP);
        side.client(data(10, 100, b"GET /a"), KEEP);
        side.client(data(11, 106, b" HTTP/1.1\r\n\r\n"), KEEP);
        side.server(data(20, 500, b"HTTP/1.1 200 OK\r\n"), KEEP);
        side.server(data(25, 517, b"\r\n"), KEEP);
        side.client(data(30, 119, b"GET /b"), KEEP);
        let first = side.take_done().unwrap();
        assert_eq!(first.start, SeqNum(100));
        assert_eq!(first.request.kept(), b"GET /a HTTP/1.1\r\n\r\n");
        assert_eq!(
            (first.reply.total, first.reply.first_us, first.reply.last_us),
            (19, Some(20), Some(25))
        );
        assert_eq!(first.end, Some(End::NextRequest));
        assert_eq!(side.current().unwrap().start, SeqNum(119));
        side.server(piece(40, 519, TcpFlags::ACK | TcpFlags::FIN, b""), KEEP);
        let second = side.take_done().unwrap();
        assert_eq!(
            (second.reply.total, second.end),
            (0, Some(End::ServerClosed))
        );
        assert!(!side.closed(), "the client has not closed");
        side.client(piece(41, 125, TcpFlags::ACK | TcpFlags::FIN, b""), KEEP);
        assert!(side.closed());
    }

    #[test]
    fn retransmissions_and_overlaps_count_once() {
        let mut side = SideTrack::default();
        side.client(data(1, 100, b"abcd"), KEEP);
        side.client(data(2, 100, b"abcd"), KEEP);
        side.client(data(3, 102, b"cdef"), KEEP);
        side.server(data(4, 900, b"xyz"), KEEP);
        side.server(data(5, 900, b"xyz"), KEEP);
        side.close(End::Gone);
        let exchange = side.take_done().unwrap();
        assert_eq!(exchange.request.kept(), b"abcdef");
        assert_eq!((exchange.request.total, exchange.reply.total), (6, 3));
    }

    #[test]
    fn a_greeting_and_late_bytes_belong_to_no_exchange() {
        let mut side = SideTrack::default();
        side.server(data(1, 10, b"220 ready\r\n"), KEEP);
        side.client(data(2, 100, b"HELO\r\n"), KEEP);
        side.server(data(3, 21, b"250 ok\r\n"), KEEP);
        side.finish(End::Quiet);
        side.server(data(4, 29, b"more"), KEEP);
        assert_eq!(
            side.stray,
            Stray {
                greeting: 11,
                late: 4
            }
        );
        assert_eq!(side.take_done().unwrap().reply.total, 8);
    }

    #[test]
    fn a_reset_mid_reply_ends_the_exchange_and_the_side() {
        let mut side = SideTrack::default();
        side.client(data(1, 100, b"GET / HTTP/1.1\r\n\r\n"), KEEP);
        side.server(
            data(2, 900, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nab"),
            KEEP,
        );
        side.server(piece(3, 941, TcpFlags::RST, b""), KEEP);
        assert!(side.closed());
        let exchange = side.take_done().unwrap();
        assert_eq!(exchange.end, Some(End::Reset));
        side.client(data(4, 118, b"GET /again"), KEEP);
        assert!(side.current().is_none(), "nothing after a reset");
    }

    #[test]
    fn a_rebuilt_connection_starts_the_servers_numbers_again() {
        let mut side = SideTrack::default();
        side.client(data(1, 100, b"a"), KEEP);
        side.server(data(2, 5000, b"b"), KEEP);
        side.server(piece(3, 5001, TcpFlags::FIN | TcpFlags::ACK, b""), KEEP);
        side.server(piece(4, 10, TcpFlags::SYN | TcpFlags::ACK, b""), KEEP);
        side.client(data(5, 101, b"c"), KEEP);
        side.server(data(6, 11, b"d"), KEEP);
        side.finish(End::Quiet);
        let starts: Vec<(SeqNum, u64)> = std::iter::from_fn(|| side.take_done())
            .map(|e| (e.start, e.reply.total))
            .collect();
        assert_eq!(starts, [(SeqNum(100), 1), (SeqNum(101), 1)]);
    }
}
