//! A session's two sides joined request by request, and the record of each request.
//!
//! Requests are joined by the client sequence number they start at (see [`side`]): the
//! same request starts at the same number on both sides, so two exchanges are paired only
//! when they are the same request. An exchange one side has and the other passed over (the
//! other's next exchange starts later, or the other side is over) is reported unmatched. A
//! reply that holds more than one reply (pipelined requests), or that was still incomplete
//! when the next request came, is reported as `pipelined`, not matched.
//!
//! [`side`]: super::side

use std::net::SocketAddr;

use super::classify::{Framing, Reply};
use super::protocol::Protocol;
use super::record::{self, Record, SideRecord};
use super::side::{End, Exchange, SideTrack};

/// The two sides of one session.
#[derive(Debug, Clone, Default)]
pub struct SessionMatch {
    pub online: SideTrack,
    pub target: SideTrack,
    /// The side will see nothing more (closed, or given up).
    pub online_over: bool,
    pub target_over: bool,
}

/// A request as one or both sides saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pair {
    Both(Exchange, Exchange),
    OnlineOnly(Exchange),
    TargetOnly(Exchange),
}

impl SessionMatch {
    /// The next request whose pairing is decided, if any.
    pub fn next_pair(&mut self) -> Option<Pair> {
        let online = self.online.peek_done().map(|exchange| exchange.start);
        let target = self.target.peek_done().map(|exchange| exchange.start);
        let passed = |side: &SideTrack, over: bool, start| {
            over || side.current().is_some_and(|current| current.start > start)
        };
        let take_online = |this: &mut Self| this.online.take_done().map(Pair::OnlineOnly);
        let take_target = |this: &mut Self| this.target.take_done().map(Pair::TargetOnly);
        match (online, target) {
            (Some(online), Some(target)) if online == target => {
                let online = self.online.take_done()?;
                let target = self.target.take_done()?;
                Some(Pair::Both(online, target))
            }
            (Some(online), Some(target)) if online < target => take_online(self),
            (Some(_), Some(_)) => take_target(self),
            (Some(online), None) if passed(&self.target, self.target_over, online) => {
                take_online(self)
            }
            (None, Some(target)) if passed(&self.online, self.online_over, target) => {
                take_target(self)
            }
            _ => None,
        }
    }

    /// Both sides are over and every request was taken.
    pub fn is_finished(&self) -> bool {
        self.online_over
            && self.target_over
            && self.online.peek_done().is_none()
            && self.target.peek_done().is_none()
            && self.online.current().is_none()
            && self.target.current().is_none()
    }
}

/// What a record needs besides the pair.
#[derive(Debug, Clone, Copy)]
pub struct RecordContext {
    pub protocol: Protocol,
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// Longest head shown, in bytes.
    pub head_max: usize,
}

/// One side's reply, classified.
struct Answer {
    side: SideRecord,
    framing: Option<Framing>,
}

