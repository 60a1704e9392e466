//! Reading and writing the TCP options tcpcopy understands (RFC 9293 §3.2, §3.7.1;
//! RFC 7323; RFC 2018) into and out of [`TcpOptions`].
//!
//! Parsing skips NOPs and unknown options by their length and stops at End of Option List;
//! a length that cannot be right is an error. Emission writes Linux's layout, always a
//! multiple of 4 bytes, so the header needs no further padding.

use super::error::{Layer, PacketError, Result};
use super::{TcpOptions, Timestamps};

/// Option kinds (IANA "TCP Option Kind Numbers").
mod kind {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const TIMESTAMPS: u8 = 8;
}

/// The most option bytes a header can carry (60-byte header minus the fixed 20).
pub const MAX_OPTIONS_LEN: usize = 40;

impl TcpOptions {
    /// Reads the option bytes of a TCP header.
    ///
    /// NOPs and options of unknown kind are skipped by their length; parsing stops at End
    /// of Option List (RFC 9293 §3.2). A missing length byte, a length below 2, an option
    /// running past the bytes given, or a known option with the wrong length is
    /// [`PacketError::Malformed`]. A repeated option keeps its last value.
    pub fn parse(mut bytes: &[u8]) -> Result<TcpOptions> {
        let mut options = TcpOptions::default();
        while let Some((&kind, rest)) = bytes.split_first() {
            match kind {
                kind::END => break,
                kind::NOP => {
                    bytes = rest;
                    continue;
                }
                _ => {}
            }
            let len = usize::from(*rest.first().ok_or(malformed("option length missing"))?);
            if len < 2 {
                return Err(malformed("option length below 2"));
            }
            let (option, rest) = bytes
                .split_at_checked(len)
                .ok_or(malformed("option runs past the header"))?;
            let body = option.get(2..).unwrap_or_default();
            match kind {
                kind::MSS => {
                    let mss = exact::<2>(body, "mss option length not 4")?;
                    options.mss = Some(u16::from_be_bytes(mss));
                }
                kind::WINDOW_SCALE => {
                    let [shift] = exact::<1>(body, "window scale option length not 3")?;
                    options.window_scale = Some(shift);
                }
                kind::SACK_PERMITTED => {
                    exact::<0>(body, "sack-permitted option length not 2")?;
                    options.sack_permitted = true;
                }
                kind::TIMESTAMPS => {
                    let ts = exact::<8>(body, "timestamps option length not 10")?;
                    let [a, b, c, d, e, f, g, h] = ts;
                    options.timestamps = Some(Timestamps {
                        tsval: u32::from_be_bytes([a, b, c, d]),
                        tsecr: u32::from_be_bytes([e, f, g, h]),
                    });
                }
                _ => {}
            }
            bytes = rest;
        }
        Ok(options)
    }

    /// The number of bytes [`emit`](Self::emit) writes: a multiple of 4, at most 20
    /// (well under [`MAX_OPTIONS_LEN`]).
    pub fn wire_len(&self) -> usize {
        let mss = if self.mss.is_some() { 4 } else { 0 };
        let sack_and_timestamps = match (self.timestamps, self.sack_permitted) {
            (Some(_), _) => 12,
            (None, true) => 4,
            (None, false) => 0,
        };
        let window_scale = if self.window_scale.is_some() { 4 } else { 0 };
        mss + sack_and_timestamps + window_scale
    }

    /// Appends the options in Linux's order and padding (`tcp_options_write`): MSS;
    /// SACK-permitted folded into the timestamps' alignment padding (or NOP NOP before
    /// either alone); NOP before window scale. A SYN with all four is
    /// `MSS, SACK_PERM, TS, NOP, WS`; a data segment with timestamps is `NOP, NOP, TS`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        if let Some(mss) = self.mss {
            out.extend_from_slice(&[kind::MSS, 4]);
            out.extend_from_slice(&mss.to_be_bytes());
        }
        match (self.timestamps, self.sack_permitted) {
            (Some(ts), sack_permitted) => {
                let lead = if sack_permitted {
                    [kind::SACK_PERMITTED, 2]
                } else {
                    [kind::NOP, kind::NOP]
                };
                out.extend_from_slice(&lead);
                out.extend_from_slice(&[kind::TIMESTAMPS, 10]);
                out.extend_from_slice(&ts.tsval.to_be_bytes());
                out.extend_from_slice(&ts.tsecr.to_be_bytes());
            }
            (None, true) => out.extend_from_slice(&[kind::NOP, kind::NOP, kind::SACK_PERMITTED, 2]),
            (None, false) => {}
        }
        if let Some(shift) = self.window_scale {
            out.extend_from_slice(&[kind::NOP, kind::WINDOW_SCALE, 3, shift]);
        }
    }
}

