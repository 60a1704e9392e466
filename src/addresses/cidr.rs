//! `intercept --allow`: an address block in CIDR notation (`198.51.100.0/24`,
//! `2001:db8::/32`), or one address (a /32 or /128), and whether it holds an address.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::{SyntaxError, parse_ip, syntax_error};

const CIDR_SYNTAX: &str =
    "an address or address block (`198.51.100.20`, `198.51.100.0/24`, `2001:db8::/32`)";

/// An IPv4 or IPv6 address block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The block's first address (host bits cleared).
    network: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// Whether `addr` is in the block; an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, how a
    /// dual-stack listener sees IPv4 peers) counts as its IPv4 address.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        addr.is_ipv4() == self.network.is_ipv4() && masked(addr, self.prefix_len) == self.network
    }
}

/// `addr` with every bit after the first `prefix_len` cleared.
fn masked(addr: IpAddr, prefix_len: u8) -> IpAddr {
    let len = u32::from(prefix_len);
    match addr {
        IpAddr::V4(addr) => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            IpAddr::V4((u32::from(addr) & mask).into())
        }
        IpAddr::V6(addr) => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            IpAddr::V6((u128::from(addr) & mask).into())
        }
    }
}

impl FromStr for Cidr {
    type Err = SyntaxError;

    fn from_str(text: &str) -> Result<Self, SyntaxError> {
        let text = text.trim();
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let addr = parse_ip(addr)
            .ok_or_else(|| syntax_error(text, CIDR_SYNTAX))?
            .to_canonical();
        let max_len: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len {
            None => max_len,
            Some(len) => match len.parse::<u8>() {
                Ok(len) if len <= max_len => len,
                _ => {
                    return Err(SyntaxError::new(format!(
                        "`{text}`: the prefix length must be 0 to {max_len}"
                    )));
                }
            },
        };
        let network = masked(addr, prefix_len);
        if network != addr {
            return Err(SyntaxError::new(format!(
                "`{text}` has host bits set: the block is {network}/{prefix_len}"
            )));
        }
        Ok(Cidr {
            network,
            prefix_len,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_hold_their_addresses_and_no_others() {
        let block = cidr("198.51.100.0/24");
        assert!(block.contains(ip("198.51.100.0")));
        assert!(block.contains(ip("198.51.100.255")));
        assert!(!block.contains(ip("198.51.101.1")));
        assert!(!block.contains(ip("2001:db8::1")), "another family");
        let host = cidr("198.51.100.20");
        assert_eq!(host.to_string(), "198.51.100.20/32");
        assert!(host.contains(ip("198.51.100.20")));
        assert!(!host.contains(ip("198.51.100.21")));
        let v6 = cidr("2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(cidr("[2001:db8::20]").contains(ip("2001:db8::20")));
    }

    #[test]
    fn zero_length_blocks_hold_a_whole_family() {
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!cidr("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_blocks() {
        assert!(cidr("198.51.100.0/24").contains(ip("::ffff:198.51.100.20")));
        assert_eq!(cidr("::ffff:198.51.100.20"), cidr("198.51.100.20/32"));
    }

    #[test]
    fn bad_blocks_say_what_is_wrong() {
        for (text, says) in [
            ("198.51.100.0/33", "0 to 32"),
            ("2001:db8::/129", "0 to 128"),
            ("198.51.100.7/24", "the block is 198.51.100.0/24"),
            ("host.example", "not an address"),
            ("198.51.100.0/x", "0 to 32"),
            ("", "not an address"),
        ] {
            let err = text.parse::<Cidr>().unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
