//! Every session a copy compares: online segments from copy's capture of the online
//! server's conversation, target events from the shards, records out.
//!
//! Sessions are keyed by the captured flow (the real client → the target, as copy's
//! session table names it); the target events name the replayed flow, which the first
//! replica's `Opened` event maps back. Exchanges end when the next request starts or the
//! connection closes; [`Comparator::sweep`] ends those that went quiet (a reply whose
//! framing says it is whole, after `quiet_us`; any, after `give_up_us`) and forgets
//! sessions nothing happened in for `idle_us`. A session copy never replayed (sampled
//! out, shed, over a limit) writes no records: it is counted.
//!
//! Pure: times in µs since the Unix epoch are arguments.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;

use super::classify::{Framing, Reply};
use super::clock::InterceptClock;
use super::matcher::{self, RecordContext, SessionMatch};
use super::protocol::Protocol;
use super::record::Record;
use super::side::{End, Piece, SideTrack};
use super::tap::TargetEvent;
use crate::packet::Flow;

/// How much a comparison keeps and how long it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComparatorLimits {
    /// Sessions compared at once; new ones beyond are counted and left out.
    pub max_sessions: usize,
    /// First bytes of each request and reply kept for heads and framing.
    pub keep: usize,
    /// Longest head a record shows (`--compare-head`).
    pub head_max: usize,
    /// A reply whose framing says it is whole ends after this long without more bytes.
    pub quiet_us: u64,
    /// Any exchange ends after this long without a byte.
    pub give_up_us: u64,
    /// A session ends after this long without a segment on either side.
    pub idle_us: u64,
    /// A session the online side closed waits this long for copy to replay it.
    pub replay_grace_us: u64,
}

impl Default for ComparatorLimits {
    fn default() -> ComparatorLimits {
        ComparatorLimits {
            max_sessions: 100_000,
            keep: 4096,
            head_max: 64,
            quiet_us: 200_000,
            give_up_us: 10_000_000,
            idle_us: 60_000_000,
            replay_grace_us: 2_000_000,
        }
    }
}

/// What a comparison counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    pub records: u64,
    pub matched: u64,
    pub differing: u64,
    /// Sessions the online side saw that copy did not replay.
    pub sessions_not_replayed: u64,
    /// Sessions beyond `max_sessions`, left out.
    pub sessions_over_limit: u64,
    /// Server bytes that belong to no request: greetings (server-first protocols) and
    /// bytes after a reply had ended.
    pub stray_bytes: u64,
    /// Target events for flows no `Opened` named (or whose `Ended` came first).
    pub target_events_unknown: u64,
}

/// One session.
#[derive(Debug, Default)]
struct Session {
    sides: SessionMatch,
    protocol: Option<Protocol>,
    /// The online service, once the online side saw it.
    server: Option<SocketAddr>,
    /// copy replays it.
    replayed: bool,
    /// A request of it came before the previous reply was whole: the boundaries of later
    /// ones cannot be trusted, and they are reported as pipelined too.
    pipelined: bool,
}

/// The comparison of one copy's sessions.
#[derive(Debug)]
pub struct Comparator {
    /// `--protocol`; guessed per session without it.
    forced: Option<Protocol>,
    limits: ComparatorLimits,
    sessions: HashMap<Flow, Session>,
    /// The captured flow of each replayed one.
    captured_of: HashMap<Flow, Flow>,
    /// Per target address: what its replies say of intercept's clock.
    clocks: HashMap<SocketAddr, InterceptClock>,
    /// Ports and protocols guessed so far, each said once.
    guessed: BTreeSet<(u16, Protocol)>,
    records: Vec<Record>,
    notes: Vec<String>,
    tally: Tally,
}

impl Comparator {
    pub fn new(forced: Option<Protocol>, limits: ComparatorLimits) -> Comparator {
        Comparator {
            forced,
            limits,
            sessions: HashMap::new(),
            captured_of: HashMap::new(),
            clocks: HashMap::new(),
            guessed: BTreeSet::new(),
            records: Vec::new(),
            notes: Vec::new(),
            tally: Tally::default(),
        }
    }

