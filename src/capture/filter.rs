//! The BPF filter that selects the packets to copy.
//!
//! Built from the `-x` mappings so it matches only client → online-service packets: the
//! destination port *and* the online host's own address. Copies leave by the same interface
//! toward the target's address, so they never match and are never captured again (without
//! the address test, 7 real packets became 144k copies in 2 s in the lab).

use std::net::IpAddr;

use anyhow::{Context, Result, bail};

use crate::addresses::PortMapping;

/// The filter for `mappings`; a mapping without an online address matches any of `own`.
pub fn build_filter(mappings: &[PortMapping], own: &[IpAddr]) -> Result<String> {
    let mut clauses = Vec::with_capacity(mappings.len());
    for mapping in mappings {
        let hosts: Vec<IpAddr> = match mapping.online_ip {
            Some(ip) => vec![ip],
            None if own.is_empty() => bail!(
                "the capture device has no address to match port {} on; give the online \
                 address in the mapping (ONLINE_IP:{}-TARGET_IP:PORT)",
                mapping.online_port,
                mapping.online_port
            ),
            None => own.to_vec(),
        };
        let hosts = hosts
            .iter()
            .map(|ip| format!("dst host {ip}"))
            .collect::<Vec<_>>()
            .join(" or ");
        clauses.push(format!(
            "(tcp dst port {} and ({hosts}))",
            mapping.online_port
        ));
    }
    Ok(clauses.join(" or "))
}

/// A capture device as [`default_devices`] weighs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub name: String,
    pub up: bool,
    pub loopback: bool,
    pub addresses: Vec<IpAddr>,
}

/// The devices copy captures on without `-i` (TCPCopy 1.x needs none): those that are up,
/// not loopback and hold an address; when a mapping names its online address, only the
/// devices holding one of those.
pub fn default_devices(mappings: &[PortMapping]) -> Result<Vec<String>> {
    let devices: Vec<DeviceInfo> = pcap::Device::list()
        .context("cannot list capture devices")?
        .into_iter()
        .map(|device| DeviceInfo {
            up: device.flags.is_up() && device.flags.is_running(),
            loopback: device.flags.is_loopback(),
            addresses: device.addresses.iter().map(|a| a.addr).collect(),
            name: device.name,
        })
        .collect();
    let chosen = choose_devices(&devices, mappings);
    if chosen.is_empty() {
        bail!("no device is up with an address to capture on; name one with -i");
    }
    Ok(chosen)
}

fn choose_devices(devices: &[DeviceInfo], mappings: &[PortMapping]) -> Vec<String> {
    let online: Vec<IpAddr> = mappings.iter().filter_map(|m| m.online_ip).collect();
    let wanted = |device: &&DeviceInfo| {
        let mut addresses = device.addresses.iter().filter(|ip| !ip.is_unspecified());
        if online.len() == mappings.len() {
            addresses.any(|ip| online.contains(ip))
        } else {
            addresses.next().is_some()
        }
    };
    devices
        .iter()
        .filter(|device| device.up && !device.loopback)
        .filter(wanted)
        .map(|device| device.name.clone())
        .collect()
}

/// The addresses of capture device `device`, as libpcap lists them.
pub fn own_addresses(device: &str) -> Result<Vec<IpAddr>> {
    let devices = pcap::Device::list().context("cannot list capture devices")?;
    let found = devices
        .into_iter()
        .find(|d| d.name == device)
        .with_context(|| format!("no capture device named {device}"))?;
    Ok(found
        .addresses
        .iter()
        .map(|a| a.addr)
        .filter(|ip| !ip.is_unspecified())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mappings(list: &str) -> Vec<PortMapping> {
        crate::addresses::parse_list(list).unwrap()
    }

    fn device(name: &str, up: bool, loopback: bool, addresses: &[&str]) -> DeviceInfo {
        DeviceInfo {
            name: name.to_string(),
            up,
            loopback,
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn default_devices_are_the_live_ones_with_the_online_address() {
        let devices = [
            device("lo", true, true, &["127.0.0.1"]),
            device("eth0", true, false, &["198.51.100.20"]),
            device("eth1", true, false, &["192.0.2.7"]),
            device("eth2", false, false, &["192.0.2.9"]),
            device("dummy0", true, false, &[]),
        ];
        let any_address = mappings("80-198.51.100.30:80");
        assert_eq!(choose_devices(&devices, &any_address), ["eth0", "eth1"]);
        let online = mappings("198.51.100.20:80-198.51.100.30:80");
        assert_eq!(choose_devices(&devices, &online), ["eth0"]);
    }

    #[test]
    fn filter_names_port_and_own_addresses() {
        let own: Vec<IpAddr> = vec![
            "198.51.100.20".parse().unwrap(),
            "2001:db8::20".parse().unwrap(),
        ];
        let filter = build_filter(&mappings("80-198.51.100.30:80"), &own).unwrap();
        assert_eq!(
            filter,
            "(tcp dst port 80 and (dst host 198.51.100.20 or dst host 2001:db8::20))"
        );
    }

    #[test]
    fn explicit_online_address_wins() {
        let filter = build_filter(
            &mappings("198.51.100.21:80-198.51.100.30:80,443-198.51.100.30:443"),
            &["198.51.100.20".parse().unwrap()],
        )
        .unwrap();
        assert_eq!(
            filter,
            "(tcp dst port 80 and (dst host 198.51.100.21)) or (tcp dst port 443 and (dst host 198.51.100.20))"
        );
    }

    #[test]
    fn no_address_is_an_error_that_says_what_to_do() {
        let err = build_filter(&mappings("80-198.51.100.30:80"), &[]).unwrap_err();
        assert!(err.to_string().contains("ONLINE_IP:80"), "{err}");
    }

    #[test]
    fn target_never_matches_the_filter_it_copies_to() {
        // The copy's destination is the target address, which is not one of ours.
        let filter = build_filter(
            &mappings("80-198.51.100.30:80"),
            &["198.51.100.20".parse().unwrap()],
        )
        .unwrap();
        assert!(!filter.contains("198.51.100.30"));
    }
}
