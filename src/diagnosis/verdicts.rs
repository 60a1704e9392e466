//! Each local check as a pure function of what was read: capability bits, the device list,
//! sysctl values, rule listings, the outcome of a connect or a route lookup. The readers are
//! in `probe`; what each check's message says is decided here, and tested here.

use std::io::{self, ErrorKind};
use std::net::{IpAddr, SocketAddr};

use super::rules::queue_rules;
use super::{Check, Topic};
use crate::capabilities::{Capability, CapabilitySet};
use crate::capture::DeviceInfo;

/// How to grant the capabilities without running as root.
const GRANT: &str = "run as root, or grant it: `setcap cap_net_raw,cap_net_admin+ep \
                     $(command -v tcpcopy)` (systemd: AmbientCapabilities=)";

/// `needed`, which `purpose` needs, is in the effective set (`None`: unreadable).
pub fn capability(set: Option<CapabilitySet>, needed: Capability, purpose: &str) -> Check {
    let name = needed.name();
    match set {
        Some(set) if set.has(needed) => Check::pass(name, "held"),
        Some(_) => Check::fail(
            name,
            format!("not held: {purpose} needs it"),
            GRANT,
            Topic::Capabilities,
        ),
        None => Check::fail(
            name,
            "cannot read this process's capabilities from /proc/self/status",
            "mount /proc, or run as root",
            Topic::Capabilities,
        ),
    }
}

/// The capture device `name` exists and is up with a link.
pub fn interface(name: &str, devices: &Result<Vec<DeviceInfo>, String>) -> Check {
    let label = format!("interface {name}");
    let devices = match devices {
        Ok(devices) => devices,
        Err(err) => {
            return Check::fail(
                label,
                format!("cannot list the capture devices: {err}"),
                "run as root or with CAP_NET_RAW",
                Topic::Interface,
            );
        }
    };
    match devices.iter().find(|device| device.name == name) {
        None => Check::fail(
            label,
            "no such device",
            "`ip link` lists the devices; name one with -i",
            Topic::Interface,
        ),
        Some(device) if !device.up => Check::fail(
            label,
            "is not up with a link",
            format!("`ip link show {name}` must say UP and LOWER_UP (`ip link set {name} up`)"),
            Topic::Interface,
        ),
        Some(device) => Check::pass(
            label,
            match device.addresses.as_slice() {
                [] => "up, without an address".to_string(),
                addresses => format!("up, {}", join(addresses)),
            },
        ),
    }
}

/// The online address of an `-x` mapping is one of this host's `local` addresses.
pub fn mapping_address(online: IpAddr, local: &[IpAddr]) -> Check {
    let label = format!("-x online address {online}");
    if local.contains(&online) {
        return Check::pass(label, "is this host's");
    }
    Check::fail(
        label,
        "is not an address of this host: copy would capture nothing for it",
        "`ip addr` lists this host's addresses: give one of them, or leave ONLINE_IP out of -x",
        Topic::MappingAddress,
    )
}

/// The connection to intercept `addr` (`Ok`: the address it connected to).
pub fn intercept(addr: &str, connected: &io::Result<SocketAddr>) -> Check {
    let label = format!("intercept {addr}");
    match connected {
        Ok(peer) => Check::pass(label, format!("accepts connections ({peer})")),
        Err(err) if err.kind() == ErrorKind::ConnectionRefused => Check::fail(
            label,
            "refused the connection: no intercept listens there",
            "start `tcpcopy intercept` on that host, with -p set to this port",
            Topic::InterceptReachable,
        ),
        Err(err) if err.kind() == ErrorKind::TimedOut => Check::fail(
            label,
            "no answer within the timeout: the host is down, or a firewall drops the connection",
            "`nc -zv HOST PORT` from here; open the port on that host's firewall",
            Topic::InterceptReachable,
        ),
        Err(err) => Check::fail(
            label,
            format!("cannot connect: {err}"),
            "check the name and the route to it (`ip route get ADDR`)",
            Topic::InterceptReachable,
        ),
    }
}

