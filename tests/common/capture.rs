//! Packet captures in a lab host: `tcpdump` writing a pcap file, stopped cleanly with SIGINT,
//! and the file read back with a BPF filter into simple TCP packet records.

use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};

use super::process::Proc;

/// How long tcpdump may take to report that it listens, and to exit after SIGINT.
const TCPDUMP_TIMEOUT: Duration = Duration::from_secs(5);

/// A running tcpdump on one host's `eth0`.
#[derive(Debug)]
pub struct Capture {
    proc: Proc,
    file: PathBuf,
}

/// tcpdump's own counters, printed when it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureSummary {
    /// Packets written to the file.
    pub captured: u64,
    /// Packets that passed the filter in the kernel (more than `captured` means some were
    /// still queued when tcpdump stopped).
    pub received_by_filter: u64,
    /// Packets the kernel dropped before tcpdump read them.
    pub dropped_by_kernel: u64,
}

/// The parts of a captured TCP/IPv4 packet the tests look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket {
    /// Source address and port.
    pub src: SocketAddrV4,
    /// Destination address and port.
    pub dst: SocketAddrV4,
    /// Sequence number.
    pub seq: u32,
    /// SYN flag.
    pub syn: bool,
    /// ACK flag.
    pub ack: bool,
    /// Payload length in bytes.
    pub payload_len: usize,
}

impl Capture {
    /// Wraps a tcpdump started with [`Capture::tcpdump_args`] and waits until it listens.
    pub fn started(mut proc: Proc, file: PathBuf) -> Result<Capture> {
        super::wait_until(TCPDUMP_TIMEOUT, "tcpdump to listen", || {
            proc.ensure_running()?;
            Ok(proc.stderr().contains("listening on"))
        })?;
        Ok(Capture { proc, file })
    }

    /// The tcpdump command line that writes packets matching `filter` on `eth0` to `file`:
    /// every packet written at once (`--immediate-mode -U`: without immediate mode, packets
    /// wait up to a second in the ring and are lost on SIGINT), whole packets, still root when
    /// opening the file.
    pub fn tcpdump_args(file: &Path, filter: &str) -> Vec<String> {
        let file = file.to_string_lossy().into_owned();
        let options = [
            "-i",
            "eth0",
            "-nn",
            "--immediate-mode",
            "-U",
            "-s",
            "0",
            "-Z",
            "root",
        ];
        let mut args = vec!["tcpdump".to_owned()];
        args.extend(options.map(str::to_owned));
        args.extend(["-w".to_owned(), file, filter.to_owned()]);
        args
    }

    /// The pcap file tcpdump writes.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Stops tcpdump with SIGINT and returns its counters.
    pub fn stop(&mut self) -> Result<CaptureSummary> {
        let status = self.proc.stop(libc::SIGINT, TCPDUMP_TIMEOUT)?;
        let stderr = self.proc.stderr();
        if !status.success() {
            bail!("tcpdump exited with {status}; stderr:\n{stderr}");
        }
        Ok(CaptureSummary {
            captured: counter(&stderr, "captured")?,
            received_by_filter: counter(&stderr, "received by filter")?,
            dropped_by_kernel: counter(&stderr, "dropped by kernel")?,
        })
    }

    /// The TCP/IPv4 packets in the file so far that match the BPF `filter` ("" for all).
    pub fn packets(&self, filter: &str) -> Result<Vec<TcpPacket>> {
        let context = || format!("reading capture {}", self.file.display());
        let mut file = pcap::Capture::from_file(&self.file).with_context(context)?;
        if file.get_datalink() != pcap::Linktype::ETHERNET {
            bail!(
                "{}: link type {:?}, expected Ethernet",
                self.file.display(),
                file.get_datalink()
            );
        }
        file.filter(filter, true)
            .with_context(|| format!("compiling filter {filter:?}"))?;
        let mut packets = Vec::new();
        loop {
            match file.next_packet() {
                Ok(packet) => packets.extend(tcp_packet(packet.data)),
                Err(pcap::Error::NoMorePackets) => return Ok(packets),
                Err(err) => return Err(err).with_context(context),
            }
        }
    }

    /// How many TCP/IPv4 packets in the file so far match `filter`.
    pub fn count(&self, filter: &str) -> Result<usize> {
        Ok(self.packets(filter)?.len())
    }
}

/// Parses one Ethernet frame; `None` for anything but TCP over IPv4.
fn tcp_packet(frame: &[u8]) -> Option<TcpPacket> {
    let sliced = SlicedPacket::from_ethernet(frame).ok()?;
    let Some(NetSlice::Ipv4(ip)) = sliced.net else {
        return None;
    };
    let Some(TransportSlice::Tcp(tcp)) = sliced.transport else {
        return None;
    };
    let header = ip.header();
    Some(TcpPacket {
        src: SocketAddrV4::new(header.source_addr(), tcp.source_port()),
        dst: SocketAddrV4::new(header.destination_addr(), tcp.destination_port()),
        seq: tcp.sequence_number(),
        syn: tcp.syn(),
        ack: tcp.ack(),
        payload_len: tcp.payload().len(),
    })
}

/// tcpdump's `N packets LABEL` line (`1 packet LABEL` for one).
fn counter(stderr: &str, label: &str) -> Result<u64> {
    stderr
        .lines()
        .find_map(|line| {
            let count = line.trim().strip_suffix(label)?.trim_end();
            let count = count
                .strip_suffix("packets")
                .or_else(|| count.strip_suffix("packet"))?;
            count.trim().parse().ok()
        })
        .with_context(|| format!("tcpdump did not report {label:?}; stderr:\n{stderr}"))
}
