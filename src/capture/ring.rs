//! Copy's capture on Ethernet and loopback devices: a packet socket with a TPACKET_V3 ring
//! of its own, mapped once, in small blocks.
//!
//! Why not libpcap's ring: its TPACKET_V3 blocks are fixed at 256 KiB (the largest snap
//! length), so a few MiB make only a handful of blocks, each handed over after the block
//! timeout with a few packets in it; and its TPACKET_V2 (immediate) ring gives every packet
//! a slot of the snap length and wakes the reader once per packet. Here packets are packed
//! back to back into [`RingLayout::block_bytes`] blocks that the kernel hands over when full
//! or after [`BLOCK_TIMEOUT`]: at ordinary rates the reader wakes about once per timeout
//! instead of once per packet, and small packets (ACKs, short requests) cost their own size.
//! libpcap still compiles the BPF filter.
//!
//! Inbound packets only (`PACKET_IGNORE_OUTGOING` where the kernel has it, and the packet
//! type of each frame), unless [`RingOptions::both_directions`] asks for the host's own
//! packets too (`copy --compare`: the online server's replies). Several rings of one process on one device can share its packets by
//! flow (`PACKET_FANOUT`, hash mode).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::live::{BLOCK_TIMEOUT, Fanout, join_fanout};
use super::{Frame, Next, PacketSource, SourceStats, Unfiltered};

/// `ETH_P_ALL`, in network byte order as `socket(2)` and `bind(2)` take it.
const ALL_PROTOCOLS: u16 = (libc::ETH_P_ALL as u16).to_be();
/// `BPF_RET | BPF_K`: the filter instruction that returns how many bytes to capture.
const BPF_RET_K: u16 = 0x06;

/// The size of a ring and of its blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLayout {
    /// A power of two, at least a page, larger than the largest packet plus its header.
    pub block_bytes: usize,
    pub blocks: usize,
}

impl RingLayout {
    /// `total_bytes` (rounded down to whole blocks, at least 2) in blocks of at least
    /// `min_block` bytes (a power of two), each large enough for a frame of `max_frame` bytes
    /// (a jumbo MTU or a GRO super-segment makes them larger).
    pub fn new(total_bytes: usize, min_block: usize, max_frame: usize) -> RingLayout {
        let block_bytes = min_block.max((max_frame + Self::FRAME_OVERHEAD).next_power_of_two());
        RingLayout {
            block_bytes,
            blocks: (total_bytes / block_bytes).max(2),
        }
    }

    /// What a block spends besides the frame: its descriptor, the packet's header and
    /// address, alignment.
    const FRAME_OVERHEAD: usize =
        std::mem::size_of::<libc::tpacket_block_desc>() + libc::TPACKET3_HDRLEN + 16;

    fn total_bytes(self) -> usize {
        self.block_bytes * self.blocks
    }

    /// The longest frame a block holds after its descriptor and the packet's header.
    fn max_frame(self) -> usize {
        self.block_bytes - Self::FRAME_OVERHEAD
    }
}

/// Settings for a [`BlockRing`].
#[derive(Debug, Clone)]
pub struct RingOptions {
    pub device: String,
    pub layout: RingLayout,
    /// Bytes kept of each packet (at most what a block holds).
    pub snaplen: usize,
    pub fanout: Option<Fanout>,
    /// Also the packets this host sends.
    pub both_directions: bool,
}

/// A live capture into a TPACKET_V3 ring (see the module docs).
pub struct BlockRing {
    socket: OwnedFd,
    map: Mapping,
    layout: RingLayout,
    /// The block read now or next.
    current: usize,
    /// Where the reader is in the current block, once the kernel has handed it over.
    cursor: Option<Cursor>,
    device: String,
    snaplen: usize,
    fanout_group: Option<u16>,
    both_directions: bool,
    /// The kernel's counters, which reset at each read, summed.
    totals: SourceStats,
}

/// The next packet of a block that user space owns.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    packets_left: u32,
    offset: usize,
}