/// The record of `pair`, and whether the request boundaries of the session are lost from
/// here on: a request came before the previous reply was whole, so the bytes after it
/// cannot be told apart. With `boundaries_lost` (from an earlier record) the request is
/// reported as pipelined too.
pub fn record(pair: &Pair, context: &RecordContext, boundaries_lost: bool) -> (Record, bool) {
    let (online, target) = match pair {
        Pair::Both(online, target) => (Some(online), Some(target)),
        Pair::OnlineOnly(online) => (Some(online), None),
        Pair::TargetOnly(target) => (None, Some(target)),
    };
    let request = online
        .map(|exchange| exchange.request.kept())
        .unwrap_or_default();
    let answer = |exchange: &Exchange| answer(exchange, request, context);
    let online_answer = online.map(answer);
    let target_answer = target.map(answer);
    let answers = || [&online_answer, &target_answer].into_iter().flatten();
    let overlapped = answers().any(|answer| {
        answer.framing == Some(Framing::Short) && answer.side.end == End::NextRequest
    });
    let pipelined = boundaries_lost
        || overlapped
        || answers().any(|answer| answer.framing == Some(Framing::Excess));
    let why = match pair {
        Pair::OnlineOnly(_) => Some(record::ONLINE_ONLY),
        Pair::TargetOnly(_) => Some(record::TARGET_ONLY),
        Pair::Both(..) if pipelined => Some(record::PIPELINED),
        Pair::Both(..) => None,
    };
    let differs = match (&online_answer, &target_answer, why) {
        (Some(online), Some(target), None) => differs(context.protocol, &online.side, &target.side),
        _ => None,
    };
    let first = online.or(target);
    let at_us = first
        .and_then(|exchange| exchange.request.first_us)
        .unwrap_or_default();
    let record = Record {
        time: record::format_micros(at_us),
        client: context.client.to_string(),
        server: context.server.to_string(),
        protocol: context.protocol,
        head: if request.is_empty() {
            String::new()
        } else {
            context.protocol.head(request, context.head_max)
        },
        request_bytes: first.map_or(0, |exchange| exchange.request.total),
        online: online_answer.map(|answer| answer.side),
        target: target_answer.map(|answer| answer.side),
        matched: why.is_none(),
        why: why.map(str::to_owned),
        differs,
    };
    (record, boundaries_lost || overlapped)
}

/// The reply of `exchange` to `request`, classified.
fn answer(exchange: &Exchange, request: &[u8], context: &RecordContext) -> Answer {
    let reply = &exchange.reply;
    let end = exchange.end.unwrap_or(End::Gone);
    let since_request = |at: Option<u64>| {
        at.zip(exchange.request.first_us)
            .map(|(at, start)| at.saturating_sub(start))
    };
    let mut side = SideRecord {
        head: None,
        class: None,
        bytes: reply.total,
        first_byte_us: since_request(reply.first_us),
        last_byte_us: since_request(reply.last_us),
        end,
    };
    if reply.is_empty() {
        side.class = Some(record::NO_REPLY.to_owned());
        return Answer {
            side,
            framing: None,
        };
    }
    if reply.kept().is_empty() {
        // Counted, never seen: a version-6 intercept's reply headers.
        return Answer {
            side,
            framing: None,
        };
    }
    let classified = context.protocol.classify(
        request,
        Reply {
            known: reply.kept(),
            total: reply.total,
        },
    );
    side.head = Some(context.protocol.head(reply.kept(), context.head_max));
    side.class = Some(
        if classified.framing == Framing::Short && end != End::NextRequest {
            format!("{}{}", classified.class, record::TRUNCATED)
        } else {
            classified.class
        },
    );
    Answer {
        side,
        framing: Some(classified.framing),
    }
}

