//! `-c/--client-ip`: the pool of client addresses the copies carry instead of the real ones.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use super::{SyntaxError, parse_ip, stable_hash, syntax_error};

/// The `-c` pool of addresses the copies use as their client address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddresses(Vec<IpAddr>);

/// TCPCopy caps the pool at 4,096 addresses; a CIDR larger than that is a mistake.
const MAX_CLIENT_ADDRESSES: usize = 4096;

const CLIENT_SYNTAX: &str =
    "a client address list (`a.b.c.x`, a CIDR such as `203.0.113.0/24`, or `ip,ip,...`)";

impl FromStr for ClientAddresses {
    type Err = SyntaxError;

    fn from_str(text: &str) -> Result<Self, SyntaxError> {
        let mut addresses = Vec::new();
        for item in text.split(',').map(str::trim) {
            expand_client_item(item, &mut addresses)
                .ok_or_else(|| syntax_error(item, CLIENT_SYNTAX))?;
            if addresses.len() > MAX_CLIENT_ADDRESSES {
                return Err(SyntaxError::new(format!(
                    "`{text}` names more than {MAX_CLIENT_ADDRESSES} client addresses"
                )));
            }
        }
        Ok(ClientAddresses(addresses))
    }
}

/// Appends the addresses one `-c` item stands for; `None` when it is not valid syntax.
fn expand_client_item(item: &str, out: &mut Vec<IpAddr>) -> Option<()> {
    if let Some(prefix) = item.strip_suffix(".x") {
        let base: Ipv4Addr = format!("{prefix}.0").parse().ok()?;
        let [a, b, c, _] = base.octets();
        out.extend((1..=254).map(|d| IpAddr::V4(Ipv4Addr::new(a, b, c, d))));
        return Some(());
    }
    if let Some((net, len)) = item.split_once('/') {
        let net: Ipv4Addr = net.parse().ok()?;
        let len: u32 = len.parse().ok().filter(|len| (20..=32).contains(len))?;
        let base = u32::from(net) & (u32::MAX << (32 - len));
        let size = 1u32 << (32 - len);
        // Skip the network and broadcast addresses unless the block is a single host or pair.
        let hosts = if size > 2 { 1..size - 1 } else { 0..size };
        out.extend(hosts.map(|i| IpAddr::V4(Ipv4Addr::from(base + i))));
        return Some(());
    }
    out.push(parse_ip(item)?);
    Some(())
}

impl ClientAddresses {
    /// The address replica `replica` (0 for the first copy, see `-n`) of a client's
    /// connection carries: chosen by a stable hash of the real address and port, so every
    /// packet of a connection maps to the same copy address, in every run.
    pub fn pick(&self, client: SocketAddr, replica: u16) -> IpAddr {
        let index = stable_hash(client, u64::from(replica)) % self.0.len() as u64;
        self.0[index as usize]
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn client_address_syntaxes() {
        let pool: ClientAddresses = "203.0.113.x".parse().unwrap();
        assert_eq!(pool.len(), 254);
        let pool: ClientAddresses = "203.0.113.0/24".parse().unwrap();
        assert_eq!(pool.len(), 254);
        assert!(!pool.0.contains(&"203.0.113.0".parse().unwrap()));
        let pool: ClientAddresses = "203.0.113.7/32".parse().unwrap();
        assert_eq!(pool.0, vec!["203.0.113.7".parse::<IpAddr>().unwrap()]);
        let pool: ClientAddresses = "203.0.113.1,203.0.113.2".parse().unwrap();
        assert_eq!(pool.len(), 2);
        for bad in ["203.0.113", "203.0.113.0/8", "foo", "203.0.113.1,"] {
            assert!(bad.parse::<ClientAddresses>().is_err(), "{bad}");
        }
    }

    #[test]
    fn client_mapping_is_sticky() {
        let pool: ClientAddresses = "203.0.113.0/24".parse().unwrap();
        let client = addr("198.51.100.10:40000");
        assert_eq!(pool.pick(client, 0), pool.pick(client, 0));
        let replicas: std::collections::HashSet<_> =
            (0..8).map(|replica| pool.pick(client, replica)).collect();
        assert!(replicas.len() > 1, "replicas spread over the pool");
    }
}