impl BlockRing {
    /// Opens the ring and joins its fanout group, capturing nothing until its filter is
    /// applied (see [`open_group`](super::open_group)).
    pub fn open_unfiltered(options: &RingOptions) -> Result<BlockRing> {
        let device = &options.device;
        let layout = options.layout;
        if !layout.block_bytes.is_power_of_two() || layout.block_bytes < page_size() {
            bail!(
                "capture block size {} is not a power of two of at least a page",
                layout.block_bytes
            );
        }
        let socket = packet_socket().map_err(|err| permission_hint(err, device))?;
        let fd = socket.as_raw_fd();
        set_option(
            fd,
            libc::PACKET_VERSION,
            &(libc::tpacket_versions::TPACKET_V3 as libc::c_int),
        )
        .context("the kernel has no TPACKET_V3 rings")?;
        let request = libc::tpacket_req3 {
            tp_block_size: to_u32(layout.block_bytes)?,
            tp_block_nr: to_u32(layout.blocks)?,
            tp_frame_size: to_u32(layout.block_bytes)?,
            tp_frame_nr: to_u32(layout.blocks)?,
            tp_retire_blk_tov: u32::try_from(BLOCK_TIMEOUT.as_millis()).unwrap_or(1),
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        set_option(fd, libc::PACKET_RX_RING, &request).with_context(|| {
            format!(
                "cannot set up a {} KiB capture ring on {device}",
                layout.total_bytes() >> 10
            )
        })?;
        let map = Mapping::new(fd, layout.total_bytes())
            .with_context(|| format!("cannot map the capture ring of {device}"))?;
        if !options.both_directions {
            // Older kernels lack it; the packet type of each frame is checked anyway.
            let _ = set_option(fd, libc::PACKET_IGNORE_OUTGOING, &(1 as libc::c_int));
        }
        attach_filter(fd, &[drop_all()]).context("cannot pause the capture")?;
        bind(fd, device)?;
        let fanout_group = match options.fanout {
            None => None,
            Some(fanout) => {
                let existing = match fanout {
                    Fanout::New => None,
                    Fanout::Join(id) => Some(id),
                };
                let id = join_fanout(fd, existing)
                    .with_context(|| format!("cannot join a fanout group on {device}"))?;
                Some(id)
            }
        };
        Ok(BlockRing {
            socket,
            map,
            layout,
            current: 0,
            cursor: None,
            device: device.clone(),
            snaplen: options.snaplen.min(layout.max_frame()),
            fanout_group,
            both_directions: options.both_directions,
            totals: SourceStats::default(),
        })
    }

    /// The status word of block `index`, shared with the kernel.
    fn block_status(&self, index: usize) -> &AtomicU32 {
        let offset = index * self.layout.block_bytes + BLOCK_STATUS_OFFSET;
        // SAFETY: in the mapping and 4-byte aligned (blocks are page aligned); the kernel
        // and this process hand the block over through this word only.
        unsafe { &*self.map.at(offset).cast::<AtomicU32>() }
    }

    /// Takes block `current` if the kernel has handed it over.
    fn take_block(&mut self) -> Option<Cursor> {
        if self.block_status(self.current).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
            return None;
        }
        let base = self.current * self.layout.block_bytes;
        // SAFETY: the descriptor is at the start of a block we now own.
        let header: libc::tpacket_hdr_v1 = unsafe {
            let desc = self.map.at(base).cast::<libc::tpacket_block_desc>();
            std::ptr::read(&raw const (*desc).hdr).bh1
        };
        Some(Cursor {
            packets_left: header.num_pkts,
            offset: header.offset_to_first_pkt as usize,
        })
    }

    /// Gives block `current` back to the kernel and moves on to the next.
    fn release_block(&mut self) {
        self.block_status(self.current)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.current = (self.current + 1) % self.layout.blocks;
        self.cursor = None;
    }
}

impl Unfiltered for BlockRing {
    fn fanout_group(&self) -> Option<u16> {
        self.fanout_group
    }

    /// Compiles `filter` (for Ethernet frames, keeping the snap length) and lets the packets
    /// it accepts in.
    fn apply_filter(&mut self, filter: &str) -> Result<()> {
        let device = &self.device;
        let program = compile_filter(filter, self.snaplen)
            .with_context(|| format!("bad capture filter on {device}: {filter}"))?;
        attach_filter(self.socket.as_raw_fd(), &program)
            .with_context(|| format!("cannot set the capture filter on {device}"))?;
        log::debug!("capturing on {device} with filter: {filter}");
        Ok(())
    }
}