/// The route lookup toward `target` (`Ok`: the source address the kernel would use).
pub fn route_to_target(target: IpAddr, source: &io::Result<IpAddr>) -> Check {
    let label = format!("route to {target}");
    match source {
        Ok(source) => Check::pass(label, format!("found, from {source}")),
        Err(err) => Check::fail(
            label,
            format!("none: {err}; every copy would fail to send (send_failed)"),
            format!("`ip route get {target}` must find a route: add one"),
            Topic::RouteToTarget,
        ),
    }
}

/// A plain connection from this host to the target service.
pub fn target_port(target: SocketAddr, connected: &io::Result<()>) -> Check {
    let label = format!("target {target}");
    match connected {
        Ok(()) => Check::pass(label, "accepts connections"),
        Err(err) if err.kind() == ErrorKind::ConnectionRefused => Check::fail(
            label,
            "refused the connection: nothing listens there, so the target resets every copy \
             (handshakes_refused, or handshakes_failed when intercept's filter misses the RST)",
            "start the service on the target, or correct the port in -x",
            Topic::TargetPort,
        ),
        Err(err) => Check::info(
            label,
            format!("no answer to this host's own address ({err})"),
            "a firewall may admit the copies' addresses only; this does not tell whether the \
             service listens",
            Topic::TargetPort,
        ),
    }
}

/// A forwarding sysctl (`key`, e.g. `net.ipv4.ip_forward`) of an assistant host, which must
/// be 0 (`None`: the setting does not exist, the protocol is off).
pub fn forwarding(key: &str, value: Option<&str>) -> Check {
    match value.map(str::trim) {
        None => Check::pass(key, "absent: the protocol is off on this host"),
        Some("0") => Check::pass(key, "0: the replies stop here"),
        Some(value) => Check::fail(
            key,
            format!(
                "is {value}: this host forwards the target's replies instead of swallowing \
                 them (on to the real clients, or as ICMP errors back to the target, which \
                 then resets the sessions)"
            ),
            format!("`sysctl -w {key}=0`, and set it in /etc/sysctl.d/ to keep it"),
            Topic::IpForward,
        ),
    }
}

/// [`forwarding`] of `net.ipv6.conf.all.forwarding` on an assistant whose capture devices
/// have IPv6 as `disable_ipv6` says, device by device (`None`: no IPv6 there): forwarding
/// on is no failure when no capture device carries IPv6, since no IPv6 reply arrives.
pub fn ipv6_forwarding(value: Option<&str>, disabled: &[(String, Option<String>)]) -> Check {
    let check = forwarding(IPV6_FORWARDING, value);
    let carries_ipv6 = disabled
        .iter()
        .any(|(_, disabled)| disabled.as_deref().map(str::trim) == Some("0"));
    if !check.failed() || carries_ipv6 {
        return check;
    }
    Check::info(
        IPV6_FORWARDING,
        format!(
            "is {}, but no capture device carries IPv6 (disable_ipv6=1 or no IPv6): no IPv6 \
             reply arrives to be forwarded",
            value.unwrap_or_default().trim()
        ),
        "enable IPv6 on a capture device only with this set to 0",
        Topic::IpForward,
    )
}

/// The IPv4 forwarding switch.
pub const IPV4_FORWARDING: &str = "net.ipv4.ip_forward";
/// The IPv6 forwarding switch (IPv6 forwards by `all`, not per device).
pub const IPV6_FORWARDING: &str = "net.ipv6.conf.all.forwarding";

/// What listing a chain gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// The rules (`iptables -S OUTPUT`'s output).
    Listed(String),
    /// The command is not installed.
    NotInstalled,
    /// It ran and failed, saying this.
    Failed(String),
}

