//! Packet sinks: where finished copies go. A raw IP socket in production, a pcap file for
//! inspection, memory for tests — one [`PacketSink`] trait for all three — and the
//! [`Outgoing`] batch a shard fills during one loop turn and hands over in one call.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// Somewhere to put complete IP packets (IP header included, checksums final).
pub trait PacketSink: Send {
    /// Sends one packet addressed to `dst`.
    fn send(&mut self, dst: IpAddr, packet: &[u8]) -> io::Result<()>;

    /// Sends every packet of `batch`, in order; a packet that fails is reported to `failed`
    /// and the rest still go. Returns how many were sent.
    fn send_batch(
        &mut self,
        batch: &[OutgoingPacket],
        failed: &mut dyn FnMut(&[u8], io::Error),
    ) -> usize {
        let mut sent = 0;
        for (dst, packet) in batch {
            match self.send(*dst, packet) {
                Ok(()) => sent += 1,
                Err(err) => failed(packet, err),
            }
        }
        sent
    }
}

/// One packet to send, and where to.
pub type OutgoingPacket = (IpAddr, Vec<u8>);

/// The IP packets a shard emitted during one loop turn, waiting to be sent in one call.
///
/// Slots are kept between turns with their buffers, so steady state allocates nothing.
#[derive(Debug, Default)]
pub struct Outgoing {
    slots: Vec<OutgoingPacket>,
    len: usize,
}

impl Outgoing {
    /// An empty buffer for the next packet to `dst`; it is part of the batch from now on.
    pub fn push(&mut self, dst: IpAddr) -> &mut Vec<u8> {
        if self.len == self.slots.len() {
            self.slots.push((dst, Vec::new()));
        }
        let slot = &mut self.slots[self.len];
        self.len += 1;
        slot.0 = dst;
        slot.1.clear();
        &mut slot.1
    }

    /// Takes back the packet [`push`](Self::push) handed out last (it could not be built).
    pub fn pop(&mut self) {
        self.len = self.len.saturating_sub(1);
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The packets in the order they were pushed.
    pub fn packets(&self) -> &[OutgoingPacket] {
        &self.slots[..self.len]
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// Raw `IPPROTO_RAW` sockets: the kernel routes, resolves neighbours and fills in the IPv4
/// checksum and length; the source address is whatever the packet says.
pub struct RawSocketSink {
    v4: OwnedFd,
    v6: Option<OwnedFd>,
}

impl RawSocketSink {
    pub fn open() -> Result<RawSocketSink> {
        let v4 = raw_socket(libc::AF_INET).map_err(|err| {
            if err.kind() == io::ErrorKind::PermissionDenied {
                anyhow::anyhow!("cannot open a raw IPv4 socket: {err} (needs root or CAP_NET_RAW)")
            } else {
                anyhow::Error::new(err).context("cannot open a raw IPv4 socket")
            }
        })?;
        // IPv6 is optional: a host without it still copies IPv4.
        let v6 = match raw_socket(libc::AF_INET6) {
            Ok(fd) => Some(fd),
            Err(err) => {
                log::debug!("no raw IPv6 socket ({err}); IPv6 copies will fail");
                None
            }
        };
        Ok(RawSocketSink { v4, v6 })
    }
}

fn raw_socket(family: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_RAW,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl RawSocketSink {
    /// The socket for packets to `dst`.
    fn socket_for(&self, dst: IpAddr) -> io::Result<&OwnedFd> {
        match dst {
            IpAddr::V4(_) => Ok(&self.v4),
            IpAddr::V6(_) => self
                .v6
                .as_ref()
                .ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "no raw IPv6 socket")),
        }
    }

    /// Sends up to [`MMSG_CHUNK`] packets of one address family with `sendmmsg(2)`.
    fn send_chunk(
        &self,
        chunk: &[(IpAddr, &[u8])],
        failed: &mut dyn FnMut(&[u8], io::Error),
    ) -> usize {
        let fd = match self.socket_for(chunk[0].0) {
            Ok(fd) => fd.as_raw_fd(),
            Err(err) => {
                for (_, packet) in chunk {
                    failed(packet, io::Error::new(err.kind(), err.to_string()));
                }
                return 0;
            }
        };
        let mut addrs = [(zeroed_storage(), 0); MMSG_CHUNK];
        // SAFETY: iovec and mmsghdr are plain old data; all-zero is a valid value.
        let mut iovecs: [libc::iovec; MMSG_CHUNK] = unsafe { std::mem::zeroed() };
        let mut headers: [libc::mmsghdr; MMSG_CHUNK] = unsafe { std::mem::zeroed() };
        for (i, (dst, packet)) in chunk.iter().enumerate() {
            addrs[i] = socket_addr_to_raw(SocketAddr::new(*dst, 0));
            iovecs[i] = libc::iovec {
                iov_base: packet.as_ptr().cast_mut().cast(),
                iov_len: packet.len(),
            };
        }
        for i in 0..chunk.len() {
            let header = &mut headers[i].msg_hdr;
            header.msg_name = (&raw mut addrs[i].0).cast();
            header.msg_namelen = addrs[i].1;
            header.msg_iov = &raw mut iovecs[i];
            header.msg_iovlen = 1;
        }
        let mut sent = 0;
        let mut next = 0;
        while next < chunk.len() {
            let count = libc::c_uint::try_from(chunk.len() - next).unwrap_or(libc::c_uint::MAX);
            // SAFETY: `headers[next..]` holds `count` initialised messages whose names and
            // buffers stay alive and unmoved for the whole call.
            let done = unsafe { libc::sendmmsg(fd, headers[next..].as_mut_ptr(), count, 0) };
            if done < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first message of the call failed: report it and go on with the rest.
                failed(chunk[next].1, err);
                next += 1;
            } else {
                let done = usize::try_from(done).unwrap_or(0).max(1);
                sent += done;
                next += done;
            }
        }
        sent
    }
}

/// Packets handed to one `sendmmsg(2)` call at most (the stack arrays' size).
const MMSG_CHUNK: usize = 64;

fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

impl PacketSink for RawSocketSink {
    fn send(&mut self, dst: IpAddr, packet: &[u8]) -> io::Result<()> {
        let fd = self.socket_for(dst)?;
        let (storage, len) = socket_addr_to_raw(SocketAddr::new(dst, 0));
        // SAFETY: the buffer and the address are valid for the lengths given.
        let sent = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&raw const storage).cast(),
                len,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One `sendmmsg(2)` per run of up to 64 packets of the same address family; a lone
    /// packet costs what one `sendto(2)` costs.
    fn send_batch(
        &mut self,
        batch: &[OutgoingPacket],
        failed: &mut dyn FnMut(&[u8], io::Error),
    ) -> usize {
        let mut chunk: [(IpAddr, &[u8]); MMSG_CHUNK] =
            [(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), &[]); MMSG_CHUNK];
        let mut filled = 0;
        let mut sent = 0;
        for (dst, packet) in batch {
            let same_family = filled == 0 || chunk[0].0.is_ipv4() == dst.is_ipv4();
            if filled == MMSG_CHUNK || !same_family {
                sent += self.send_chunk(&chunk[..filled], failed);
                filled = 0;
            }
            chunk[filled] = (*dst, packet.as_slice());
            filled += 1;
        }
        if filled > 0 {
            sent += self.send_chunk(&chunk[..filled], failed);
        }
        sent
    }
}

