//! The path probe of `copy --check`: one SYN from a `-c` address to a target, registered on
//! the intercepts as a session's flow is, and whether the target's answer comes back
//! through one of them. The online host cannot read the target's routes or rp_filter; the
//! path shows whether they let the replies reach an intercept.
//!
//! Pure: the raw socket is a [`PacketSink`], the intercepts a [`ReplyFeed`], the deadline
//! an argument. The probe leaves nothing behind on the target: a SYN-ACK, or a SYN-ACK that
//! went elsewhere, is answered with the RST that closes the half-open connection.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::causes::{Cause, numbered};
use super::{Check, Topic};
use crate::packet::{self, Segment, SeqNum, TcpFlags, TcpOptions};
use crate::replay::sink::PacketSink;

/// How long the probe waits for the target's answer.
pub const WAIT: Duration = Duration::from_secs(2);

/// The client ports a probe picks from: above the common listening ports, below the
/// default ephemeral range, so it collides with no real client of most hosts.
const PORTS: std::ops::RangeInclusive<u16> = 20000..=32767;

/// The replies the intercepts route to the probe's flow.
pub trait ReplyFeed {
    /// The next reply that came back, or `None` once `deadline` has passed.
    fn next_reply(&mut self, deadline: Instant) -> io::Result<Option<Segment>>;
}

/// The probe's connection: a `-c` client address and port toward one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeFlow {
    pub client: SocketAddr,
    pub target: SocketAddr,
    /// The SYN's sequence number.
    isn: SeqNum,
}

/// How the target answered the SYN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// SYN-ACK: something listens.
    Accepted,
    /// RST: nothing listens on the port.
    Refused,
}

impl ProbeFlow {
    /// The probe from `client` to `target`, its port and sequence number drawn from `seed`.
    pub fn new(client: IpAddr, target: SocketAddr, seed: u64) -> ProbeFlow {
        let span = u64::from(PORTS.end() - PORTS.start()) + 1;
        let port = PORTS.start() + u16::try_from(seed % span).unwrap_or(0);
        ProbeFlow {
            client: SocketAddr::new(client, port),
            target,
            isn: SeqNum((seed >> 16) as u32),
        }
    }

    /// The SYN the probe sends (RFC 9293 §3.5: a plain active open).
    pub fn syn(&self) -> Segment {
        self.segment(self.isn, TcpFlags::SYN, 65535)
    }

    /// The RST that closes what the SYN opened on the target: its sequence number is the
    /// one the target expects next (RFC 9293 §3.10.7.4: in SYN-RECEIVED an in-window RST
    /// closes the connection).
    pub fn reset(&self) -> Segment {
        self.segment(self.isn + 1u32, TcpFlags::RST, 0)
    }

    /// What `reply` says of the probe, if it is the target's answer to it.
    pub fn answer(&self, reply: &Segment) -> Option<Answer> {
        if reply.src != self.target || reply.dst != self.client {
            return None;
        }
        if reply.flags.rst() {
            return Some(Answer::Refused);
        }
        (reply.flags.syn() && reply.flags.ack() && reply.ack == self.isn + 1u32)
            .then_some(Answer::Accepted)
    }

    fn segment(&self, seq: SeqNum, flags: TcpFlags, window: u16) -> Segment {
        let syn = flags.syn();
        Segment {
            src: self.client,
            dst: self.target,
            seq,
            ack: SeqNum(0),
            flags,
            window,
            options: TcpOptions {
                mss: syn.then_some(1400),
                ..TcpOptions::default()
            },
            ip_id: 0,
            ttl: 64,
            payload_len: 0,
        }
    }
}