/// Whether two answers to the same request differ: by class, and for the generic protocol
/// (where every reply has the same class) by size and head. `None` when one has no class.
fn differs(protocol: Protocol, online: &SideRecord, target: &SideRecord) -> Option<bool> {
    let (online_class, target_class) = (online.class.as_ref()?, target.class.as_ref()?);
    Some(match protocol {
        Protocol::Generic => {
            online_class != target_class
                || online.bytes != target.bytes
                || online.head != target.head
        }
        _ => online_class != target_class,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::side::Piece;
    use crate::packet::{SeqNum, TcpFlags};

    const KEEP: usize = 4096;
    const GET_A: &[u8] = b"GET /a HTTP/1.1\r\n\r\n";
    const GET_B: &[u8] = b"GET /b HTTP/1.1\r\n\r\n";
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    const MISSING: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";

    fn data(at_us: u64, seq: u32, known: &[u8]) -> Piece<'_> {
        Piece {
            at_us,
            seq: SeqNum(seq),
            flags: TcpFlags::ACK,
            len: known.len() as u32,
            known,
        }
    }

    fn context() -> RecordContext {
        RecordContext {
            protocol: Protocol::Http,
            client: "198.51.100.10:40000".parse().unwrap(),
            server: "198.51.100.20:80".parse().unwrap(),
            head_max: 64,
        }
    }

    /// One side answering `requests` in turn, each with its reply, from `at` on, `delay`
    /// µs after each request; the server's bytes start at `server_seq`.
    fn converse(side: &mut SideTrack, at: u64, delay: u64, exchanges: &[(&[u8], &[u8])]) {
        let (mut client_seq, mut server_seq, mut now) = (1000u32, 5000u32, at);
        for (request, reply) in exchanges {
            side.client(data(now, client_seq, request), KEEP);
            client_seq += request.len() as u32;
            now += delay;
            if !reply.is_empty() {
                side.server(data(now, server_seq, reply), KEEP);
                server_seq += reply.len() as u32;
            }
            now += 1000;
        }
    }

    fn records(session: &mut SessionMatch) -> Vec<Record> {
        let mut lost = false;
        std::iter::from_fn(|| session.next_pair())
            .map(|pair| {
                let (record, boundaries_lost) = record(&pair, &context(), lost);
                lost = boundaries_lost;
                record
            })
            .collect()
    }

    fn outcomes(records: &[Record]) -> Vec<(String, bool, Option<&str>)> {
        records
            .iter()
            .map(|r| (r.outcome(), r.matched, r.why.as_deref()))
            .collect()
    }

    #[test]
    fn the_same_requests_pair_up_with_each_sides_times() {
        let mut session = SessionMatch::default();
        converse(&mut session.online, 0, 300, &[(GET_A, OK), (GET_B, OK)]);
        converse(
            &mut session.target,
            50,
            20_300,
            &[(GET_A, OK), (GET_B, MISSING)],
        );
        session.online.close(End::Gone);
        session.target.close(End::Gone);
        (session.online_over, session.target_over) = (true, true);
        let records = records(&mut session);
        assert_eq!(
            outcomes(&records),
            [
                ("200->200".into(), true, None),
                ("200->404".into(), true, None)
            ]
        );
        assert_eq!(records[1].differs, Some(true));
        assert_eq!(records[0].head, "GET /a HTTP/1.1");
        let (online, target) = (
            records[0].online.as_ref().unwrap(),
            records[0].target.as_ref().unwrap(),
        );
        assert_eq!(
            (online.first_byte_us, target.first_byte_us),
            (Some(300), Some(20_300))
        );
        assert_eq!(online.head.as_deref(), Some("HTTP/1.1 200 OK"));
        assert_eq!(online.end, End::NextRequest);
        assert!(session.is_finished());
    }

    #[test]
    fn pipelined_requests_are_reported_not_paired() {
        let mut session = SessionMatch::default();
        let both = [GET_A, GET_B].concat();
        let replies = [OK, OK].concat();
        for side in [&mut session.online, &mut session.target] {
            converse(side, 0, 100, &[(&both, &replies), (GET_A, OK)]);
            side.close(End::Gone);
        }
        (session.online_over, session.target_over) = (true, true);
        let records = records(&mut session);
        assert_eq!(
            outcomes(&records),
            [
                ("200->200".into(), false, Some("pipelined")),
                ("200->200".into(), true, None)
            ]
        );
        assert_eq!(records[0].differs, None);
    }

    #[test]
    fn a_request_sent_before_the_previous_reply_was_whole_is_pipelined() {
        let mut session = SessionMatch::default();
        let side = &mut session.online;
        side.client(data(0, 1000, GET_A), KEEP);
        side.server(data(10, 5000, &OK[..20]), KEEP);
        side.client(data(20, 1019, GET_B), KEEP);
        side.server(data(30, 5020, &OK[20..]), KEEP);
        side.close(End::Gone);
        converse(&mut session.target, 0, 100, &[(GET_A, OK), (GET_B, OK)]);
        session.target.close(End::Gone);
        (session.online_over, session.target_over) = (true, true);
        let records = records(&mut session);
        assert_eq!(records[0].why.as_deref(), Some("pipelined"));
        assert!(!records[0].matched);
        assert_eq!(
            records[1].why.as_deref(),
            Some("pipelined"),
            "and what follows it"
        );
    }

    #[test]
    fn a_reply_that_never_comes_is_no_reply() {
        let mut session = SessionMatch::default();
        converse(&mut session.online, 0, 100, &[(GET_A, OK)]);
        converse(&mut session.target, 0, 100, &[(GET_A, b"")]);
        session.online.finish(End::Quiet);
        session.target.finish(End::Quiet);
        let records = records(&mut session);
        assert_eq!(outcomes(&records), [("200->no reply".into(), true, None)]);
        let target = records[0].target.as_ref().unwrap();
        assert_eq!(
            (target.bytes, target.first_byte_us, target.head.as_ref()),
            (0, None, None)
        );
    }

    #[test]
    fn a_reset_mid_reply_is_truncated() {
        let mut session = SessionMatch::default();
        converse(&mut session.online, 0, 100, &[(GET_A, OK)]);
        session.online.finish(End::Quiet);
        converse(&mut session.target, 0, 100, &[(GET_A, &OK[..30])]);
        session.target.server(
            Piece {
                at_us: 500,
                seq: SeqNum(5030),
                flags: TcpFlags::RST,
                len: 0,
                known: b"",
            },
            KEEP,
        );
        let records = records(&mut session);
        assert_eq!(
            outcomes(&records),
            [("200->200 truncated".into(), true, None)]
        );
        assert_eq!(records[0].target.as_ref().unwrap().end, End::Reset);
    }

    #[test]
    fn a_request_only_one_side_saw_is_unmatched_once_the_other_passed_it() {
        let mut session = SessionMatch::default();
        converse(&mut session.online, 0, 100, &[(GET_A, OK), (GET_B, OK)]);
        // The target side saw only the second request (e.g. the first was not replayed),
        // and is still in it.
        session.target.client(data(0, 1019, GET_B), KEEP);
        assert_eq!(
            outcomes(&records(&mut session)),
            [("200->-".into(), false, Some("online only"))]
        );
        // The second waits for the target's reply.
        assert!(session.next_pair().is_none());
        session.target.server(data(10, 5000, OK), KEEP);
        session.target.finish(End::Quiet);
        session.online.finish(End::Quiet);
        assert_eq!(
            outcomes(&records(&mut session)),
            [("200->200".into(), true, None)]
        );
    }

    #[test]
    fn a_target_without_reply_heads_has_no_class() {
        let mut session = SessionMatch::default();
        converse(&mut session.online, 0, 100, &[(GET_A, OK)]);
        session.online.finish(End::Quiet);
        session.target.client(
            Piece {
                len: GET_A.len() as u32,
                ..data(0, 1000, b"")
            },
            KEEP,
        );
        session.target.server(
            Piece {
                len: OK.len() as u32,
                ..data(90, 5000, b"")
            },
            KEEP,
        );
        session.target.finish(End::Quiet);
        let records = records(&mut session);
        assert_eq!(outcomes(&records), [("200->-".into(), true, None)]);
        let target = records[0].target.as_ref().unwrap();
        assert_eq!(
            (target.class.as_ref(), target.bytes, target.first_byte_us),
            (None, OK.len() as u64, Some(90))
        );
        assert_eq!(
            records[0].differs, None,
            "nothing to compare the class with"
        );
    }

    #[test]
    fn generic_replies_differ_by_size_or_first_bytes() {
        let context = RecordContext {
            protocol: Protocol::Generic,
            ..context()
        };
        let pair = |target_reply: &[u8]| {
            let mut session = SessionMatch::default();
            converse(&mut session.online, 0, 100, &[(b"\x01ping", b"\x02pong")]);
            converse(&mut session.target, 0, 100, &[(b"\x01ping", target_reply)]);
            session.online.finish(End::Quiet);
            session.target.finish(End::Quiet);
            record(&session.next_pair().unwrap(), &context, false).0
        };
        assert_eq!(pair(b"\x02pong").differs, Some(false));
        assert_eq!(pair(b"\x02pang").differs, Some(true));
        assert_eq!(pair(b"\x02pong!").differs, Some(true));
        assert_eq!(pair(b"\x02pong").outcome(), "reply->reply");
    }
}