fn socket_addr_to_raw(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let mut storage = zeroed_storage();
    let len = match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: as above.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Writes copies to a pcap file of link type raw IP, for inspection without a network.
pub struct PcapFileSink {
    savefile: pcap::Savefile,
}

/// DLT_RAW (stored in the file as LINKTYPE_RAW, 101): each record starts with an IPv4 or
/// IPv6 header.
const DLT_RAW: i32 = 12;

/// One sink used by several shards in turn (a pcap file they all write to). The sink is
/// dropped, and a file flushed, with the last clone.
pub struct SharedSink<S>(Arc<Mutex<S>>);

impl<S> Clone for SharedSink<S> {
    fn clone(&self) -> Self {
        SharedSink(Arc::clone(&self.0))
    }
}

impl<S> SharedSink<S> {
    pub fn new(sink: S) -> SharedSink<S> {
        SharedSink(Arc::new(Mutex::new(sink)))
    }
}

impl<S: PacketSink> PacketSink for SharedSink<S> {
    fn send(&mut self, dst: IpAddr, packet: &[u8]) -> io::Result<()> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("shared sink poisoned"))?
            .send(dst, packet)
    }
}

impl PcapFileSink {
    pub fn create(path: &Path) -> Result<PcapFileSink> {
        let dead =
            pcap::Capture::dead(pcap::Linktype(DLT_RAW)).context("cannot set up a pcap writer")?;
        let savefile = dead
            .savefile(path)
            .with_context(|| format!("cannot create pcap file {}", path.display()))?;
        Ok(PcapFileSink { savefile })
    }
}

impl PacketSink for PcapFileSink {
    fn send(&mut self, _dst: IpAddr, packet: &[u8]) -> io::Result<()> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let len = u32::try_from(packet.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "packet too large"))?;
        let header = pcap::PacketHeader {
            ts: libc::timeval {
                tv_sec: now.as_secs() as libc::time_t,
                tv_usec: now.subsec_micros() as libc::suseconds_t,
            },
            caplen: len,
            len,
        };
        self.savefile.write(&pcap::Packet::new(&header, packet));
        Ok(())
    }
}

impl Drop for PcapFileSink {
    fn drop(&mut self) {
        if let Err(err) = self.savefile.flush() {
            log::warn!("flushing the pcap output failed: {err}");
        }
    }
}

/// Keeps every packet in memory; clones share the same list (for tests).
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    packets: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl MemorySink {
    /// The packets sent so far, in order.
    pub fn packets(&self) -> Vec<Vec<u8>> {
        self.packets.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

impl PacketSink for MemorySink {
    fn send(&mut self, _dst: IpAddr, packet: &[u8]) -> io::Result<()> {
        self.packets
            .lock()
            .map_err(|_| io::Error::other("memory sink poisoned"))?
            .push(packet.to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sink_clones_share_packets() {
        let sink = MemorySink::default();
        let mut writer = sink.clone();
        writer
            .send("198.51.100.30".parse().unwrap(), &[0x45, 0])
            .unwrap();
        assert_eq!(sink.packets(), vec![vec![0x45, 0]]);
    }

    #[test]
    fn pcap_file_sink_writes_readable_records() {
        let path = std::env::temp_dir().join(format!("tcpcopy-sink-{}.pcap", std::process::id()));
        {
            let mut sink = PcapFileSink::create(&path).unwrap();
            sink.send("198.51.100.30".parse().unwrap(), &[0x45; 40])
                .unwrap();
        }
        let mut reader = pcap::Capture::from_file(&path).unwrap();
        assert_eq!(reader.get_datalink().0, DLT_RAW);
        assert_eq!(reader.next_packet().unwrap().data, &[0x45; 40][..]);
        std::fs::remove_file(&path).unwrap();
    }
}