    /// A segment of the online conversation of `key`: from the client to `server` when
    /// `from_client`, else from `server` to the client.
    pub fn online(&mut self, key: Flow, server: SocketAddr, from_client: bool, piece: Piece<'_>) {
        let (limits, forced) = (self.limits, self.forced);
        let opens = from_client && (piece.flags.syn() || piece.len > 0);
        let Some(session) = self.session(key, opens) else {
            return;
        };
        session.server = Some(server);
        let side = &mut session.sides.online;
        let mut guessed = None;
        if from_client {
            side.client(piece, limits.keep);
            if session.protocol.is_none() && piece.len > 0 {
                let protocol = forced.unwrap_or_else(|| Protocol::guess(piece.known));
                session.protocol = Some(protocol);
                guessed = forced.is_none().then_some(protocol);
            }
        } else {
            side.server(piece, limits.keep);
        }
        session.sides.online_over |= session.sides.online.closed();
        if let Some(protocol) = guessed
            && self.guessed.insert((server.port(), protocol))
        {
            self.notes.push(format!(
                "comparing port {} as {protocol}, guessed from the first request of {} (--protocol chooses)",
                server.port(),
                key.client
            ));
        }
        self.drain(key);
    }

    /// An event of the shards.
    pub fn target(&mut self, event: TargetEvent) {
        let keep = self.limits.keep;
        match event {
            TargetEvent::Opened { captured, replayed } => {
                self.captured_of.insert(replayed, captured);
                if let Some(session) = self.session(captured, true) {
                    session.replayed = true;
                }
            }
            TargetEvent::Sent {
                at_us,
                replayed,
                seq,
                flags,
                len,
            } => {
                let piece = Piece {
                    at_us,
                    seq,
                    flags,
                    len,
                    known: &[],
                };
                self.with_target(replayed, len > 0, |side| side.client(piece, keep));
            }
            TargetEvent::Replied {
                received_us,
                stamped_us,
                replayed,
                seq,
                flags,
                len,
                prefix,
            } => {
                let clock = self.clocks.entry(replayed.target).or_default();
                let at_us = match stamped_us {
                    Some(stamped) => {
                        let sent = self
                            .captured_of
                            .get(&replayed)
                            .and_then(|captured| self.sessions.get(captured))
                            .and_then(|session| session.sides.target.current())
                            .filter(|_| len > 0)
                            .and_then(|exchange| exchange.request.first_us);
                        clock.observe(stamped, received_us, sent);
                        clock.to_copy(stamped)
                    }
                    None => received_us,
                };
                let piece = Piece {
                    at_us,
                    seq,
                    flags,
                    len,
                    known: &prefix,
                };
                self.with_target(replayed, len > 0, |side| side.server(piece, keep));
            }
            TargetEvent::Ended { replayed } => {
                if let Some(captured) = self.captured_of.remove(&replayed) {
                    if let Some(session) = self.sessions.get_mut(&captured) {
                        session.sides.target.finish(End::Gone);
                        session.sides.target_over = true;
                    }
                    self.drain(captured);
                }
            }
        }
    }