/// An OUTPUT rule of `iptables` (`v4`) or `ip6tables` (`v6`) queues to `queue`, without
/// `--queue-bypass`.
pub fn nfqueue_rule(queue: u16, v4: &Listing, v6: &Listing) -> Check {
    let label = format!("NFQUEUE rule for queue {queue}");
    let add = format!(
        "`iptables -I OUTPUT -p tcp --sport PORT -d CLIENTS -j NFQUEUE --queue-num {queue}` \
         (ip6tables for IPv6 replies)"
    );
    if *v4 == Listing::NotInstalled && *v6 == Listing::NotInstalled {
        return Check::fail(
            label,
            "iptables is not installed: nothing can queue the replies, and the rules cannot \
             be listed",
            format!("install it (`apt-get install iptables`), then {add}"),
            Topic::NfqueueRule,
        );
    }
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for (tool, listing) in [("iptables", v4), ("ip6tables", v6)] {
        match listing {
            Listing::Listed(text) => found.extend(
                queue_rules(text)
                    .into_iter()
                    .filter(|rule| rule.sends_to(queue))
                    .map(|rule| (tool, rule)),
            ),
            Listing::NotInstalled => problems.push(format!("{tool} is not installed")),
            Listing::Failed(err) => problems.push(format!("`{tool} -S OUTPUT` failed: {err}")),
        }
    }
    if let Some((tool, rule)) = found.iter().find(|(_, rule)| rule.bypass) {
        return Check::fail(
            label,
            format!(
                "`{tool} {}` has --queue-bypass: whenever intercept is not reading, the \
                 replies pass to the real clients",
                rule.text
            ),
            "replace it with the same rule without --queue-bypass",
            Topic::NfqueueRule,
        );
    }
    if found.is_empty() {
        let mut detail = format!("no OUTPUT rule queues to queue {queue}");
        if !problems.is_empty() {
            detail.push_str(&format!(" ({})", problems.join("; ")));
        }
        return Check::fail(
            label,
            format!("{detail}: the target's replies go to the real clients, none to intercept"),
            add,
            Topic::NfqueueRule,
        );
    }
    let rules: Vec<String> = found
        .iter()
        .map(|(tool, rule)| format!("{tool} `{}`", rule.text))
        .collect();
    Check::pass(label, rules.join("; "))
}

/// The route lookup toward `destination`, the `-d` of an NFQUEUE rule (the copies' client
/// addresses), on the target (`Ok`: the source address the kernel would use).
pub fn reply_route(destination: &str, source: &io::Result<IpAddr>) -> Check {
    let label = format!("route to {destination} (the NFQUEUE rule's -d)");
    match source {
        Ok(source) => Check::pass(label, format!("found, from {source}")),
        Err(err) => Check::fail(
            label,
            format!(
                "none: {err}; the replies to the copies' addresses cannot be routed, so the \
                 rule never queues them"
            ),
            format!(
                "`ip route get {}` must find a route, any route: add one (`ip route add \
                 {destination} via ROUTER` or `dev IFACE`)",
                destination.split('/').next().unwrap_or(destination)
            ),
            Topic::TargetRoute,
        ),
    }
}

/// The rp_filter settings (`conf/all`, `conf/default` and each device's), shown for the
/// reader to judge.
pub fn rp_filter(values: &[(String, String)]) -> Check {
    let shown: Vec<String> = values
        .iter()
        .map(|(scope, value)| format!("{scope}={}", value.trim()))
        .collect();
    Check::info(
        "rp_filter",
        if shown.is_empty() {
            "not readable".to_string()
        } else {
            shown.join(", ")
        },
        "a device uses the higher of `all` and its own; 1 (strict) drops packets from sources \
         with no route back through the device they came in on, 2 (loose) from sources with no \
         route back at all: the target needs its route for the copies' addresses",
        Topic::RpFilter,
    )
}

