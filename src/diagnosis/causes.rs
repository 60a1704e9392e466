//! Why none of the target's replies come back to copy, most likely first, for the
//! deployment copy was started for: each cause names the host to look on and the command
//! that shows it. Copy's "no SYN-ACK came back" warning lists them, and `copy --check` shows
//! them as the half it cannot check from the online host.

use std::net::{IpAddr, SocketAddr};

use super::Topic;
use crate::addresses::{ClientAddresses, InterceptAddr, PortMapping};

/// Where the target's replies are caught, as copy can tell from its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Intercept runs on an assistant host the target routes the client addresses to.
    Assistant,
    /// Intercept runs on the target itself (an `-s` address is the target's).
    Target,
}

/// What copy knows of the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    pub mode: Mode,
    /// The (first) target.
    pub target: SocketAddr,
    /// An `-c` address the copies carry; `None` when they keep the real client addresses.
    pub client: Option<IpAddr>,
    /// The (first) `-s` host.
    pub intercept: String,
}

impl Setup {
    /// The setup of a copy replaying `mappings` (the first one's target stands for all)
    /// through its `-s` intercepts, with its `-c` pool; `None` without a mapping.
    pub fn new(
        mappings: &[PortMapping],
        intercepts: &[InterceptAddr],
        clients: Option<&ClientAddresses>,
    ) -> Option<Setup> {
        let target = mappings.first()?.target;
        let on_target = intercepts
            .iter()
            .any(|addr| addr.host.parse::<IpAddr>() == Ok(target.ip()));
        let any_client = SocketAddr::new(target.ip(), 0);
        Some(Setup {
            mode: if on_target {
                Mode::Target
            } else {
                Mode::Assistant
            },
            target,
            client: clients.and_then(|pool| pool.pick(any_client, 0, target.is_ipv6())),
            intercept: intercepts
                .first()
                .map_or_else(String::new, |addr| addr.host.clone()),
        })
    }
}

/// One likely cause, and how to see whether it is the one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Where to look, e.g. `on the target`.
    pub place: String,
    pub what: String,
    /// The command that shows it, or what to do.
    pub check: String,
    pub topic: Topic,
}

/// The causes of "no reply comes back" for `setup`, most likely first.
pub fn no_reply(setup: &Setup) -> Vec<Cause> {
    let port = setup.target.port();
    let clients = setup
        .client
        .map_or_else(|| "the clients".to_string(), |ip| ip.to_string());
    let on = |place: &str| format!("on {place}");
    let target = on("the target");
    let intercept_host = on(&format!("the assistant {}", setup.intercept));
    let (ip_cmd, sysctl_family) = if setup.target.is_ipv6() {
        ("ip -6", "net.ipv6.conf.all.forwarding")
    } else {
        ("ip", "net.ipv4.ip_forward")
    };
    let target_route = |what: &str, must: &str| Cause {
        place: target.clone(),
        what: what.to_string(),
        check: format!("`{ip_cmd} route get {clients}` {must}"),
        topic: Topic::TargetRoute,
    };
    let rp_filter = Cause {
        place: target.clone(),
        what: "rp_filter drops the copies: it has no route back to their source on the \
               interface they arrive on"
            .into(),
        check: "`sysctl -a 2>/dev/null | grep '\\.rp_filter'` (1 is strict: the route back \
                must leave by that interface; 2 is loose)"
            .into(),
        topic: Topic::RpFilter,
    };
    let closed_port = |catcher: &str| Cause {
        place: target.clone(),
        what: format!(
            "nothing listens on port {port}: the target refuses every SYN with a RST, which \
             {catcher} misses when it names another port"
        ),
        check: format!(
            "`ss -ltn 'sport = :{port}'` on the target lists the listener (`tcpcopy copy \
             --check` says refused)"
        ),
        topic: Topic::TargetPort,
    };
    let anti_spoofing = Cause {
        place: "the network between the online host and the target".into(),
        what: "cloud anti-spoofing drops packets whose source is not the sending host's \
               address"
            .into(),
        check: format!(
            "on the target, `tcpdump -ni any 'tcp dst port {port} and tcp[tcpflags] & tcp-syn != 0'` \
             shows whether the SYNs arrive at all; if not, turn off the source/destination \
             check of the online host's interface"
        ),
        topic: Topic::AntiSpoofing,
    };
    match setup.mode {
        Mode::Assistant => vec![
            target_route(
                "no route for the copies' client addresses via the assistant",
                &format!("must say `via {}`", setup.intercept),
            ),
            rp_filter,
            closed_port("intercept's capture filter (-F)"),
            Cause {
                place: intercept_host.clone(),
                what: "IP forwarding is on: the assistant passes the replies on instead of \
                       swallowing them"
                    .into(),
                check: format!(
                    "`sysctl {sysctl_family}` must be 0 (`tcpcopy intercept --check` says)"
                ),
                topic: Topic::IpForward,
            },
            Cause {
                place: intercept_host,
                what: "intercept's capture filter (-F) does not match the replies".into(),
                check: format!(
                    "`tcpdump -ni IFACE 'tcp and src port {port}'` sees the replies there, \
                     and intercept's -F must select them too"
                ),
                topic: Topic::CaptureFilter,
            },
            anti_spoofing,
        ],
        Mode::Target => {
            let tables = if setup.target.is_ipv6() {
                "ip6tables"
            } else {
                "iptables"
            };
            let mut causes = vec![Cause {
                place: target.clone(),
                what: "no iptables OUTPUT rule queues the replies to intercept's NFQUEUE queue"
                    .into(),
                check: format!(
                    "`{tables} -S OUTPUT | grep NFQUEUE` (`tcpcopy intercept --nfqueue N \
                     --check` says)"
                ),
                topic: Topic::NfqueueRule,
            }];
            causes.push(closed_port("the NFQUEUE rule's --sport"));
            if setup.client.is_some() {
                causes.push(target_route(
                    "no route at all for the copies' client addresses (the replies are \
                     routed before the rule queues them)",
                    "must find a route",
                ));
                causes.push(rp_filter);
                causes.push(anti_spoofing);
            }
            causes
        }
    }
}

