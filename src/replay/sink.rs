//! Packet sinks: where finished copies go. A raw IP socket in production, a pcap file for
//! inspection, memory for tests — one [`PacketSink`] trait for all three.

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

impl PacketSink for RawSocketSink {
    fn send(&mut self, dst: IpAddr, packet: &[u8]) -> io::Result<()> {
        let (fd, addr) = match dst {
            IpAddr::V4(_) => (&self.v4, SocketAddr::new(dst, 0)),
            IpAddr::V6(_) => (
                self.v6.as_ref().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::Unsupported, "no raw IPv6 socket")
                })?,
                SocketAddr::new(dst, 0),
            ),
        };
        let (storage, len) = socket_addr_to_raw(addr);
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
}

fn socket_addr_to_raw(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
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
