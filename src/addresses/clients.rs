//! `-c/--client-ip`: the pool of client addresses the copies carry instead of the real ones,
//! IPv4 and IPv6 (a copy carries one of the target's family).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use super::{SyntaxError, parse_ip, stable_hash, syntax_error, unroutable};

/// The `-c` pool of addresses the copies use as their client address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddresses {
    v4: Vec<IpAddr>,
    v6: Vec<IpAddr>,
}

/// TCPCopy caps the pool at 4,096 addresses; a CIDR larger than that is a mistake.
const MAX_CLIENT_ADDRESSES: usize = 4096;

const CLIENT_SYNTAX: &str = "a client address list (`a.b.c.x`, a CIDR such as `203.0.113.0/24` \
     (/20 to /32) or `2001:db8:1::/116` (/116 to /128), or `ip,ip,...`)";

impl FromStr for ClientAddresses {
    type Err = SyntaxError;

    fn from_str(text: &str) -> Result<Self, SyntaxError> {
        let mut addresses = Vec::new();
        for item in text.split(',').map(str::trim) {
            let first = addresses.len();
            expand_client_item(item, &mut addresses)
                .ok_or_else(|| syntax_error(item, CLIENT_SYNTAX))?;
            if let Some((ip, why)) = addresses[first..]
                .iter()
                .find_map(|&ip| Some((ip, no_client(ip)?)))
            {
                return Err(SyntaxError::new(format!(
                    "`{item}`: {ip} is {why}: a copy's client address must be one the target \
                     can send its replies to"
                )));
            }
            if addresses.len() > MAX_CLIENT_ADDRESSES {
                return Err(SyntaxError::new(format!(
                    "`{text}` names more than {MAX_CLIENT_ADDRESSES} client addresses"
                )));
            }
        }
        let (v4, v6) = addresses.into_iter().partition(IpAddr::is_ipv4);
        Ok(ClientAddresses { v4, v6 })
    }
}

/// Why `ip` cannot be a copy's client address (`None`: it can): besides the addresses no
/// packet can carry, the loopback ones, whose replies never leave the target.
fn no_client(ip: IpAddr) -> Option<&'static str> {
    match unroutable(ip) {
        None if ip.is_loopback() => Some("a loopback address"),
        why => why,
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
        let len: u32 = len.parse().ok()?;
        match net.parse::<IpAddr>().ok()? {
            IpAddr::V4(net) if (20..=32).contains(&len) => {
                let base = u32::from(net) & (u32::MAX << (32 - len));
                let size = 1u32 << (32 - len);
                // Skip the network and broadcast addresses unless the block is a single
                // host or pair.
                let hosts = if size > 2 { 1..size - 1 } else { 0..size };
                out.extend(hosts.map(|i| IpAddr::V4(Ipv4Addr::from(base + i))));
            }
            IpAddr::V6(net) if (116..=128).contains(&len) => {
                let base = u128::from(net) & (u128::MAX << (128 - len));
                let size = 1u128 << (128 - len);
                // Skip the subnet-router anycast address (RFC 4291 §2.6.1) of a real block.
                let hosts = if size > 2 { 1..size } else { 0..size };
                out.extend(hosts.map(|i| IpAddr::V6(Ipv6Addr::from(base + i))));
            }
            _ => return None,
        }
        return Some(());
    }
    out.push(parse_ip(item)?);
    Some(())
}

impl ClientAddresses {
    /// The address replica `replica` (0 for the first copy, see `-n`) of a client's
    /// connection carries toward a target of the family `ipv6` says: the first copy's is
    /// chosen by a stable hash of the real address and port, so every packet of a connection
    /// maps to the same copy address, in every run; the other replicas take the addresses
    /// after it, so they have one each as long as the pool has as many. `None` when the pool
    /// has no address of that family.
    pub fn pick(&self, client: SocketAddr, replica: u16, ipv6: bool) -> Option<IpAddr> {
        let family = if ipv6 { &self.v6 } else { &self.v4 };
        if family.is_empty() {
            return None;
        }
        let len = family.len() as u64;
        let index = (stable_hash(client, 0) % len + u64::from(replica)) % len;
        Some(family[index as usize])
    }

    /// Whether the pool holds addresses of the family `ipv6` says.
    pub fn has_family(&self, ipv6: bool) -> bool {
        !(if ipv6 { &self.v6 } else { &self.v4 }).is_empty()
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        assert!(!pool.v4.contains(&"203.0.113.0".parse().unwrap()));
        let pool: ClientAddresses = "203.0.113.7/32".parse().unwrap();
        assert_eq!(pool.v4, vec!["203.0.113.7".parse::<IpAddr>().unwrap()]);
        let pool: ClientAddresses = "203.0.113.1,203.0.113.2".parse().unwrap();
        assert_eq!(pool.len(), 2);
        let pool: ClientAddresses = "2001:db8:1::/120,203.0.113.9,[2001:db8:2::1]"
            .parse()
            .unwrap();
        assert_eq!((pool.v4.len(), pool.v6.len()), (1, 256));
        assert!(!pool.v6.contains(&"2001:db8:1::".parse().unwrap()));
        assert!(pool.v6.contains(&"2001:db8:2::1".parse().unwrap()));
        for bad in [
            "203.0.113",
            "203.0.113.0/8",
            "foo",
            "203.0.113.1,",
            "2001:db8::/64",
            "2001:db8::/129",
        ] {
            assert!(bad.parse::<ClientAddresses>().is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_no_reply_can_reach_are_refused() {
        for (bad, why) in [
            ("0.0.0.0", "0.0.0.0 is the unspecified address"),
            (
                "203.0.113.1,255.255.255.255",
                "255.255.255.255 is the broadcast address",
            ),
            ("224.0.0.x", "224.0.0.1 is a multicast address"),
            ("127.0.0.0/24", "127.0.0.1 is a loopback address"),
            ("::1", "::1 is a loopback address"),
            ("ff02::/120", "ff02::1 is a multicast address"),
            ("::", ":: is the unspecified address"),
        ] {
            let err = bad.parse::<ClientAddresses>().unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains("the target can send its replies to"), "{err}");
        }
    }

    #[test]
    fn client_mapping_is_sticky() {
        let pool: ClientAddresses = "203.0.113.0/24,2001:db8:1::/120".parse().unwrap();
        let client = addr("198.51.100.10:40000");
        assert_eq!(pool.pick(client, 0, false), pool.pick(client, 0, false));
        for port in 40_000..41_000 {
            let client = addr(&format!("198.51.100.10:{port}"));
            let replicas: std::collections::HashSet<_> = (0..8)
                .map(|replica| pool.pick(client, replica, false))
                .collect();
            assert_eq!(replicas.len(), 8, "each replica its own address");
        }
        let pair: ClientAddresses = "203.0.113.1,203.0.113.2".parse().unwrap();
        let both: std::collections::HashSet<_> = (0..2)
            .map(|replica| pair.pick(client, replica, false))
            .collect();
        assert_eq!(both.len(), 2, "as long as the pool has as many");
        assert!(
            pool.pick(client, 0, true).unwrap().is_ipv6(),
            "the target's family"
        );
        let v4_only: ClientAddresses = "203.0.113.7".parse().unwrap();
        assert_eq!(v4_only.pick(client, 0, true), None);
    }
}
