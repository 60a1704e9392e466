//! The address syntaxes operators write on the command line: `-x` port mappings, the `-c`
//! client address pool, `-s` intercept addresses and intercept's `--allow` blocks, and the
//! stable hash that keeps choices made from a client's address the same across restarts.
//!
//! Pure value types below the CLI and the copy pipeline, so both use them without importing
//! each other. Every syntax error names the value and the form expected.

mod cidr;
mod clients;
mod hash;
mod intercept;
mod mapping;

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

pub use cidr::Cidr;
pub use clients::ClientAddresses;
pub use hash::stable_hash;
pub use intercept::InterceptAddr;
pub use mapping::PortMapping;

/// Why a `-x`, `-c` or `-s` value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError(String);

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SyntaxError {}

impl SyntaxError {
    pub fn new(message: String) -> SyntaxError {
        SyntaxError(message)
    }
}

pub(crate) fn syntax_error(value: &str, expected: &str) -> SyntaxError {
    SyntaxError(format!("`{value}` is not {expected}"))
}

pub(crate) fn parse_port(value: &str, whole: &str, expected: &str) -> Result<u16, SyntaxError> {
    match value.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(syntax_error(whole, expected)),
    }
}

/// Why no packet can be addressed to or from `ip` (`None`: it can): the unspecified
/// address, the IPv4 limited broadcast or a multicast group.
pub(crate) fn unroutable(ip: IpAddr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("the unspecified address")
    } else if ip == IpAddr::V4(std::net::Ipv4Addr::BROADCAST) {
        Some("the broadcast address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else {
        None
    }
}

pub(crate) fn parse_ip(text: &str) -> Option<IpAddr> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse().ok()
}

/// Splits a comma-separated option value into its parsed items, refusing empty items.
pub fn parse_list<T: FromStr<Err = SyntaxError>>(text: &str) -> Result<Vec<T>, SyntaxError> {
    text.split(',').map(str::parse).collect()
}