    /// Ends what went quiet by `now_us` and forgets what is over.
    pub fn sweep(&mut self, now_us: u64) {
        let limits = self.limits;
        let keys: Vec<Flow> = self.sessions.keys().copied().collect();
        for key in keys {
            let Some(session) = self.sessions.get_mut(&key) else {
                continue;
            };
            let protocol = session
                .protocol
                .or(self.forced)
                .unwrap_or(Protocol::Generic);
            let request = session
                .sides
                .online
                .current()
                .map(|exchange| exchange.request.kept().to_vec())
                .unwrap_or_default();
            for side in [&mut session.sides.online, &mut session.sides.target] {
                end_if_quiet(side, protocol, &request, now_us, &limits);
            }
            let sides = &mut session.sides;
            let last_us = sides.online.last_us.max(sides.target.last_us);
            if now_us.saturating_sub(last_us) >= limits.idle_us {
                sides.online.close(End::Gone);
                sides.target.close(End::Gone);
                sides.online_over = true;
                sides.target_over = true;
            }
            let unreplayed = !session.replayed
                && sides.online_over
                && now_us.saturating_sub(sides.online.last_us) >= limits.replay_grace_us;
            if unreplayed {
                self.tally.sessions_not_replayed += 1;
                self.forget(key);
                continue;
            }
            self.drain(key);
        }
    }

    /// Ends every session (copy stops): their open exchanges are written as they are.
    pub fn finish_all(&mut self) {
        let keys: Vec<Flow> = self.sessions.keys().copied().collect();
        for key in keys {
            let Some(session) = self.sessions.get_mut(&key) else {
                continue;
            };
            if !session.replayed {
                self.tally.sessions_not_replayed += 1;
                self.forget(key);
                continue;
            }
            let sides = &mut session.sides;
            sides.online.close(End::Gone);
            sides.target.close(End::Gone);
            sides.online_over = true;
            sides.target_over = true;
            self.drain(key);
        }
    }

    /// The records written since the last call.
    pub fn take_records(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.records)
    }

    /// What is worth saying once (the protocols guessed), since the last call.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// Sessions being compared.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The session of `key`, opened when `open` allows and there is room.
    fn session(&mut self, key: Flow, open: bool) -> Option<&mut Session> {
        if !self.sessions.contains_key(&key) {
            if !open {
                return None;
            }
            if self.sessions.len() >= self.limits.max_sessions {
                self.tally.sessions_over_limit += 1;
                return None;
            }
            self.sessions.insert(key, Session::default());
        }
        self.sessions.get_mut(&key)
    }

    /// Runs `apply` on the target side of the session replayed as `replayed`. A session
    /// compared to its end takes no more; one forgotten while idle opens again with data.
    fn with_target(&mut self, replayed: Flow, data: bool, apply: impl FnOnce(&mut SideTrack)) {
        let Some(&captured) = self.captured_of.get(&replayed) else {
            self.tally.target_events_unknown += 1;
            return;
        };
        let Some(session) = self.session(captured, data) else {
            return;
        };
        session.replayed = true;
        apply(&mut session.sides.target);
        session.sides.target_over |= session.sides.target.closed();
        self.drain(captured);
    }

    /// Writes the records of `key` that are decided, and forgets it when it is over.
    fn drain(&mut self, key: Flow) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        if !session.replayed {
            return;
        }
        let protocol = session
            .protocol
            .or(self.forced)
            .unwrap_or(Protocol::Generic);
        let context = RecordContext {
            protocol,
            client: key.client,
            server: session.server.unwrap_or(key.target),
            head_max: self.limits.head_max,
        };
        while let Some(pair) = session.sides.next_pair() {
            let (record, boundaries_lost) = matcher::record(&pair, &context, session.pipelined);
            session.pipelined |= boundaries_lost;
            self.tally.records += 1;
            self.tally.matched += u64::from(record.matched);
            self.tally.differing += u64::from(record.differs == Some(true));
            self.records.push(record);
        }
        if session.sides.is_finished() {
            self.forget(key);
        }
    }

    fn forget(&mut self, key: Flow) {
        if let Some(session) = self.sessions.remove(&key) {
            let stray = |side: &SideTrack| side.stray.greeting + side.stray.late;
            self.tally.stray_bytes += stray(&session.sides.online) + stray(&session.sides.target);
        }
    }
}

