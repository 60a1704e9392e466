//! `copy --check` and `intercept --check`: which checks each runs for its flags, the report
//! on stdout and the verdict (exit 1 naming each failed check). Also the host checks
//! intercept's guard makes when it starts and while it runs.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;

use super::causes::{self, Setup};
use super::path::{self, ProbeFlow};
use super::{Check, failures, probe, render, rules, verdicts};
use crate::capabilities::{self, Capability};
use crate::capture;
use crate::cli::{CopyArgs, InterceptArgs};
use crate::packet::Flow;
use crate::replay::sink::RawSocketSink;
use crate::stats::Verdict;

/// `tcpcopy copy --check`: capabilities, capture devices, the -x online addresses, each
/// intercept, the route and port of each target, and the path probe of each target (its
/// replies to a `-c` address come back through an intercept); then, unless a probe failed
/// and named them, what only other hosts can show.
pub fn check_copy(args: &CopyArgs) -> Result<Verdict> {
    let mappings = args.all_mappings();
    let live = args.offline.is_empty();
    let sends = args.output.is_none();
    let mut checks = Vec::new();
    let purpose = match (live, sends) {
        (true, true) => "capturing and the raw socket",
        (true, false) => "capturing",
        (false, _) => "the raw socket",
    };
    if live || sends {
        checks.push(verdicts::capability(
            capabilities::effective(),
            Capability::NetRaw,
            purpose,
        ));
    }
    let devices = capture::devices().map_err(|err| format!("{err:#}"));
    if live {
        let names = if args.interfaces.is_empty() {
            capture::default_devices(&mappings)
        } else {
            Ok(args.interfaces.clone())
        };
        match names {
            Ok(names) => {
                checks.extend(names.iter().map(|name| verdicts::interface(name, &devices)))
            }
            Err(err) => checks.push(Check::fail(
                "interfaces",
                format!("{err:#}"),
                "name the capture device with -i",
                super::Topic::Interface,
            )),
        }
        let local: Vec<_> = devices
            .iter()
            .flatten()
            .flat_map(|device| device.addresses.iter().copied())
            .collect();
        let online: BTreeSet<_> = mappings.iter().filter_map(|m| m.online_ip).collect();
        checks.extend(
            online
                .into_iter()
                .map(|ip| verdicts::mapping_address(ip, &local)),
        );
    }
    let intercepts = args.all_intercepts();
    let mut reachable = Vec::new();
    for intercept in &intercepts {
        let connected = probe::connect_host(&intercept.host, intercept.port);
        checks.push(verdicts::intercept(&intercept.to_string(), &connected));
        reachable.extend(connected.ok());
    }
    let setup = Setup::new(&mappings, &intercepts, args.client_ips.as_ref());
    let mut probe_failed = false;
    if sends {
        let targets: BTreeSet<_> = mappings.iter().map(|m| m.target).collect();
        for target in targets {
            checks.push(verdicts::route_to_target(
                target.ip(),
                &probe::route_source(target.ip()),
            ));
            let connected = probe::connect(target);
            checks.push(verdicts::target_port(target, &connected));
            let port_open = connected.is_ok();
            if let Some(check) = path_check(args, setup.as_ref(), target, port_open, &reachable) {
                probe_failed |= check.failed();
                checks.push(check);
            }
        }
    }
    print!("{}", render(&checks));
    if let Some(setup) = setup.filter(|_| !probe_failed) {
        println!(
            "Not checked from here (other hosts; copy names these when no SYN-ACK comes back):"
        );
        for cause in causes::no_reply(&setup) {
            println!(
                "  - {}: {}; check: {} ({})",
                cause.place,
                cause.what,
                cause.check,
                cause.topic.see()
            );
        }
    }
    Ok(verdict(&checks))
}

/// The path probe toward `target` through the `reachable` intercepts, from a `-c` address
/// of its family; `None` where there is nothing to probe with (no `-c` address of that
/// family: the copies keep the real clients' addresses; or no intercept accepted). A
/// `port_open` (this host connected to it) is no cause of silence.
fn path_check(
    args: &CopyArgs,
    setup: Option<&Setup>,
    target: SocketAddr,
    port_open: bool,
    reachable: &[SocketAddr],
) -> Option<Check> {
    let setup = setup.filter(|_| !reachable.is_empty())?;
    let client = args
        .client_ips
        .as_ref()?
        .pick(target, 0, target.is_ipv6())?;
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64)
        ^ u64::from(std::process::id()).rotate_left(32);
    let flow = ProbeFlow::new(client, target, seed);
    let setup = Setup {
        target,
        client: Some(client),
        ..setup.clone()
    };
    let found = run_probe(args, reachable, &flow);
    let causes: Vec<_> = causes::no_reply(&setup)
        .into_iter()
        .filter(|cause| !(port_open && cause.topic == super::Topic::TargetPort))
        .collect();
    Some(path::verdict(&flow, &found, &causes))
}