/// Where a block descriptor keeps its status word (`hdr.bh1.block_status`).
const BLOCK_STATUS_OFFSET: usize = std::mem::offset_of!(libc::tpacket_block_desc, hdr);

/// Where a packet's `sockaddr_ll` starts, after its `tpacket3_hdr`.
const ADDRESS_OFFSET: usize = (std::mem::size_of::<libc::tpacket3_hdr>() + libc::TPACKET_ALIGNMENT
    - 1)
    & !(libc::TPACKET_ALIGNMENT - 1);

impl PacketSource for BlockRing {
    fn datalink(&self) -> i32 {
        pcap::Linktype::ETHERNET.0
    }

    fn next_frame(&mut self) -> Result<Next<'_>> {
        loop {
            let cursor = match self.cursor {
                Some(cursor) => cursor,
                None => match self.take_block() {
                    Some(cursor) => cursor,
                    None => return Ok(Next::Idle),
                },
            };
            if cursor.packets_left == 0 {
                self.release_block();
                continue;
            }
            let block = self.current * self.layout.block_bytes;
            let packet = block + cursor.offset;
            if cursor.offset + ADDRESS_OFFSET + std::mem::size_of::<libc::sockaddr_ll>()
                > self.layout.block_bytes
            {
                bail!(
                    "capture ring of {}: packet header past its block",
                    self.device
                );
            }
            // SAFETY: the header lies within a block we own (checked above).
            let (header, address) = unsafe {
                (
                    std::ptr::read_unaligned(self.map.at(packet).cast::<libc::tpacket3_hdr>()),
                    std::ptr::read_unaligned(
                        self.map
                            .at(packet + ADDRESS_OFFSET)
                            .cast::<libc::sockaddr_ll>(),
                    ),
                )
            };
            self.cursor = Some(Cursor {
                packets_left: cursor.packets_left - 1,
                offset: cursor.offset + header.tp_next_offset as usize,
            });
            if address.sll_pkttype == libc::PACKET_OUTGOING && !self.both_directions {
                continue;
            }
            let start = cursor.offset + usize::from(header.tp_mac);
            let len = header.tp_snaplen as usize;
            if start + len > self.layout.block_bytes {
                bail!("capture ring of {}: packet past its block", self.device);
            }
            // SAFETY: within a block we own until the next call releases it.
            let data = unsafe { std::slice::from_raw_parts(self.map.at(block + start), len) };
            return Ok(Next::Frame(Frame {
                timestamp: Duration::new(u64::from(header.tp_sec), header.tp_nsec.min(999_999_999)),
                data,
            }));
        }
    }

    fn stats(&mut self) -> SourceStats {
        let mut stats = libc::tpacket_stats_v3 {
            tp_packets: 0,
            tp_drops: 0,
            tp_freeze_q_cnt: 0,
        };
        let mut len = std::mem::size_of_val(&stats) as libc::socklen_t;
        // SAFETY: a buffer of the size PACKET_STATISTICS fills for TPACKET_V3.
        let rc = unsafe {
            libc::getsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut stats).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            self.totals.received += u64::from(stats.tp_packets);
            self.totals.dropped += u64::from(stats.tp_drops);
        }
        self.totals
    }

    fn name(&self) -> &str {
        &self.device
    }

    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.socket.as_raw_fd())
    }

    fn max_frame_len(&self) -> usize {
        self.snaplen
    }
}

/// The ring's memory, shared with the kernel; unmapped on drop.
struct Mapping {
    base: *mut u8,
    len: usize,
}

// SAFETY: the mapping belongs to one ring, used by one thread at a time.
unsafe impl Send for Mapping {}

impl Mapping {
    fn new(fd: RawFd, len: usize) -> io::Result<Mapping> {
        // SAFETY: maps the ring the kernel set up on `fd`; checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            base: base.cast(),
            len,
        })
    }

    /// The address `offset` bytes into the mapping; callers keep offsets below its length.
    fn at(&self, offset: usize) -> *const u8 {
        debug_assert!(offset < self.len);
        self.base.wrapping_add(offset)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// A packet socket that receives nothing until bound.
fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds the socket to every protocol on `device`.
fn bind(fd: RawFd, device: &str) -> Result<()> {
    let name = std::ffi::CString::new(device).context("device name with a NUL byte")?;
    // SAFETY: a NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        bail!("no capture device named {device}");
    }
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = ALL_PROTOCOLS;
    address.sll_ifindex = i32::try_from(index).context("interface index out of range")?;
    // SAFETY: a sockaddr_ll and its size.
    let rc = unsafe {
        libc::bind(
            fd,
            (&raw const address).cast(),
            std::mem::size_of_val(&address) as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("cannot capture on {device}"));
    }
    Ok(())
}

