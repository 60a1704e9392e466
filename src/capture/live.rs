//! Live capture on a named device with libpcap: intercept's, and copy's on devices its own
//! ring does not serve (`ring.rs`: link types other than Ethernet, VLAN filters).
//!
//! Inbound only, non-blocking with `poll(2)` on the capture fd: libpcap's blocking mode never
//! returns on an idle interface, which would make shutdown hang. Two ring layouts:
//! - [`RingMode::Immediate`]: every packet wakes the reader at once, in fixed slots as large
//!   as the snap length (TPACKET_V2). Right for small snap lengths (intercept's headers).
//! - [`RingMode::Blocks`]: packets packed back to back in blocks handed over when full or
//!   after [`BLOCK_TIMEOUT`] (TPACKET_V3). Whole packets cost their own size, not a 64 KiB
//!   slot, so a few MiB hold thousands of them; the price is up to a millisecond of delay
//!   at low rates. For whole packets on a device that merges segments (GRO/LRO); libpcap's
//!   blocks are 256 KiB, which is why copy has a ring of its own where it can.
//!
//! Several captures of one process on one device can share its packets by flow
//! (`PACKET_FANOUT`, hash mode): each flow reaches exactly one of them.

use std::os::fd::{AsRawFd, RawFd};

use anyhow::{Context, Result};
use pcap::{Active, Capture, Direction};

use std::time::Duration;

use super::{Frame, Next, PacketSource, SourceStats, Unfiltered};

/// How long a block of a [`RingMode::Blocks`] ring (or of copy's own ring) may wait for more
/// packets before the kernel hands it over. libpcap passes the capture timeout as the block
/// timeout.
pub const BLOCK_TIMEOUT: Duration = Duration::from_millis(1);

/// How the kernel ring holds captured packets (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingMode {
    Immediate,
    Blocks,
}

/// Which fanout group a capture joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fanout {
    /// A new group, its id chosen by the kernel (see [`LiveCapture::fanout_group`]).
    New,
    /// The group of an earlier capture of this process on the same device.
    Join(u16),
}

/// Settings for a live capture.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub device: String,
    pub filter: String,
    /// Kernel capture buffer size in bytes.
    pub buffer_bytes: i32,
    pub snaplen: i32,
    pub ring: RingMode,
    /// Share the device's packets by flow with other captures of a fanout group.
    pub fanout: Option<Fanout>,
}

/// A live libpcap capture.
pub struct LiveCapture {
    capture: Capture<Active>,
    device: String,
    fanout_group: Option<u16>,
    snaplen: usize,
}

impl LiveCapture {
    /// Opens the capture and applies its filter.
    pub fn open(options: &LiveOptions) -> Result<LiveCapture> {
        let mut capture = LiveCapture::open_unfiltered(options)?;
        capture.apply_filter(&options.filter)?;
        Ok(capture)
    }

    /// Opens the capture (and joins its fanout group) without its filter (see
    /// [`open_group`](super::open_group)).
    pub fn open_unfiltered(options: &LiveOptions) -> Result<LiveCapture> {
        let device = &options.device;
        let immediate = options.ring == RingMode::Immediate;
        let timeout_ms = i32::try_from(BLOCK_TIMEOUT.as_millis()).unwrap_or(1);
        let capture = Capture::from_device(device.as_str())
            .and_then(|c| {
                c.immediate_mode(immediate)
                    .timeout(timeout_ms)
                    .promisc(false)
                    .snaplen(options.snaplen)
                    .buffer_size(options.buffer_bytes)
                    .open()
            })
            .map_err(pcap_error)
            .with_context(|| format!("cannot open capture on {device}"))?;
        let mut capture = capture
            .setnonblock()
            .with_context(|| format!("cannot make capture on {device} non-blocking"))?;
        capture
            .direction(Direction::In)
            .with_context(|| format!("cannot capture inbound packets only on {device}"))?;
        // Nothing until the real filter is in place.
        capture
            .filter("less 1", true)
            .with_context(|| format!("cannot pause capture on {device}"))?;
        let fanout_group = match options.fanout {
            None => None,
            Some(fanout) => {
                let existing = match fanout {
                    Fanout::New => None,
                    Fanout::Join(id) => Some(id),
                };
                let id = join_fanout(capture.as_raw_fd(), existing)
                    .with_context(|| format!("cannot join a fanout group on {device}"))?;
                Some(id)
            }
        };
        Ok(LiveCapture {
            capture,
            device: device.clone(),
            fanout_group,
            snaplen: usize::try_from(options.snaplen).unwrap_or(0),
        })
    }