/// Registers `flow` on the intercepts, sends its SYN with a raw socket and waits
/// [`path::WAIT`] for the answer.
fn run_probe(
    args: &CopyArgs,
    intercepts: &[SocketAddr],
    flow: &ProbeFlow,
) -> io::Result<Option<path::Answer>> {
    let secret = args
        .secret
        .secret_file
        .as_deref()
        .map(crate::secret_file::load)
        .transpose()
        .map_err(|err| io::Error::other(format!("{err:#}")))?;
    let mut sink = RawSocketSink::open().map_err(|err| io::Error::other(format!("{err:#}")))?;
    let registered = Flow {
        client: flow.client,
        target: flow.target,
    };
    let mut replies = probe::InterceptReplies::register(intercepts, secret, registered)?;
    path::probe(flow, &mut sink, &mut replies, Instant::now() + path::WAIT)
}

/// `tcpcopy intercept --check`: capabilities and devices, then [`intercept_host_checks`].
pub fn check_intercept(args: &InterceptArgs) -> Result<Verdict> {
    let caps = capabilities::effective();
    let mut checks = Vec::new();
    if args.nfqueue.is_some() {
        checks.push(verdicts::capability(
            caps,
            Capability::NetAdmin,
            "binding an NFQUEUE queue",
        ));
    }
    if !args.interfaces.is_empty() {
        checks.push(verdicts::capability(
            caps,
            Capability::NetRaw,
            "capturing the replies",
        ));
        let devices = capture::devices().map_err(|err| format!("{err:#}"));
        checks.extend(
            args.interfaces
                .iter()
                .map(|name| verdicts::interface(name, &devices)),
        );
    }
    checks.extend(intercept_host_checks(args));
    print!("{}", render(&checks));
    Ok(verdict(&checks))
}

/// What intercept's host must be set to: forwarding off on an assistant (pcap mode), the
/// NFQUEUE rule on a target and a route to the clients it names (target mode), and
/// rp_filter, shown.
fn intercept_host_checks(args: &InterceptArgs) -> Vec<Check> {
    let mut checks = Vec::new();
    if !args.interfaces.is_empty() {
        checks.extend(forwarding_checks(&args.interfaces));
    }
    if let Some(queue) = args.nfqueue {
        checks.extend(nfqueue_checks(queue));
    }
    checks.push(verdicts::rp_filter(&probe::rp_filter()));
    checks
}

/// IPv4 and IPv6 forwarding on an assistant capturing on `interfaces`: IPv6's matters where
/// a capture device carries IPv6.
pub fn forwarding_checks(interfaces: &[String]) -> Vec<Check> {
    let ipv4 = verdicts::IPV4_FORWARDING;
    vec![
        verdicts::forwarding(ipv4, probe::sysctl(ipv4).as_deref()),
        verdicts::ipv6_forwarding(
            probe::sysctl(verdicts::IPV6_FORWARDING).as_deref(),
            &probe::ipv6_disabled(interfaces),
        ),
    ]
}

/// [`nfqueue_rule_check`], then a route on this host to each `-d` network of a rule that
/// queues to `queue`: the kernel routes a reply before the rule sees it.
fn nfqueue_checks(queue: u16) -> Vec<Check> {
    let listings = [
        probe::output_chain("iptables"),
        probe::output_chain("ip6tables"),
    ];
    let mut checks = vec![verdicts::nfqueue_rule(queue, &listings[0], &listings[1])];
    let destinations: BTreeSet<(String, IpAddr)> = listings
        .iter()
        .filter_map(|listing| match listing {
            verdicts::Listing::Listed(text) => Some(rules::queue_rules(text)),
            _ => None,
        })
        .flatten()
        .filter(|rule| rule.sends_to(queue))
        .filter_map(|rule| Some((rule.destination.clone()?, rule.destination_addr()?)))
        .collect();
    checks.extend(
        destinations
            .iter()
            .map(|(net, addr)| verdicts::reply_route(net, &probe::route_source(*addr))),
    );
    checks
}

/// An iptables or ip6tables OUTPUT rule queues to `queue`, without `--queue-bypass`.
pub fn nfqueue_rule_check(queue: u16) -> Check {
    verdicts::nfqueue_rule(
        queue,
        &probe::output_chain("iptables"),
        &probe::output_chain("ip6tables"),
    )
}

fn verdict(checks: &[Check]) -> Verdict {
    match failures(checks) {
        None => Verdict::Passed,
        Some(why) => Verdict::Failed(why),
    }
}
