//! The IP version a network-layer packet claims, sniffed from its first nibble or named by
//! the link layer's protocol field.

use super::error::{Layer, PacketError, Result};

/// The ethertype of IPv4 (RFC 894), also used by Linux cooked captures.
pub(crate) const ETHERTYPE_IPV4: u16 = 0x0800;
/// The ethertype of IPv6 (RFC 2464).
pub(crate) const ETHERTYPE_IPV6: u16 = 0x86dd;

/// IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpVersion {
    V4,
    V6,
}

impl IpVersion {
    /// The version of the IP packet starting `packet`, from its first nibble.
    ///
    /// An empty packet is a truncated IPv4 header (the smaller of the two); any version
    /// other than 4 and 6 is reported as an unsupported "ip version".
    pub fn sniff(packet: &[u8]) -> Result<IpVersion> {
        let first = packet.first().ok_or(PacketError::Truncated {
            layer: Layer::Ipv4,
            needed: super::ipv4::HEADER_LEN,
            got: 0,
        })?;
        match first >> 4 {
            4 => Ok(IpVersion::V4),
            6 => Ok(IpVersion::V6),
            other => Err(PacketError::Unsupported {
                layer: Layer::Ipv4,
                what: "ip version",
                value: u32::from(other),
            }),
        }
    }

    /// The version an ethertype announces, if it is one of the two.
    pub fn from_ethertype(ethertype: u16) -> Option<IpVersion> {
        match ethertype {
            ETHERTYPE_IPV4 => Some(IpVersion::V4),
            ETHERTYPE_IPV6 => Some(IpVersion::V6),
            _ => None,
        }
    }

    /// The ethertype announcing this version.
    pub fn ethertype(self) -> u16 {
        match self {
            IpVersion::V4 => ETHERTYPE_IPV4,
            IpVersion::V6 => ETHERTYPE_IPV6,
        }
    }
}
