//! Target mode: the target's replies arrive through NFQUEUE, their headers are taken, and each
//! gets its verdict at once (DROP, or ACCEPT for a passlisted destination) so no reply ever
//! reaches a real client and a slow copy never holds the queue.
//!
//! The iptables rule must not use `--queue-bypass`, and the queue is set fail-closed: with no
//! reader bound, or the queue full, the kernel drops the replies too.
//!
//! DROP verdicts go in batches ([`super::verdict_batch`]): one message for up to
//! [`VERDICT_BATCH`] replies, and always before a drain returns, so a reply waits for its
//! verdict no longer than the drain that read it. An ACCEPT (passlist) goes at once, one by one,
//! through the `nfq` crate. The crate does not expose its netlink descriptor;
//! [`NfQueueSource::open`] learns it from the kernel's lowest-free-descriptor rule and checks it.

use std::io::{self, ErrorKind};
use std::net::IpAddr;
use std::os::fd::RawFd;

use anyhow::{Context, Result};
use nfq::{Queue, Verdict};

use super::sources::{ReplyHandler, ReplySource};
use super::verdict_batch;
use crate::capabilities::{self, Capability};
use crate::packet;

/// Bytes of each queued packet the kernel copies to us: enough for IPv6 + TCP headers with
/// options and a reply payload prefix.
const COPY_RANGE: u16 = 512;
/// DROP verdicts held back at most before they go in one message. A packet counts in the
/// queue's length until its verdict, so a batch stays far below the kernel's default of 1024.
const VERDICT_BATCH: usize = 64;

/// An NFQUEUE queue bound for reading replies.
pub struct NfQueueSource {
    queue: Queue,
    fd: RawFd,
    number: u16,
    name: String,
    /// Destinations whose replies are let through (ACCEPT) instead of dropped.
    passlist: Vec<IpAddr>,
}

/// Whether this process holds CAP_NET_ADMIN (false when that cannot be read).
fn has_net_admin() -> bool {
    capabilities::effective().is_some_and(|set| set.has(Capability::NetAdmin))
}

/// Says why queue `number` could not be bound (see [`bind_cause`]).
fn bind_error(number: u16, err: std::io::Error) -> anyhow::Error {
    let why = bind_cause(err.kind(), has_net_admin());
    anyhow::Error::new(err).context(format!("cannot bind NFQUEUE queue {number}: {why}"))
}

/// Why binding a queue failed with `kind`, for a process that holds CAP_NET_ADMIN or not.
/// The kernel answers EPERM both without CAP_NET_ADMIN and when another process has bound
/// the queue; which one it is shows in our own capabilities.
fn bind_cause(kind: ErrorKind, net_admin: bool) -> &'static str {
    match kind {
        ErrorKind::PermissionDenied if net_admin => {
            "another process (another intercept?) has bound it"
        }
        ErrorKind::PermissionDenied => {
            "this process lacks CAP_NET_ADMIN: run intercept as root or grant it the capability"
        }
        _ => "the kernel refused",
    }
}

impl NfQueueSource {
    /// Binds queue `number`, fail closed, holding at most `max_len` packets when given (the
    /// kernel's 1024 otherwise). Call before any other thread runs: the queue's descriptor is
    /// found by opening a probe socket just before it.
    pub fn open(number: u16, max_len: Option<u32>, passlist: Vec<IpAddr>) -> Result<NfQueueSource> {
        let (mut queue, fd) = open_queue().map_err(|err| {
            if err.kind() == ErrorKind::PermissionDenied {
                anyhow::anyhow!(
                    "cannot open a netfilter queue socket: {err} (needs root or CAP_NET_ADMIN)"
                )
            } else {
                anyhow::Error::new(err).context("cannot open a netfilter queue socket")
            }
        })?;
        queue.bind(number).map_err(|err| bind_error(number, err))?;
        queue
            .set_copy_range(number, COPY_RANGE)
            .context("cannot set the NFQUEUE copy range")?;
        queue
            .set_fail_open(number, false)
            .context("cannot make NFQUEUE fail closed")?;
        if let Some(len) = max_len {
            queue
                .set_queue_max_len(number, len)
                .with_context(|| format!("cannot set the NFQUEUE length to {len}"))?;
        }
        queue.set_nonblocking(true);
        log::info!("reading replies from NFQUEUE queue {number}; every reply is dropped");
        Ok(NfQueueSource {
            queue,
            fd,
            number,
            name: format!("nfqueue {number}"),
            passlist,
        })
    }
}

