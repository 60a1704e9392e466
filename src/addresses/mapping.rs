//! `-x/--map`: which captured packets are copied, and to where.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use super::{SyntaxError, parse_ip, parse_port, syntax_error, unroutable};

/// One `-x` rule: packets to `online_port` (on `online_ip`, or on any of the host's own
/// addresses when omitted) are copied to `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMapping {
    pub online_ip: Option<IpAddr>,
    pub online_port: u16,
    pub target: SocketAddr,
}

const MAPPING_SYNTAX: &str =
    "a mapping `[ONLINE_IP:]PORT-TARGET_IP:PORT` (e.g. `80-198.51.100.30:8080`)";

impl FromStr for PortMapping {
    type Err = SyntaxError;

    /// `[onlineIP:]onlinePort-targetIP:targetPort`; IPv6 addresses go in brackets.
    fn from_str(text: &str) -> Result<Self, SyntaxError> {
        let text = text.trim();
        if text.contains('@') {
            return Err(SyntaxError::new(format!(
                "`{text}`: copy needs no MAC addresses (1.x's `PORT@MAC-IP:PORT@MAC` sent through pcap): it sends with a raw IP socket and the kernel finds the next hop; write {MAPPING_SYNTAX}"
            )));
        }
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
        let ends = [("online", online_ip), ("target", Some(target.ip()))];
        for (end, ip) in ends.into_iter().filter_map(|(end, ip)| Some((end, ip?))) {
            if let Some(why) = unroutable(ip) {
                return Err(SyntaxError::new(format!(
                    "`{text}`: the {end} address {ip} is {why}, not a host's"
                )));
            }
        }
        Ok(PortMapping {
            online_ip,
            online_port,
            target,
        })
    }
}

impl fmt::Display for PortMapping {
    /// The `-x` syntax back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.online_ip {
            Some(ip) => write!(
                f,
                "{}-{}",
                SocketAddr::new(ip, self.online_port),
                self.target
            ),
            None => write!(f, "{}-{}", self.online_port, self.target),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addresses::parse_list;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv6_mappings_use_brackets_both_ways() {
        let text = "[2001:db8::20]:80-[2001:db8::30]:8080";
        let m: PortMapping = text.parse().unwrap();
        assert_eq!(m.online_ip, Some("2001:db8::20".parse().unwrap()));
        assert_eq!(m.target, addr("[2001:db8::30]:8080"));
        assert_eq!(m.to_string(), text);
        let m: PortMapping = "80-[2001:db8::30]:80".parse().unwrap();
        assert_eq!(m.to_string(), "80-[2001:db8::30]:80");
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
    fn a_1x_mapping_with_mac_addresses_says_what_to_write() {
        let err = "80@00:11:22:33:44:55-198.51.100.30:80@00:11:22:33:44:66"
            .parse::<PortMapping>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs no MAC addresses"), "{err}");
        assert!(err.contains("80-198.51.100.30:8080"), "{err}");
    }

    #[test]
    fn mappings_to_no_host_are_refused() {
        for (bad, why) in [
            (
                "80-0.0.0.0:80",
                "the target address 0.0.0.0 is the unspecified address",
            ),
            (
                "80-255.255.255.255:80",
                "the target address 255.255.255.255 is the broadcast",
            ),
            (
                "80-224.0.0.1:80",
                "the target address 224.0.0.1 is a multicast address",
            ),
            ("80-[::]:80", "the target address :: is the unspecified"),
            (
                "80-[ff02::1]:80",
                "the target address ff02::1 is a multicast",
            ),
            (
                "0.0.0.0:80-198.51.100.30:80",
                "the online address 0.0.0.0 is the unspecified",
            ),
        ] {
            let err = bad.parse::<PortMapping>().unwrap_err().to_string();
            assert!(err.starts_with(&format!("`{bad}`: ")), "{err}");
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn mapping_lists() {
        let list: Vec<PortMapping> =
            parse_list("80-198.51.100.30:80,443-198.51.100.30:8443").unwrap();
        assert_eq!(list.len(), 2);
        assert!(parse_list::<PortMapping>("80-198.51.100.30:80,").is_err());
    }
}