fn join(addresses: &[IpAddr]) -> String {
    addresses
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::Status;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn error(kind: ErrorKind) -> io::Error {
        io::Error::from(kind)
    }

    #[test]
    fn capabilities_name_the_one_missing() {
        let raw_only = CapabilitySet::from_bits(1 << 13);
        assert!(!capability(Some(raw_only), Capability::NetRaw, "capture").failed());
        let check = capability(Some(raw_only), Capability::NetAdmin, "NFQUEUE");
        assert!(check.failed());
        assert_eq!(check.name, "CAP_NET_ADMIN");
        assert!(check.detail.contains("NFQUEUE needs it"), "{check}");
        assert!(check.to_string().contains("setcap"), "{check}");
        assert!(capability(None, Capability::NetRaw, "capture").failed());
    }

    #[test]
    fn interfaces_must_exist_and_be_up() {
        let device = |name: &str, up| DeviceInfo {
            name: name.into(),
            up,
            loopback: false,
            addresses: vec![ip("198.51.100.20")],
        };
        let devices = Ok(vec![device("eth0", true), device("eth1", false)]);
        let up = interface("eth0", &devices);
        assert_eq!(
            (up.status, up.detail.as_str()),
            (Status::Pass, "up, 198.51.100.20")
        );
        let down = interface("eth1", &devices);
        assert!(down.failed() && down.to_string().contains("ip link set eth1 up"));
        let missing = interface("eth9", &devices);
        assert!(missing.failed() && missing.detail == "no such device");
        assert!(interface("eth0", &Err("denied".into())).failed());
    }

    #[test]
    fn mapping_addresses_must_be_local() {
        let local = [ip("198.51.100.20"), ip("2001:db8::20")];
        assert!(!mapping_address(ip("2001:db8::20"), &local).failed());
        let check = mapping_address(ip("198.51.100.21"), &local);
        assert!(check.failed());
        assert_eq!(check.name, "-x online address 198.51.100.21");
    }

    #[test]
    fn intercept_connect_failures_say_what_they_mean() {
        let ok = intercept(
            "198.51.100.40:36524",
            &Ok("198.51.100.40:36524".parse().unwrap()),
        );
        assert!(!ok.failed());
        let refused = intercept("h:1", &Err(error(ErrorKind::ConnectionRefused)));
        assert!(refused.failed() && refused.detail.contains("no intercept listens"));
        let timed_out = intercept("h:1", &Err(error(ErrorKind::TimedOut)));
        assert!(timed_out.failed() && timed_out.detail.contains("firewall"));
        let unresolved = intercept("nowhere:1", &Err(io::Error::other("no such host")));
        assert!(unresolved.failed() && unresolved.detail.contains("no such host"));
    }

    #[test]
    fn the_route_and_the_target_port() {
        let target = ip("198.51.100.30");
        assert!(!route_to_target(target, &Ok(ip("198.51.100.20"))).failed());
        let none = route_to_target(target, &Err(error(ErrorKind::NetworkUnreachable)));
        assert!(none.failed() && none.to_string().contains("ip route get 198.51.100.30"));
        let service = "198.51.100.30:8080".parse().unwrap();
        assert!(!target_port(service, &Ok(())).failed());
        let closed = target_port(service, &Err(error(ErrorKind::ConnectionRefused)));
        assert!(closed.failed() && closed.detail.contains("nothing listens"));
        let filtered = target_port(service, &Err(error(ErrorKind::TimedOut)));
        assert_eq!(filtered.status, Status::Info, "a firewall is not a failure");
    }

    #[test]
    fn forwarding_must_be_off() {
        assert!(!forwarding("net.ipv4.ip_forward", Some("0\n")).failed());
        assert!(!forwarding("net.ipv6.conf.all.forwarding", None).failed());
        let on = forwarding("net.ipv4.ip_forward", Some("1\n"));
        assert!(on.failed());
        assert!(on.detail.starts_with("is 1: this host forwards"), "{on}");
        assert!(on.to_string().contains("sysctl -w net.ipv4.ip_forward=0"));
    }

    #[test]
    fn ipv6_forwarding_matters_where_a_capture_device_carries_ipv6() {
        let device =
            |disabled: Option<&str>| vec![("eth0".to_string(), disabled.map(String::from))];
        let on = ipv6_forwarding(Some("1\n"), &device(Some("0\n")));
        assert!(on.failed(), "{on}");
        assert!(on.detail.starts_with("is 1: this host forwards"), "{on}");
        for off in [device(Some("1\n")), device(None)] {
            let check = ipv6_forwarding(Some("1"), &off);
            assert_eq!(check.status, Status::Info, "{check}");
            assert!(
                check.detail.contains("no capture device carries IPv6"),
                "{check}"
            );
        }
        let mixed = [device(Some("1")), device(Some("0"))].concat();
        assert!(ipv6_forwarding(Some("1"), &mixed).failed());
        assert!(!ipv6_forwarding(Some("0"), &device(Some("0"))).failed());
    }

    #[test]
    fn the_nfqueue_rule_must_queue_to_the_queue_read() {
        let rule = "-A OUTPUT -d 198.51.100.0/24 -p tcp -m tcp --sport 80 -j NFQUEUE --queue-num 0";
        let listed = |text: &str| Listing::Listed(format!("-P OUTPUT ACCEPT\n{text}\n"));
        let none = listed("");
        let check = nfqueue_rule(0, &listed(rule), &none);
        assert_eq!(check.status, Status::Pass, "{check}");
        assert!(check.detail.starts_with("iptables `-A OUTPUT"), "{check}");
        assert!(!nfqueue_rule(0, &none, &listed(rule)).failed(), "IPv6 only");
        let other_queue = nfqueue_rule(1, &listed(rule), &none);
        assert!(other_queue.failed());
        assert!(
            other_queue
                .detail
                .starts_with("no OUTPUT rule queues to queue 1")
        );
        assert!(other_queue.to_string().contains("--queue-num 1"));
        let bypass = nfqueue_rule(0, &listed(&format!("{rule} --queue-bypass")), &none);
        assert!(bypass.failed() && bypass.detail.contains("--queue-bypass"));
    }

    #[test]
    fn the_nfqueue_rule_check_says_when_iptables_is_missing_or_fails() {
        let missing = nfqueue_rule(0, &Listing::NotInstalled, &Listing::NotInstalled);
        assert!(missing.failed());
        assert!(missing.detail.starts_with("iptables is not installed"));
        let denied = nfqueue_rule(
            0,
            &Listing::Failed("Permission denied (you must be root)".into()),
            &Listing::NotInstalled,
        );
        assert!(denied.failed());
        assert!(denied.detail.contains("Permission denied"), "{denied}");
    }

    #[test]
    fn the_rules_clients_need_a_route_on_the_target() {
        let found = reply_route("203.0.113.0/24", &Ok(ip("198.51.100.30")));
        assert_eq!(found.status, Status::Pass, "{found}");
        assert_eq!(
            found.name,
            "route to 203.0.113.0/24 (the NFQUEUE rule's -d)"
        );
        let none = reply_route("203.0.113.0/24", &Err(error(ErrorKind::NetworkUnreachable)));
        assert!(none.failed());
        assert!(none.detail.contains("the rule never queues them"), "{none}");
        assert!(
            none.to_string().contains("`ip route get 203.0.113.0`"),
            "{none}"
        );
    }

    #[test]
    fn rp_filter_is_shown_not_judged() {
        let values = [
            ("all".to_string(), "1\n".to_string()),
            ("eth0".into(), "2".into()),
        ];
        let check = rp_filter(&values);
        assert_eq!(check.status, Status::Info);
        assert_eq!(check.detail, "all=1, eth0=2");
    }
}
