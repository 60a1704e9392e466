//! The owned TCP segment record: the only packet type the session engine sees.
//!
//! A [`Segment`] holds every header field the replay logic reads or writes, for IPv4 and
//! IPv6 alike; the payload stays in the capture buffer and travels beside it as a slice.
//! This file holds data types only: parsing lives in the link/IP/TCP views, emitting in
//! `emit`.

use std::fmt;
use std::net::SocketAddr;

use super::SeqNum;

/// The TCP control bits (RFC 9293 §3.1), as they sit in byte 13 of the header.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x01);
    pub const SYN: TcpFlags = TcpFlags(0x02);
    pub const RST: TcpFlags = TcpFlags(0x04);
    pub const PSH: TcpFlags = TcpFlags(0x08);
    pub const ACK: TcpFlags = TcpFlags(0x10);
    pub const URG: TcpFlags = TcpFlags(0x20);
    pub const ECE: TcpFlags = TcpFlags(0x40);
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// True when every bit of `other` is set in `self`.
    pub fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` with every bit of `other` cleared.
    pub fn without(self, other: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & !other.0)
    }

    pub fn syn(self) -> bool {
        self.contains(Self::SYN)
    }
    pub fn ack(self) -> bool {
        self.contains(Self::ACK)
    }
    pub fn fin(self) -> bool {
        self.contains(Self::FIN)
    }
    pub fn rst(self) -> bool {
        self.contains(Self::RST)
    }
    pub fn psh(self) -> bool {
        self.contains(Self::PSH)
    }
}

impl std::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for TcpFlags {
    /// tcpdump's letters: `S` `F` `R` `P` `.` (ACK) `U` `E` `W`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(TcpFlags, char); 8] = [
            (TcpFlags::SYN, 'S'),
            (TcpFlags::FIN, 'F'),
            (TcpFlags::RST, 'R'),
            (TcpFlags::PSH, 'P'),
            (TcpFlags::URG, 'U'),
            (TcpFlags::ECE, 'E'),
            (TcpFlags::CWR, 'W'),
            (TcpFlags::ACK, '.'),
        ];
        let mut any = false;
        for (flag, name) in NAMES {
            if self.contains(flag) {
                write!(f, "{name}")?;
                any = true;
            }
        }
        if !any {
            write!(f, "none")?;
        }
        Ok(())
    }
}

/// The TCP timestamps option (RFC 7323 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamps {
    pub tsval: u32,
    pub tsecr: u32,
}

/// The TCP options tcpcopy reads and writes. Others (SACK blocks, MD5, ...) are dropped on
/// parse: a replayed session never negotiates them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpOptions {
    /// Maximum segment size (RFC 9293 §3.7.1), only meaningful on SYNs.
    pub mss: Option<u16>,
    /// Window scale shift count (RFC 7323 §2), only meaningful on SYNs.
    pub window_scale: Option<u8>,
    /// SACK permitted (RFC 2018), only meaningful on SYNs.
    pub sack_permitted: bool,
    /// Timestamps (RFC 7323 §3).
    pub timestamps: Option<Timestamps>,
}

/// One TCP segment's headers, independent of the IP version it travelled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Sender address and port.
    pub src: SocketAddr,
    /// Receiver address and port.
    pub dst: SocketAddr,
    pub seq: SeqNum,
    pub ack: SeqNum,
    pub flags: TcpFlags,
    /// The raw window field, unscaled.
    pub window: u16,
    pub options: TcpOptions,
    /// IPv4 identification (0 for IPv6).
    pub ip_id: u16,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// Length of the TCP payload that travels beside this record.
    pub payload_len: usize,
}

impl Segment {
    /// The sequence space this segment occupies: payload bytes plus one for SYN and for FIN
    /// (RFC 9293 §3.4).
    pub fn seq_len(&self) -> u32 {
        self.payload_len as u32 + u32::from(self.flags.syn()) + u32::from(self.flags.fin())
    }

    /// The sequence number just after this segment.
    pub fn seq_end(&self) -> SeqNum {
        self.seq + self.seq_len()
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} > {} [{}] seq {} ack {} win {} len {}",
            self.src, self.dst, self.flags, self.seq, self.ack, self.window, self.payload_len
        )
    }
}
