//! The one error type of the packet model: which layer failed, and how.
//!
//! Every parser and emitter in `packet` returns [`PacketError`]; messages are lowercase and
//! say which layer, what was wrong and, for truncation, how many bytes were needed and had.

use std::fmt;

/// The protocol layer an error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// The link layer: Ethernet, Linux cooked v1/v2, BSD loopback, raw IP.
    Link,
    Ipv4,
    Ipv6,
    Tcp,
}

impl Layer {
    /// What a truncation of this layer cuts short: a header for link and TCP (their
    /// length is their own), the whole packet for IP (whose length field covers TCP).
    fn truncated_unit(self) -> &'static str {
        match self {
            Layer::Link | Layer::Tcp => "header",
            Layer::Ipv4 | Layer::Ipv6 => "packet",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Link => "link",
            Layer::Ipv4 => "ipv4",
            Layer::Ipv6 => "ipv6",
            Layer::Tcp => "tcp",
        })
    }
}

/// Why bytes could not be parsed, or a segment could not be emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketError {
    /// Fewer bytes were captured than the layer's length fields require.
    Truncated {
        layer: Layer,
        needed: usize,
        got: usize,
    },
    /// A well-formed value tcpcopy does not handle (an ARP ethertype, a UDP protocol, an
    /// IP fragment, ...).
    Unsupported {
        layer: Layer,
        what: &'static str,
        value: u32,
    },
    /// Bytes that break the protocol's own rules (an IPv4 IHL below 5, a TCP option whose
    /// length runs past the header, ...), or a segment that cannot be emitted as asked.
    Malformed { layer: Layer, what: &'static str },
    /// A packet to emit is longer than the layer's length field can say.
    Oversized {
        layer: Layer,
        len: usize,
        max: usize,
    },
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PacketError::Truncated { layer, needed, got } => write!(
                f,
                "{layer} {} truncated: needed {needed} bytes, got {got}",
                layer.truncated_unit()
            ),
            PacketError::Unsupported { layer, what, value } => {
                write!(f, "{layer}: unsupported {what} {value} ({value:#x})")
            }
            PacketError::Malformed { layer, what } => write!(f, "{layer}: malformed, {what}"),
            PacketError::Oversized { layer, len, max } => {
                write!(f, "{layer} packet too long: {len} bytes, at most {max}")
            }
        }
    }
}

impl std::error::Error for PacketError {}

/// Shorthand for the packet model's results.
pub type Result<T> = std::result::Result<T, PacketError>;

/// Fails with [`PacketError::Truncated`] unless `got >= needed`.
pub(crate) fn ensure_len(layer: Layer, needed: usize, got: usize) -> Result<()> {
    if got < needed {
        Err(PacketError::Truncated { layer, needed, got })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_layer_and_byte_counts() {
        let truncated = PacketError::Truncated {
            layer: Layer::Tcp,
            needed: 20,
            got: 13,
        };
        assert_eq!(
            truncated.to_string(),
            "tcp header truncated: needed 20 bytes, got 13"
        );
        let short_ip = PacketError::Truncated {
            layer: Layer::Ipv4,
            needed: 1500,
            got: 1400,
        };
        assert_eq!(
            short_ip.to_string(),
            "ipv4 packet truncated: needed 1500 bytes, got 1400"
        );
        let udp = PacketError::Unsupported {
            layer: Layer::Ipv4,
            what: "protocol",
            value: 17,
        };
        assert_eq!(udp.to_string(), "ipv4: unsupported protocol 17 (0x11)");
        let ihl = PacketError::Malformed {
            layer: Layer::Ipv4,
            what: "header length below 20 bytes",
        };
        assert_eq!(
            ihl.to_string(),
            "ipv4: malformed, header length below 20 bytes"
        );
        let big = PacketError::Oversized {
            layer: Layer::Ipv6,
            len: 70_000,
            max: 65_535,
        };
        assert_eq!(
            big.to_string(),
            "ipv6 packet too long: 70000 bytes, at most 65535"
        );
    }
}