    /// Captures what the device sends as well as what it receives (`copy --compare`: the
    /// online server's replies).
    pub fn capture_both_directions(&mut self) -> Result<()> {
        let device = &self.device;
        self.capture
            .direction(Direction::InOut)
            .with_context(|| format!("cannot capture both directions on {device}"))
    }
}

impl Unfiltered for LiveCapture {
    fn fanout_group(&self) -> Option<u16> {
        self.fanout_group
    }

    /// Sets the BPF filter; libpcap discards what the capture held before.
    fn apply_filter(&mut self, filter: &str) -> Result<()> {
        let device = &self.device;
        self.capture
            .filter(filter, true)
            .with_context(|| format!("bad capture filter on {device}: {filter}"))?;
        log::debug!("capturing on {device} with filter: {filter}");
        Ok(())
    }
}

/// `PACKET_FANOUT` and its flags (linux/if_packet.h).
mod fanout {
    pub const OPTION: libc::c_int = 18;
    pub const HASH: u32 = 0;
    pub const FLAG_UNIQUEID: u32 = 0x2000;
    pub const FLAG_DEFRAG: u32 = 0x8000;
}

/// Makes the packet socket `fd` a member of a fanout group in hash mode: the kernel sends
/// every packet of a flow to the same member (fragments reassembled first so that they hash
/// like the rest of their flow). `None` creates a new group with an id the kernel picks, so
/// that no other process's group is joined by chance. Returns the group's id.
pub(super) fn join_fanout(fd: libc::c_int, group: Option<u16>) -> std::io::Result<u16> {
    let mode = fanout::HASH | fanout::FLAG_DEFRAG;
    let arg: u32 = match group {
        Some(id) => u32::from(id) | (mode << 16),
        None => (mode | fanout::FLAG_UNIQUEID) << 16,
    };
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: a 4-byte option value, as PACKET_FANOUT expects.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            fanout::OPTION,
            (&raw const arg).cast(),
            len,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut joined: u32 = 0;
    // SAFETY: a 4-byte buffer and its length.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            fanout::OPTION,
            (&raw mut joined).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((joined & 0xffff) as u16)
}

/// Turns libpcap's permission message into one that names the missing capability.
fn pcap_error(err: pcap::Error) -> anyhow::Error {
    let text = err.to_string();
    if text.contains("ermission") || text.contains("not permitted") {
        anyhow::anyhow!("{text} (capture needs root or CAP_NET_RAW)")
    } else {
        anyhow::Error::new(err)
    }
}

impl PacketSource for LiveCapture {
    fn datalink(&self) -> i32 {
        self.capture.get_datalink().0
    }

    fn next_frame(&mut self) -> Result<Next<'_>> {
        let device = &self.device;
        match self.capture.next_packet() {
            Ok(packet) => Ok(Next::Frame(Frame::from_pcap(packet))),
            Err(pcap::Error::TimeoutExpired) => Ok(Next::Idle),
            Err(err) => Err(err).with_context(|| format!("capture on {device} failed")),
        }
    }

    fn stats(&mut self) -> SourceStats {
        match self.capture.stats() {
            Ok(stat) => SourceStats {
                received: u64::from(stat.received),
                dropped: u64::from(stat.dropped) + u64::from(stat.if_dropped),
            },
            Err(_) => SourceStats::default(),
        }
    }

    fn name(&self) -> &str {
        &self.device
    }

    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.as_raw_fd())
    }

    fn max_frame_len(&self) -> usize {
        self.snaplen
    }
}

impl AsRawFd for LiveCapture {
    /// The capture's descriptor, for callers that poll several sources in one loop.
    fn as_raw_fd(&self) -> RawFd {
        self.capture.as_raw_fd()
    }
}
