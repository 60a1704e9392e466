//! What a device does to received packets before capture sees them: its MTU, and whether
//! receive offloads (GRO, LRO) merge segments into super-segments larger than the MTU.
//!
//! Copy sizes its capture ring from this: without receive offloads a packet is at most one
//! MTU, so small blocks hold many; with them a packet can be 64 KiB. And only a device whose
//! frames are Ethernet (or loopback, which looks the same) can use copy's own ring.

use std::io;

/// `SIOCETHTOOL` and the ethtool commands used here (linux/ethtool.h, linux/sockios.h).
mod ethtool {
    pub const SIOCETHTOOL: libc::c_ulong = 0x8946;
    pub const GET_GRO: u32 = 0x0000_002b;
    pub const GET_FLAGS: u32 = 0x0000_0025;
    pub const FLAG_LRO: u32 = 1 << 15;
}

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// How `device` hands received packets to capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveShape {
    pub mtu: usize,
    /// GRO or LRO is on: captured packets may be far larger than the MTU.
    pub merges_segments: bool,
    /// Frames on the device start with an Ethernet header (ARPHRD_ETHER or loopback).
    pub ethernet_frames: bool,
}

/// `ARPHRD_ETHER` and `ARPHRD_LOOPBACK` (linux/if_arp.h), as /sys/class/net/DEV/type says.
const ETHERNET_TYPES: [&str; 2] = ["1", "772"];

/// Reads the MTU and receive offloads of `device`. A device whose offloads cannot be read
/// (no ethtool support) is taken to merge segments, the safe assumption.
pub fn receive_shape(device: &str) -> io::Result<ReceiveShape> {
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{device}/mtu"))?
        .trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "unreadable MTU"))?;
    let gro = ethtool_value(device, ethtool::GET_GRO).map(|on| on != 0);
    let lro = ethtool_value(device, ethtool::GET_FLAGS).map(|flags| flags & ethtool::FLAG_LRO != 0);
    let merges_segments = gro.unwrap_or(true) || lro.unwrap_or(false);
    let link_type = std::fs::read_to_string(format!("/sys/class/net/{device}/type"))?;
    Ok(ReceiveShape {
        mtu,
        merges_segments,
        ethernet_frames: ETHERNET_TYPES.contains(&link_type.trim()),
    })
}

/// One ethtool "get value" command on `device`.
fn ethtool_value(device: &str, cmd: u32) -> io::Result<u32> {
    let name = device.as_bytes();
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "device name too long",
        ));
    }
    // SAFETY: a plain datagram socket for the ioctl, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut value = EthtoolValue { cmd, data: 0 };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, &byte) in request.ifr_name.iter_mut().zip(name) {
        *slot = byte as libc::c_char;
    }
    request.ifr_ifru.ifru_data = (&raw mut value).cast();
    // SAFETY: SIOCETHTOOL with an ifreq whose data points at a live ethtool_value.
    let rc = unsafe { libc::ioctl(fd, ethtool::SIOCETHTOOL as _, &raw mut request) };
    let result = if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(value.data)
    };
    // SAFETY: fd is ours and open.
    unsafe { libc::close(fd) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_a_shape() {
        let shape = receive_shape("lo").unwrap();
        assert!(shape.mtu >= 1500);
        assert!(shape.ethernet_frames);
    }

    #[test]
    fn a_missing_device_is_an_error() {
        assert!(receive_shape("no-such-dev0").is_err());
    }
}
