//! Address rewriting for copies: which captured packets are copied, where they go, and
//! which client address each copy carries.
//!
//! Pure: parses the `-x/--map` and `-c/--client-ip` syntaxes of TCPCopy and applies them to
//! a [`Segment`]. It never touches the network.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use crate::packet::Segment;

/// One `-x` rule: packets to `online_port` (on `online_ip`, or on any of the host's own
/// addresses when omitted) are copied to `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMapping {
    pub online_ip: Option<IpAddr>,
    pub online_port: u16,
    pub target: SocketAddr,
}

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

fn syntax_error(value: &str, expected: &str) -> SyntaxError {
    SyntaxError(format!("`{value}` is not {expected}"))
}

fn parse_port(value: &str, whole: &str, expected: &str) -> Result<u16, SyntaxError> {
    match value.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(syntax_error(whole, expected)),
    }
}

const MAPPING_SYNTAX: &str =
    "a mapping `[ONLINE_IP:]PORT-TARGET_IP:PORT` (e.g. `80-198.51.100.30:8080`)";

impl FromStr for PortMapping {
    type Err = SyntaxError;

    /// `[onlineIP:]onlinePort-targetIP:targetPort`; IPv6 addresses go in brackets.
    fn from_str(text: &str) -> Result<Self, SyntaxError> {
        let text = text.trim();
        let (online, target) = text
            .split_once('-')
            .ok_or_else(|| syntax_error(text, MAPPING_SYNTAX))?;
        let (online_ip, online_port) = match online.rsplit_once(':') {
            Some((ip, port)) => (
                Some(parse_ip(ip).ok_or_else(|| syntax_error(text, MAPPING_SYNTAX))?),
                port,
            ),
            None => (None, online),
        };
        let online_port = parse_port(online_port, text, MAPPING_SYNTAX)?;
        let target: SocketAddr = target
            .parse()
            .map_err(|_| syntax_error(text, MAPPING_SYNTAX))?;
        if target.port() == 0 {
            return Err(syntax_error(text, MAPPING_SYNTAX));
        }
        Ok(PortMapping {
            online_ip,
            online_port,
            target,
        })
    }
}

fn parse_ip(text: &str) -> Option<IpAddr> {
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
                return Err(SyntaxError(format!(
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
    /// The address a client keeps for the whole run: chosen by a hash of its real address
    /// and port, so every packet of a connection maps to the same copy address.
    pub fn pick(&self, client: SocketAddr) -> IpAddr {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        client.hash(&mut hasher);
        let index = (hasher.finish() % self.0.len() as u64) as usize;
        self.0[index]
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Applies the `-x` mappings and the `-c` pool to captured client segments.
#[derive(Debug, Clone)]
pub struct Rewriter {
    mappings: Vec<PortMapping>,
    clients: Option<ClientAddresses>,
}

impl Rewriter {
    pub fn new(mappings: Vec<PortMapping>, clients: Option<ClientAddresses>) -> Rewriter {
        Rewriter {
            mappings,
            clients: clients.filter(|pool| !pool.is_empty()),
        }
    }

    /// The mapping a packet to `dst` falls under, if any.
    pub fn mapping_for(&self, dst: SocketAddr) -> Option<&PortMapping> {
        self.mappings
            .iter()
            .find(|m| m.online_port == dst.port() && m.online_ip.is_none_or(|ip| ip == dst.ip()))
    }

    /// Rewrites a client → online segment into a copy → target one. Returns false (and
    /// leaves the segment alone) when no mapping covers its destination.
    pub fn rewrite(&self, segment: &mut Segment) -> bool {
        let Some(mapping) = self.mapping_for(segment.dst) else {
            return false;
        };
        segment.dst = mapping.target;
        if let Some(pool) = &self.clients {
            segment.src = SocketAddr::new(pool.pick(segment.src), segment.src.port());
        }
        true
    }

    pub fn mappings(&self) -> &[PortMapping] {
        &self.mappings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn mapping_with_and_without_online_ip() {
        let m: PortMapping = "80-198.51.100.30:8080".parse().unwrap();
        assert_eq!(m.online_ip, None);
        assert_eq!(m.online_port, 80);
        assert_eq!(m.target, addr("198.51.100.30:8080"));

        let m: PortMapping = "198.51.100.20:80-198.51.100.30:80".parse().unwrap();
        assert_eq!(m.online_ip, Some("198.51.100.20".parse().unwrap()));

        let m: PortMapping = "[2001:db8::1]:80-[2001:db8::2]:81".parse().unwrap();
        assert_eq!(m.online_ip, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(m.target, addr("[2001:db8::2]:81"));
    }

    #[test]
    fn bad_mappings_name_themselves() {
        for bad in [
            "80",
            "80-198.51.100.30",
            "x-1.2.3.4:80",
            "0-1.2.3.4:80",
            "80-1.2.3.4:0",
            "1.2.3:80-1.2.3.4:80",
        ] {
            let err = bad.parse::<PortMapping>().unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn mapping_lists() {
        let list: Vec<PortMapping> =
            parse_list("80-198.51.100.30:80,443-198.51.100.30:8443").unwrap();
        assert_eq!(list.len(), 2);
        assert!(parse_list::<PortMapping>("80-198.51.100.30:80,").is_err());
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
        assert_eq!(pool.pick(client), pool.pick(client));
    }

    #[test]
    fn rewrite_applies_mapping_and_pool() {
        let rewriter = Rewriter::new(
            vec!["198.51.100.20:80-198.51.100.30:8080".parse().unwrap()],
            Some("203.0.113.9/32".parse().unwrap()),
        );
        let mut seg = crate::packet::Segment {
            src: addr("198.51.100.10:40000"),
            dst: addr("198.51.100.20:80"),
            seq: Default::default(),
            ack: Default::default(),
            flags: Default::default(),
            window: 0,
            options: Default::default(),
            ip_id: 0,
            ttl: 64,
            payload_len: 0,
        };
        let mut other = seg.clone();
        assert!(rewriter.rewrite(&mut seg));
        assert_eq!(seg.src, addr("203.0.113.9:40000"));
        assert_eq!(seg.dst, addr("198.51.100.30:8080"));

        other.dst = addr("198.51.100.20:81");
        assert!(!rewriter.rewrite(&mut other));
        assert_eq!(other.dst, addr("198.51.100.20:81"));
    }
}
