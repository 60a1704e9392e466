//! Target mode: the target's replies arrive through NFQUEUE, are handed over, and get a
//! DROP verdict at once so no reply ever reaches a real client.
//!
//! The iptables rule must not use `--queue-bypass`: with no reader bound the kernel then
//! drops the queued replies too (fail closed), which is what production needs.

use std::net::IpAddr;

use anyhow::{Context, Result};
use nfq::{Queue, Verdict};

use crate::packet::{self, PacketError, Segment};

/// Bytes of each queued packet the kernel copies to us: enough for IPv6 + TCP headers with
/// options and a reply payload prefix.
const COPY_RANGE: u16 = 512;

/// An NFQUEUE queue bound for reading replies.
pub struct NfQueueSource {
    queue: Queue,
    number: u16,
    /// Destinations whose replies are let through (ACCEPT) instead of dropped.
    passlist: Vec<IpAddr>,
}

impl NfQueueSource {
    pub fn open(number: u16, passlist: Vec<IpAddr>) -> Result<NfQueueSource> {
        let mut queue = Queue::open().map_err(|err| {
            if err.kind() == std::io::ErrorKind::PermissionDenied {
                anyhow::anyhow!(
                    "cannot open a netfilter queue socket: {err} (needs root or CAP_NET_ADMIN)"
                )
            } else {
                anyhow::Error::new(err).context("cannot open a netfilter queue socket")
            }
        })?;
        queue.bind(number).with_context(|| {
            format!("cannot bind NFQUEUE queue {number} (is another intercept bound to it?)")
        })?;
        queue
            .set_copy_range(number, COPY_RANGE)
            .context("cannot set the NFQUEUE copy range")?;
        queue
            .set_fail_open(number, false)
            .context("cannot make NFQUEUE fail closed")?;
        log::info!("reading replies from NFQUEUE queue {number}; every reply is dropped");
        Ok(NfQueueSource {
            queue,
            number,
            passlist,
        })
    }

    /// Hands every queued packet (an IP packet, possibly cut at the copy range) and its parsed
    /// headers to `handle`, then gives it its verdict: DROP unless its destination is
    /// passlisted. Unparsable packets are dropped too. Runs until the queue fails.
    pub fn run(
        mut self,
        mut handle: impl FnMut(&[u8], Result<Segment, PacketError>),
    ) -> Result<()> {
        loop {
            let mut message = match self.queue.recv() {
                Ok(message) => message,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    return Err(err)
                        .with_context(|| format!("reading NFQUEUE queue {} failed", self.number));
                }
            };
            let packet = message.get_payload();
            let headers = packet::parse_ip_headers(packet);
            let passed = headers
                .as_ref()
                .is_ok_and(|s| self.passlist.contains(&s.dst.ip()));
            handle(packet, headers);
            let verdict = if passed {
                Verdict::Accept
            } else {
                Verdict::Drop
            };
            message.set_verdict(verdict);
            self.queue.verdict(message).with_context(|| {
                format!("giving a verdict on NFQUEUE queue {} failed", self.number)
            })?;
        }
    }
}
