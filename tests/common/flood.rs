//! [`SynFlood`]: a bounded SYN flood from many distinct client ends inside the lab's client
//! net (`203.0.113.0/24`), sent with a raw socket from the host it runs in (the lab's client).
//!
//! Each SYN has a 4-tuple no other SYN of the flood has, so every one is a new flow to copy;
//! none is ever followed by an ACK or data (the online host's SYN-ACKs have no route back
//! and die there). Bounded in count and paced to a rate, so it cannot take a whole core of a
//! shared machine for long. It must run inside a lab host ([`super::Lab::in_host`]): its
//! packets then stay in the lab.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use tcpcopy::packet::{Segment, SeqNum, TcpFlags, TcpOptions, emit_ip};
use tcpcopy::replay::sink::{Outgoing, PacketSink, RawSocketSink};

/// Host numbers the flood's sources take in the client net: 203.0.113.1 to .254.
const SOURCE_HOSTS: u32 = 254;
/// The first source port (below it, ports some stacks treat as special).
const FIRST_PORT: u32 = 1024;
/// SYNs sent between two checks of the pace.
const BATCH: usize = 256;

/// A flood of `syns` SYNs toward `target`, at most `per_second` of them each second.
#[derive(Clone, Copy, Debug)]
pub struct SynFlood {
    pub target: SocketAddrV4,
    pub syns: usize,
    pub per_second: usize,
}

/// What a flood sent.
#[derive(Clone, Copy, Debug)]
pub struct FloodReport {
    /// SYNs the raw socket accepted.
    pub sent: usize,
    /// SYNs it refused (e.g. ENOBUFS), which never left.
    pub failed: usize,
    /// How long sending them took.
    pub took: Duration,
}

impl SynFlood {
    /// The largest flood with distinct 4-tuples: every source host with every port from
    /// [`FIRST_PORT`].
    pub const MAX_SYNS: usize = (SOURCE_HOSTS * (65536 - FIRST_PORT)) as usize;

    /// Sends the flood from the current network namespace and returns once every SYN went.
    pub fn send(&self) -> Result<FloodReport> {
        ensure!(
            self.syns <= Self::MAX_SYNS && self.per_second > 0,
            "a flood of {} SYNs at {}/s: at most {} distinct flows, at a rate above 0",
            self.syns,
            self.per_second,
            Self::MAX_SYNS
        );
        let mut sink = RawSocketSink::open()?;
        let mut batch = Outgoing::default();
        let (mut sent, mut failed) = (0, 0);
        let start = Instant::now();
        for first in (0..self.syns).step_by(BATCH) {
            batch.clear();
            for n in first..(first + BATCH).min(self.syns) {
                let syn = self.nth_syn(n);
                emit_ip(&syn, &[], batch.push(syn.dst.ip()))
                    .with_context(|| format!("building flood SYN {n}"))?;
            }
            sent += sink.send_batch(&batch, &mut |_, _| failed += 1);
            // Paced: the next batch waits until the rate allows it.
            let due = Duration::from_secs_f64((first + BATCH) as f64 / self.per_second as f64);
            if let Some(early) = due.checked_sub(start.elapsed()) {
                thread::sleep(early);
            }
        }
        Ok(FloodReport {
            sent,
            failed,
            took: start.elapsed(),
        })
    }

    /// SYN number `n`: its source host cycles fastest, then its port, so every `n` below
    /// [`Self::MAX_SYNS`] has its own 4-tuple.
    fn nth_syn(&self, n: usize) -> Segment {
        let n = n as u32;
        let host = 1 + n % SOURCE_HOSTS;
        let port = (FIRST_PORT + n / SOURCE_HOSTS) as u16;
        let source = Ipv4Addr::from(u32::from(Ipv4Addr::new(203, 0, 113, 0)) + host);
        Segment {
            src: SocketAddr::from((source, port)),
            dst: self.target.into(),
            seq: SeqNum(n.wrapping_mul(2_654_435_761)),
            ack: SeqNum(0),
            flags: TcpFlags::SYN,
            window: 64_240,
            options: TcpOptions {
                mss: Some(1460),
                ..TcpOptions::default()
            },
            ip_id: n as u16,
            ttl: 64,
            payload_len: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_syn_of_a_flood_is_its_own_flow_inside_the_client_net() {
        let flood = SynFlood {
            target: SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 20), 80),
            syns: 100_000,
            per_second: 1,
        };
        let sources: HashSet<SocketAddr> = (0..flood.syns).map(|n| flood.nth_syn(n).src).collect();
        assert_eq!(sources.len(), flood.syns);
        assert!(sources.iter().all(|source| match source.ip() {
            std::net::IpAddr::V4(ip) => ip.octets()[..3] == [203, 0, 113] && ip.octets()[3] != 0,
            std::net::IpAddr::V6(_) => false,
        }));
        let last = flood.nth_syn(SynFlood::MAX_SYNS - 1).src;
        assert_eq!(last, SocketAddr::from(([203, 0, 113, 254], 65535)));
    }
}