/// `causes` as numbered lines, each on a line of its own indented by `indent`: where, what,
/// the command that checks it and the guide's section.
pub fn numbered(causes: &[Cause], indent: &str) -> String {
    let mut lines = String::new();
    for (n, cause) in causes.iter().enumerate() {
        lines.push_str(&format!(
            "\n{indent}{}. {}: {}; check: {} ({})",
            n + 1,
            cause.place,
            cause.what,
            cause.check,
            cause.topic.see()
        ));
    }
    lines
}

/// Copy's warning when SYNs of `sessions` new sessions went unanswered for `seconds`.
pub fn no_reply_message(setup: &Setup, sessions: u64, seconds: u64) -> String {
    let mode = match setup.mode {
        Mode::Assistant => format!("assistant mode: -s {} is not the target", setup.intercept),
        Mode::Target => format!("target mode: -s {} is the target", setup.intercept),
    };
    let mut message = format!(
        "no SYN-ACK came back: copy sent the SYNs of {sessions} new session(s) over {seconds}s \
         and no reply of the target reached it through any intercept ({mode}). Likely causes, \
         most likely first:"
    );
    message.push_str(&numbered(&no_reply(setup), "  "));
    message.push_str(&format!(
        "\n`tcpcopy copy --check` here and `tcpcopy intercept --check` on {} run the local \
         checks ({})",
        setup.intercept,
        Topic::NoSynAck.see()
    ));
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addresses::parse_list;

    fn setup(target: &str, intercept: &str, clients: Option<&str>) -> Setup {
        assert_eq!(Setup::new(&[], &[], None), None);
        let pool = clients.map(|text| text.parse::<ClientAddresses>().unwrap());
        let mapping: Vec<PortMapping> = parse_list(&format!("80-{target}")).unwrap();
        Setup::new(&mapping, &[intercept.parse().unwrap()], pool.as_ref()).unwrap()
    }

    fn topics(setup: &Setup) -> Vec<Topic> {
        no_reply(setup).iter().map(|cause| cause.topic).collect()
    }

    #[test]
    fn an_intercept_elsewhere_is_assistant_mode_and_the_route_comes_first() {
        let setup = setup("198.51.100.30:80", "198.51.100.40", Some("203.0.113.7"));
        assert_eq!(setup.mode, Mode::Assistant);
        assert_eq!(
            topics(&setup),
            [
                Topic::TargetRoute,
                Topic::RpFilter,
                Topic::TargetPort,
                Topic::IpForward,
                Topic::CaptureFilter,
                Topic::AntiSpoofing
            ]
        );
        let route = &no_reply(&setup)[0];
        assert_eq!(route.place, "on the target");
        assert_eq!(
            route.check,
            "`ip route get 203.0.113.7` must say `via 198.51.100.40`"
        );
    }

    #[test]
    fn an_intercept_on_the_target_is_target_mode_and_the_rule_comes_first() {
        let real_clients = setup("198.51.100.30:80", "198.51.100.30:36524", None);
        assert_eq!(real_clients.mode, Mode::Target);
        assert_eq!(
            topics(&real_clients),
            [Topic::NfqueueRule, Topic::TargetPort]
        );
        let rewritten = setup(
            "[2001:db8::30]:80",
            "[2001:db8::30]",
            Some("2001:db8:1::/120"),
        );
        assert_eq!(
            topics(&rewritten),
            [
                Topic::NfqueueRule,
                Topic::TargetPort,
                Topic::TargetRoute,
                Topic::RpFilter,
                Topic::AntiSpoofing
            ]
        );
        assert!(
            no_reply(&rewritten)[0]
                .check
                .starts_with("`ip6tables -S OUTPUT")
        );
        assert!(
            no_reply(&rewritten)[2]
                .check
                .starts_with("`ip -6 route get 2001:db8:1::")
        );
        assert!(
            no_reply(&rewritten)[1]
                .what
                .starts_with("nothing listens on port 80: the target refuses every SYN")
        );
    }

    #[test]
    fn the_message_numbers_the_causes_and_links_each() {
        let setup = setup("198.51.100.30:80", "198.51.100.40", Some("203.0.113.0/24"));
        let message = no_reply_message(&setup, 12, 5);
        assert!(
            message.starts_with(
                "no SYN-ACK came back: copy sent the SYNs of 12 new session(s) over 5s"
            ),
            "{message}"
        );
        assert!(message.contains("(assistant mode: -s 198.51.100.40 is not the target)"));
        assert!(message.contains(
            "\n  1. on the target: no route for the copies' client addresses via the assistant"
        ));
        assert!(message.contains("(see docs/troubleshooting.md#target-route)"));
        assert!(message.contains("\n  3. on the target: nothing listens on port 80"));
        assert!(message.contains("\n  6. the network between"));
        assert!(message.ends_with("(see docs/troubleshooting.md#no-syn-ack)"));
    }
}