fn malformed(what: &'static str) -> PacketError {
    PacketError::Malformed {
        layer: Layer::Tcp,
        what,
    }
}

/// The body of a fixed-length option, or an error naming the option.
fn exact<const N: usize>(body: &[u8], what: &'static str) -> Result<[u8; N]> {
    <[u8; N]>::try_from(body).map_err(|_| malformed(what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::testing::arbitrary_options;
    use proptest::prelude::*;

    const ALL: TcpOptions = TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some(Timestamps {
            tsval: 0x0102_0304,
            tsecr: 0,
        }),
    };

    /// The options of a Linux SYN as tcpdump shows them:
    /// `[mss 1460,sackOK,TS val 16909060 ecr 0,nop,wscale 7]`.
    const LINUX_SYN: [u8; 20] = [
        2, 4, 0x05, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0, 1, 3, 3, 7,
    ];

    fn emitted(options: &TcpOptions) -> Vec<u8> {
        let mut out = Vec::new();
        options.emit(&mut out);
        out
    }

    #[test]
    fn deconstruct_linux_syn() {
        assert_eq!(TcpOptions::parse(&LINUX_SYN).unwrap(), ALL);
    }

    #[test]
    fn construct_linux_syn() {
        assert_eq!(emitted(&ALL), LINUX_SYN);
        assert_eq!(ALL.wire_len(), LINUX_SYN.len());
    }

    #[test]
    fn data_segment_layout_is_nop_nop_timestamps() {
        let options = TcpOptions {
            timestamps: Some(Timestamps { tsval: 5, tsecr: 6 }),
            ..TcpOptions::default()
        };
        assert_eq!(emitted(&options), [1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6]);
        assert_eq!(emitted(&TcpOptions::default()), [] as [u8; 0]);
    }

    #[test]
    fn unknown_and_sack_blocks_are_skipped() {
        // MD5 signature (kind 19, 18 bytes), a SACK block (kind 5, 10 bytes), then MSS.
        let mut bytes = vec![19, 18];
        bytes.extend_from_slice(&[0xaa; 16]);
        bytes.extend_from_slice(&[5, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        bytes.extend_from_slice(&[2, 4, 0x02, 0x18]);
        let options = TcpOptions::parse(&bytes).unwrap();
        assert_eq!(
            options,
            TcpOptions {
                mss: Some(536),
                ..TcpOptions::default()
            }
        );
    }

    #[test]
    fn end_of_list_stops_parsing() {
        let options = TcpOptions::parse(&[1, 3, 3, 2, 0, 2, 1, 0xff]).unwrap();
        assert_eq!(options.window_scale, Some(2));
        assert_eq!(options.mss, None);
    }

    #[test]
    fn malformed_lengths_are_errors() {
        let cases: [(&[u8], &str); 6] = [
            (&[2], "option length missing"),
            (&[2, 0, 0, 0], "option length below 2"),
            (&[30, 1, 0, 0], "option length below 2"),
            (&[1, 8, 10, 0, 0], "option runs past the header"),
            (&[2, 3, 5, 1], "mss option length not 4"),
            (
                &[8, 9, 0, 0, 0, 0, 0, 0, 0, 0],
                "timestamps option length not 10",
            ),
        ];
        for (bytes, what) in cases {
            assert_eq!(
                TcpOptions::parse(bytes),
                Err(PacketError::Malformed {
                    layer: Layer::Tcp,
                    what
                }),
                "{bytes:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn round_trip(options in arbitrary_options()) {
            let bytes = emitted(&options);
            prop_assert_eq!(bytes.len(), options.wire_len());
            prop_assert_eq!(bytes.len() % 4, 0);
            prop_assert!(bytes.len() <= MAX_OPTIONS_LEN);
            prop_assert_eq!(TcpOptions::parse(&bytes).unwrap(), options);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..=MAX_OPTIONS_LEN)) {
            let _ = TcpOptions::parse(&bytes);
        }
    }
}