/// `setsockopt(fd, SOL_PACKET, option, value)`.
fn set_option<T>(fd: RawFd, option: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is the type the option expects, passed with its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            option,
            std::ptr::from_ref(value).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The filter instruction that takes nothing.
fn drop_all() -> libc::sock_filter {
    libc::sock_filter {
        code: BPF_RET_K,
        jt: 0,
        jf: 0,
        k: 0,
    }
}

/// Replaces the socket's filter with `program`.
fn attach_filter(fd: RawFd, program: &[libc::sock_filter]) -> io::Result<()> {
    let len = u16::try_from(program.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "filter too long"))?;
    let fprog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: the program outlives the call; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&raw const fprog).cast(),
            std::mem::size_of_val(&fprog) as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `filter` compiled by libpcap for Ethernet frames, each accepted packet kept up to
/// `snaplen` bytes.
fn compile_filter(filter: &str, snaplen: usize) -> Result<Vec<libc::sock_filter>> {
    const _: () = assert!(
        std::mem::size_of::<pcap::BpfInstruction>() == std::mem::size_of::<libc::sock_filter>()
    );
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET)?;
    let program = dead.compile(filter, true)?;
    let instructions = program.get_instructions();
    // SAFETY: BpfInstruction is a transparent wrapper of `struct bpf_insn`, which has the
    // layout of `struct sock_filter` (size checked above).
    let mut code = unsafe {
        std::slice::from_raw_parts(
            instructions.as_ptr().cast::<libc::sock_filter>(),
            instructions.len(),
        )
    }
    .to_vec();
    let keep = u32::try_from(snaplen).unwrap_or(u32::MAX);
    for instruction in &mut code {
        if instruction.code == BPF_RET_K && instruction.k != 0 {
            instruction.k = keep;
        }
    }
    Ok(code)
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

fn to_u32(value: usize) -> Result<u32> {
    u32::try_from(value).context("capture ring too large")
}

/// Names the missing capability when the kernel refuses a packet socket.
fn permission_hint(err: io::Error, device: &str) -> anyhow::Error {
    if err.kind() == io::ErrorKind::PermissionDenied {
        anyhow::anyhow!("cannot capture on {device}: {err} (capture needs root or CAP_NET_RAW)")
    } else {
        anyhow::Error::new(err).context(format!("cannot capture on {device}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_has_whole_blocks_and_at_least_two() {
        assert_eq!(RingLayout::new(4 << 20, 8192, 1532).blocks, 512);
        assert_eq!(RingLayout::new(1000, 8192, 1532).blocks, 2);
        assert!(RingLayout::new(4 << 20, 8192, 1532).max_frame() >= 1532);
    }

    #[test]
    fn blocks_grow_to_hold_the_largest_frame() {
        // A jumbo MTU without offloads, and a GRO super-segment.
        let jumbo = RingLayout::new(4 << 20, 8192, 9032);
        assert_eq!(jumbo.block_bytes, 16 << 10);
        assert!(jumbo.max_frame() >= 9032);
        let merged = RingLayout::new(16 << 20, 8192, 65_535);
        assert_eq!((merged.block_bytes, merged.blocks), (128 << 10, 128));
        assert!(merged.max_frame() >= 65_535);
    }

    #[test]
    fn the_filter_keeps_the_snap_length() {
        let program = compile_filter("tcp dst port 80", 1532).unwrap();
        let returns: Vec<u32> = program
            .iter()
            .filter(|insn| insn.code == BPF_RET_K)
            .map(|insn| insn.k)
            .collect();
        assert!(
            returns.contains(&1532) && returns.contains(&0),
            "{returns:?}"
        );
        assert!(returns.iter().all(|&k| k == 0 || k == 1532));
    }

    #[test]
    fn a_bad_filter_is_an_error() {
        assert!(compile_filter("tcp dst port banana", 1532).is_err());
    }
}