/// Opens the queue and finds its netlink descriptor: `socket(2)` returns the lowest free
/// descriptor, so a probe socket opened and closed just before `Queue::open` gets the number
/// the queue's socket gets next. The number is then checked to be a netfilter netlink socket.
fn open_queue() -> io::Result<(Queue, RawFd)> {
    // SAFETY: plain socket calls on a descriptor we own and close at once.
    let probe = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )
    };
    if probe < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `probe` is ours and open.
    unsafe { libc::close(probe) };
    let queue = Queue::open()?;
    if socket_option(probe, libc::SO_DOMAIN)? != libc::AF_NETLINK
        || socket_option(probe, libc::SO_PROTOCOL)? != libc::NETLINK_NETFILTER
    {
        return Err(io::Error::other(
            "cannot find the netfilter queue's descriptor (another thread opened one meanwhile)",
        ));
    }
    Ok((queue, probe))
}

/// An integer socket option of `fd` at level `SOL_SOCKET`.
fn socket_option(fd: RawFd, option: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes of the sizes given.
    let result = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

impl ReplySource for NfQueueSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn fd(&self) -> RawFd {
        self.fd
    }

    /// Hands over each queued packet (an IP packet, possibly cut at the copy range) and gives
    /// it its verdict: DROP unless its destination is passlisted; unreadable packets are
    /// dropped too. The DROPs of the packets read so far are sent before it returns, even when
    /// reading failed.
    fn drain(&mut self, max: usize, handle: &mut ReplyHandler<'_>) -> Result<usize> {
        let mut drops = PendingDrops::default();
        let mut handed = 0;
        let read = loop {
            if handed == max {
                break Ok(());
            }
            let message = match self.queue.recv() {
                Ok(message) => message,
                Err(err) if err.kind() == ErrorKind::WouldBlock => break Ok(()),
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => {
                    break Err(err)
                        .with_context(|| format!("reading NFQUEUE queue {} failed", self.number));
                }
            };
            handed += 1;
            if let Err(err) = self.hand_over(message, handle, &mut drops) {
                break Err(err);
            }
        };
        let sent = self.send_drops(&mut drops);
        read.and(sent).map(|()| handed)
    }

    fn kernel_dropped(&mut self) -> Option<u64> {
        None
    }
}

/// The DROP verdicts of a drain not sent yet: how many, and the id of the latest.
#[derive(Default)]
struct PendingDrops {
    count: usize,
    last_id: u32,
}

impl NfQueueSource {
    /// Hands one queued packet to `handle`; an ACCEPT goes at once, a DROP joins `drops`,
    /// which are sent once [`VERDICT_BATCH`] of them wait.
    fn hand_over(
        &mut self,
        mut message: nfq::Message,
        handle: &mut ReplyHandler<'_>,
        drops: &mut PendingDrops,
    ) -> Result<()> {
        let packet = message.get_payload();
        let headers = packet::split_ip_headers(packet);
        let passed = headers
            .as_ref()
            .is_ok_and(|reply| self.passlist.contains(&reply.dst.ip()));
        handle(packet, headers);
        if passed {
            message.set_verdict(Verdict::Accept);
            return self.queue.verdict(message).with_context(|| {
                format!(
                    "letting a passlisted reply through NFQUEUE queue {} failed",
                    self.number
                )
            });
        }
        drops.count += 1;
        drops.last_id = message.get_packet_id();
        if drops.count >= VERDICT_BATCH {
            self.send_drops(drops)?;
        }
        Ok(())
    }

    /// Sends the DROP verdicts waiting in `drops`, if any.
    fn send_drops(&self, drops: &mut PendingDrops) -> Result<()> {
        if drops.count == 0 {
            return Ok(());
        }
        drops.count = 0;
        verdict_batch::send_drop_through(self.fd, self.number, drops.last_id)
            .with_context(|| format!("dropping replies on NFQUEUE queue {} failed", self.number))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_bind_blames_the_missing_capability_or_another_reader() {
        let denied = ErrorKind::PermissionDenied;
        assert!(bind_cause(denied, false).contains("lacks CAP_NET_ADMIN"));
        assert_eq!(
            bind_cause(denied, true),
            "another process (another intercept?) has bound it"
        );
        assert_eq!(
            bind_cause(ErrorKind::InvalidInput, false),
            "the kernel refused"
        );
    }

    #[test]
    fn the_capability_check_reads_this_process() {
        let err = bind_error(3, std::io::Error::from_raw_os_error(libc::EPERM)).to_string();
        assert!(err.starts_with("cannot bind NFQUEUE queue 3: "), "{err}");
    }
}