/// Sends the probe's SYN through `sink`, waits until `deadline` for its answer in
/// `replies`, and resets the target's half of the connection unless it refused.
pub fn probe(
    flow: &ProbeFlow,
    sink: &mut dyn PacketSink,
    replies: &mut dyn ReplyFeed,
    deadline: Instant,
) -> io::Result<Option<Answer>> {
    send(sink, &flow.syn())?;
    let mut answer = None;
    while let Some(reply) = replies.next_reply(deadline)? {
        answer = flow.answer(&reply);
        if answer.is_some() {
            break;
        }
    }
    if answer != Some(Answer::Refused) {
        send(sink, &flow.reset())?;
    }
    Ok(answer)
}

fn send(sink: &mut dyn PacketSink, segment: &Segment) -> io::Result<()> {
    let mut packet = Vec::new();
    packet::emit_ip(segment, &[], &mut packet).map_err(io::Error::other)?;
    sink.send(segment.dst.ip(), &packet)
}

/// The check of what the probe of `flow` found; `causes` are why nothing came back, most
/// likely first.
pub fn verdict(flow: &ProbeFlow, found: &io::Result<Option<Answer>>, causes: &[Cause]) -> Check {
    let name = format!("replies of {}", flow.target);
    let probe = format!("a SYN from {}", flow.client);
    match found {
        Ok(Some(Answer::Accepted)) => Check::pass(
            name,
            format!("the SYN-ACK to {probe} came back through an intercept"),
        ),
        Ok(Some(Answer::Refused)) => Check::pass(
            name,
            format!("the RST to {probe} came back through an intercept (nothing listens)"),
        ),
        Ok(None) => {
            let mut fix = String::from("likely causes, most likely first:");
            fix.push_str(&numbered(causes, "        "));
            fix.push_str(
                "\n        `tcpcopy intercept --check` on the intercept's host checks its half",
            );
            Check::fail(
                name,
                format!(
                    "no reply from the target came back through any intercept within {}s to \
                     {probe}",
                    WAIT.as_secs()
                ),
                fix,
                Topic::PathProbe,
            )
        }
        Err(err) => Check::fail(
            name,
            format!("cannot probe with {probe}: {err}"),
            "the checks above say what is missing (CAP_NET_RAW, the intercepts)",
            Topic::PathProbe,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::parse_ip;

    /// A sink that keeps what it is given.
    #[derive(Default)]
    struct Sent(Vec<Segment>);

    impl PacketSink for Sent {
        fn send(&mut self, _dst: IpAddr, packet: &[u8]) -> io::Result<()> {
            self.0.push(parse_ip(packet).map_err(io::Error::other)?.0);
            Ok(())
        }
    }

    /// Replies handed out in order, then silence.
    struct Replies(Vec<Segment>);

    impl ReplyFeed for Replies {
        fn next_reply(&mut self, _deadline: Instant) -> io::Result<Option<Segment>> {
            Ok((!self.0.is_empty()).then(|| self.0.remove(0)))
        }
    }

    fn flow() -> ProbeFlow {
        ProbeFlow::new(
            "203.0.113.7".parse().unwrap(),
            "198.51.100.30:80".parse().unwrap(),
            0x1234_5678_9abc,
        )
    }

    fn reply(flow: &ProbeFlow, flags: TcpFlags, ack: SeqNum) -> Segment {
        Segment {
            src: flow.target,
            dst: flow.client,
            seq: SeqNum(77),
            ack,
            flags,
            ..flow.syn()
        }
    }

    #[test]
    fn the_port_stays_in_its_range_and_the_syn_is_a_plain_open() {
        for seed in [0, 1, u64::MAX, 0x1234_5678_9abc] {
            let flow = ProbeFlow::new("203.0.113.7".parse().unwrap(), flow().target, seed);
            assert!(PORTS.contains(&flow.client.port()), "{flow:?}");
        }
        let syn = flow().syn();
        assert_eq!(syn.flags, TcpFlags::SYN);
        assert_eq!((syn.src, syn.dst), (flow().client, flow().target));
        assert_eq!(flow().reset().seq, syn.seq + 1u32);
        assert_eq!(flow().reset().flags, TcpFlags::RST);
    }

    #[test]
    fn only_the_targets_answer_to_this_syn_counts() {
        let flow = flow();
        let next = flow.syn().seq + 1u32;
        let syn_ack = reply(&flow, TcpFlags::SYN | TcpFlags::ACK, next);
        assert_eq!(flow.answer(&syn_ack), Some(Answer::Accepted));
        let rst = reply(&flow, TcpFlags::RST | TcpFlags::ACK, next);
        assert_eq!(flow.answer(&rst), Some(Answer::Refused));
        let stale = reply(&flow, TcpFlags::SYN | TcpFlags::ACK, next + 5u32);
        assert_eq!(flow.answer(&stale), None, "another SYN's answer");
        let other = Segment {
            dst: "203.0.113.8:20000".parse().unwrap(),
            ..syn_ack
        };
        assert_eq!(flow.answer(&other), None, "another client's");
    }

    #[test]
    fn an_answer_is_found_among_others_and_the_target_is_reset() {
        let flow = flow();
        let next = flow.syn().seq + 1u32;
        let noise = Segment {
            src: "198.51.100.30:81".parse().unwrap(),
            ..reply(&flow, TcpFlags::ACK, next)
        };
        let syn_ack = reply(&flow, TcpFlags::SYN | TcpFlags::ACK, next);
        let mut sent = Sent::default();
        let mut replies = Replies(vec![noise, syn_ack]);
        let found = probe(&flow, &mut sent, &mut replies, Instant::now());
        assert_eq!(found.unwrap(), Some(Answer::Accepted));
        assert_eq!(sent.0, [flow.syn(), flow.reset()]);
    }

    #[test]
    fn a_refusal_needs_no_reset_and_silence_gets_one() {
        let flow = flow();
        let rst = reply(&flow, TcpFlags::RST | TcpFlags::ACK, flow.syn().seq + 1u32);
        let mut sent = Sent::default();
        let found = probe(&flow, &mut sent, &mut Replies(vec![rst]), Instant::now());
        assert_eq!(found.unwrap(), Some(Answer::Refused));
        assert_eq!(sent.0, [flow.syn()]);

        let mut sent = Sent::default();
        let found = probe(&flow, &mut sent, &mut Replies(Vec::new()), Instant::now());
        assert_eq!(found.unwrap(), None);
        assert_eq!(
            sent.0,
            [flow.syn(), flow.reset()],
            "the SYN-ACK may have gone elsewhere"
        );
    }

    #[test]
    fn silence_fails_naming_the_causes_in_order() {
        let flow = flow();
        let cause = |what: &str, topic| Cause {
            place: "on the target".into(),
            what: what.into(),
            check: "`ip route get 203.0.113.7`".into(),
            topic,
        };
        let causes = [
            cause("no route", Topic::TargetRoute),
            cause("rp_filter", Topic::RpFilter),
        ];
        let check = verdict(&flow, &Ok(None), &causes);
        assert!(check.failed());
        assert_eq!(check.name, "replies of 198.51.100.30:80");
        assert!(
            check.detail.starts_with(
                "no reply from the target came back through any intercept within 2s to a SYN \
                 from 203.0.113.7:"
            ),
            "{check}"
        );
        let (fix, topic) = check.fix.clone().unwrap();
        assert_eq!(topic, Topic::PathProbe);
        assert!(
            fix.contains("\n        1. on the target: no route; check: `ip route get"),
            "{fix}"
        );
        assert!(
            fix.contains("\n        2. on the target: rp_filter;"),
            "{fix}"
        );
        assert!(!verdict(&flow, &Ok(Some(Answer::Accepted)), &causes).failed());
        assert!(!verdict(&flow, &Ok(Some(Answer::Refused)), &causes).failed());
        assert!(verdict(&flow, &Err(io::Error::other("no raw socket")), &causes).failed());
    }
}