/// Ends the open exchange of `side` if it went quiet by `now_us`.
fn end_if_quiet(
    side: &mut SideTrack,
    protocol: Protocol,
    request: &[u8],
    now_us: u64,
    limits: &ComparatorLimits,
) {
    let Some(exchange) = side.current() else {
        return;
    };
    let quiet_for = now_us.saturating_sub(side.last_us);
    let whole = || {
        let reply = &exchange.reply;
        !reply.is_empty()
            && protocol
                .classify(
                    request,
                    Reply {
                        known: reply.kept(),
                        total: reply.total,
                    },
                )
                .framing
                == Framing::Complete
    };
    if quiet_for >= limits.give_up_us || (quiet_for >= limits.quiet_us && whole()) {
        side.finish(End::Quiet);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{SeqNum, TcpFlags};

    const GET: &[u8] = b"GET /a HTTP/1.1\r\n\r\n";
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    fn flow(client: &str, target: &str) -> Flow {
        Flow {
            client: client.parse().unwrap(),
            target: target.parse().unwrap(),
        }
    }

    fn piece(at_us: u64, seq: u32, flags: TcpFlags, known: &[u8]) -> Piece<'_> {
        Piece {
            at_us,
            seq: SeqNum(seq),
            flags,
            len: known.len() as u32,
            known,
        }
    }

    #[test]
    fn a_replayed_request_is_written_once_both_sides_answered() {
        let mut comparator = Comparator::new(None, ComparatorLimits::default());
        let captured = flow("198.51.100.10:40000", "198.51.100.30:80");
        let replayed = flow("203.0.113.7:40000", "198.51.100.30:80");
        let online: SocketAddr = "198.51.100.20:80".parse().unwrap();
        comparator.online(captured, online, true, piece(1_000, 99, TcpFlags::SYN, b""));
        comparator.target(TargetEvent::Opened { captured, replayed });
        comparator.online(
            captured,
            online,
            true,
            piece(2_000, 100, TcpFlags::ACK, GET),
        );
        comparator.online(
            captured,
            online,
            false,
            piece(2_300, 500, TcpFlags::ACK, OK),
        );
        comparator.target(TargetEvent::Sent {
            at_us: 2_100,
            replayed,
            seq: SeqNum(100),
            flags: TcpFlags::ACK,
            len: GET.len() as u32,
        });
        comparator.target(TargetEvent::Replied {
            received_us: 22_500,
            stamped_us: Some(22_400),
            replayed,
            seq: SeqNum(9000),
            flags: TcpFlags::ACK,
            len: OK.len() as u32,
            prefix: OK.to_vec(),
        });
        assert!(
            comparator.take_records().is_empty(),
            "the replies may go on"
        );
        let notes = comparator.take_notes();
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("port 80 as http"), "{notes:?}");
        comparator.sweep(22_400 + 200_000);
        // Both replies were whole (the target's framing is in its prefix) and went quiet.
        let records = comparator.take_records();
        assert_eq!(records.len(), 1, "{records:?}");
        let record = &records[0];
        assert_eq!(
            (record.outcome().as_str(), record.matched),
            ("200->200", true)
        );
        assert_eq!(record.time, "1970-01-01T00:00:00.002000Z");
        assert_eq!(
            (record.client.as_str(), record.server.as_str()),
            ("198.51.100.10:40000", "198.51.100.20:80")
        );
        assert_eq!(record.online.as_ref().unwrap().first_byte_us, Some(300));
        assert_eq!(record.target.as_ref().unwrap().first_byte_us, Some(20_300));
        assert_eq!(comparator.tally().records, 1);
    }

    #[test]
    fn sessions_copy_did_not_replay_write_nothing_and_are_counted() {
        let mut comparator = Comparator::new(Some(Protocol::Http), ComparatorLimits::default());
        let captured = flow("198.51.100.10:40001", "198.51.100.30:80");
        let online: SocketAddr = "198.51.100.20:80".parse().unwrap();
        comparator.online(captured, online, true, piece(0, 100, TcpFlags::ACK, GET));
        comparator.online(
            captured,
            online,
            false,
            piece(10, 500, TcpFlags::ACK | TcpFlags::FIN, OK),
        );
        comparator.online(
            captured,
            online,
            true,
            piece(20, 119, TcpFlags::ACK | TcpFlags::FIN, b""),
        );
        comparator.sweep(3_000_000);
        assert!(comparator.take_records().is_empty());
        assert_eq!(comparator.tally().sessions_not_replayed, 1);
        assert!(comparator.is_empty());
        assert!(
            comparator.take_notes().is_empty(),
            "a chosen protocol is not news"
        );
    }

    #[test]
    fn a_session_compared_to_its_end_takes_no_more_target_events() {
        let mut comparator = Comparator::new(None, ComparatorLimits::default());
        let captured = flow("198.51.100.10:40003", "198.51.100.30:80");
        let online: SocketAddr = "198.51.100.20:80".parse().unwrap();
        comparator.target(TargetEvent::Opened {
            captured,
            replayed: captured,
        });
        let fin = TcpFlags::ACK | TcpFlags::FIN;
        comparator.online(captured, online, true, piece(0, 100, TcpFlags::ACK, GET));
        comparator.online(captured, online, false, piece(10, 500, fin, OK));
        comparator.online(captured, online, true, piece(20, 119, fin, b""));
        let sent = |at_us, seq, flags, len| TargetEvent::Sent {
            at_us,
            replayed: captured,
            seq: SeqNum(seq),
            flags,
            len,
        };
        comparator.target(sent(5, 100, TcpFlags::ACK, GET.len() as u32));
        comparator.target(TargetEvent::Replied {
            received_us: 30,
            stamped_us: None,
            replayed: captured,
            seq: SeqNum(900),
            flags: fin,
            len: OK.len() as u32,
            prefix: OK.to_vec(),
        });
        comparator.target(sent(31, 119, fin, 0));
        assert_eq!(comparator.take_records().len(), 1);
        assert!(comparator.is_empty());
        // A late reset of the finished session, then its end.
        comparator.target(sent(40, 120, TcpFlags::RST, 0));
        comparator.target(TargetEvent::Ended { replayed: captured });
        assert!(comparator.is_empty() && comparator.take_records().is_empty());
        assert_eq!(comparator.tally().target_events_unknown, 0);
        comparator.target(sent(50, 120, TcpFlags::RST, 0));
        assert_eq!(comparator.tally().target_events_unknown, 1, "after its end");
    }

    #[test]
    fn the_session_limit_is_counted() {
        let limits = ComparatorLimits {
            max_sessions: 1,
            ..ComparatorLimits::default()
        };
        let mut comparator = Comparator::new(None, limits);
        let online: SocketAddr = "198.51.100.20:80".parse().unwrap();
        for port in [40000, 40001] {
            let key = flow(&format!("198.51.100.10:{port}"), "198.51.100.30:80");
            comparator.online(key, online, true, piece(0, 100, TcpFlags::ACK, GET));
        }
        assert_eq!(
            (comparator.len(), comparator.tally().sessions_over_limit),
            (1, 1)
        );
    }

    #[test]
    fn at_the_end_open_requests_are_written_as_they_are() {
        let mut comparator = Comparator::new(None, ComparatorLimits::default());
        let captured = flow("198.51.100.10:40002", "198.51.100.30:80");
        let replayed = captured;
        let online: SocketAddr = "198.51.100.20:80".parse().unwrap();
        comparator.target(TargetEvent::Opened { captured, replayed });
        comparator.online(captured, online, true, piece(0, 100, TcpFlags::ACK, GET));
        comparator.online(captured, online, false, piece(10, 500, TcpFlags::ACK, OK));
        comparator.target(TargetEvent::Sent {
            at_us: 5,
            replayed,
            seq: SeqNum(100),
            flags: TcpFlags::ACK,
            len: GET.len() as u32,
        });
        comparator.finish_all();
        let records = comparator.take_records();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].outcome(), "200->no reply");
        assert!(comparator.is_empty());
    }
}
