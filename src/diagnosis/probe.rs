//! The readers behind the checks: sysctl files, the OUTPUT chain's rules, connects and route
//! lookups. Each returns what it read, as it read it; judging it is `verdicts`' job. None
//! changes anything: a connect is closed at once, a route lookup sends nothing. The one
//! exception is the path probe's [`InterceptReplies`]: it registers one flow on the
//! intercepts, for the SYN `path` sends and resets.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use super::path::ReplyFeed;
use super::verdicts::Listing;
use crate::packet::{self, Flow, Segment};
use crate::proto::{
    self, CopyHandshake, CopyStep, InterceptMessage, InterceptStreamDecoder, Registration, Secret,
    Version,
};

/// How long a connect may take before the peer counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A sysctl by its dotted name, e.g. `net.ipv4.ip_forward`, read from /proc/sys
/// (`None`: it does not exist here).
pub fn sysctl(key: &str) -> Option<String> {
    read_proc_sys(&key.replace('.', "/"))
}

fn read_proc_sys(path: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/sys/{path}")).ok()
}

/// `net.ipv4.conf.*.rp_filter`: `all`, `default`, then each device, by name.
pub fn rp_filter() -> Vec<(String, String)> {
    let mut scopes: Vec<String> = std::fs::read_dir("/proc/sys/net/ipv4/conf")
        .map(|dir| {
            dir.filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    let rank = |scope: &str| match scope {
        "all" => 0,
        "default" => 1,
        _ => 2,
    };
    scopes.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    scopes
        .into_iter()
        .filter_map(|scope| {
            // A device name may hold dots: read its directory, not a dotted key.
            let value = read_proc_sys(&format!("net/ipv4/conf/{scope}/rp_filter"))?;
            Some((scope, value))
        })
        .collect()
}

/// `net.ipv6.conf.DEVICE.disable_ipv6` of each of `devices` (`any`: of every device), by
/// name; `None` where IPv6 is not there at all.
pub fn ipv6_disabled(devices: &[String]) -> Vec<(String, Option<String>)> {
    let names: Vec<String> = if devices.iter().any(|device| device == "any") {
        std::fs::read_dir("/proc/sys/net/ipv6/conf")
            .map(|dir| {
                dir.filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                    .filter(|name| name != "all" && name != "default")
                    .collect()
            })
            .unwrap_or_default()
    } else {
        devices.to_vec()
    };
    names
        .into_iter()
        .map(|device| {
            // A device name may hold dots: read its directory, not a dotted key.
            let value = read_proc_sys(&format!("net/ipv6/conf/{device}/disable_ipv6"));
            (device, value)
        })
        .collect()
}

/// `TOOL -S OUTPUT` (iptables or ip6tables).
pub fn output_chain(tool: &str) -> Listing {
    match Command::new(tool).args(["-S", "OUTPUT"]).output() {
        Err(err) if err.kind() == ErrorKind::NotFound => Listing::NotInstalled,
        Err(err) => Listing::Failed(err.to_string()),
        Ok(output) if output.status.success() => {
            Listing::Listed(String::from_utf8_lossy(&output.stdout).into_owned())
        }
        Ok(output) => Listing::Failed(format!(
            "{} ({})",
            String::from_utf8_lossy(&output.stderr).trim(),
            output.status
        )),
    }
}

/// Connects to `host` (a name or an address) on `port`, within [`CONNECT_TIMEOUT`], and
/// closes again; the address it connected to.
pub fn connect_host(host: &str, port: u16) -> io::Result<SocketAddr> {
    let mut last = io::Error::other(format!("{host} has no address"));
    for addr in (host, port).to_socket_addrs()? {
        match connect(addr) {
            Ok(()) => return Ok(addr),
            Err(err) => last = err,
        }
    }
    Err(last)
}

/// Connects to `addr` within [`CONNECT_TIMEOUT`] and closes again.
pub fn connect(addr: SocketAddr) -> io::Result<()> {
    TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map(drop)
}

/// The source address the kernel routes from toward `target`: a UDP socket's connect looks
/// the route up without sending anything.
pub fn route_source(target: IpAddr) -> io::Result<IpAddr> {
    let any: IpAddr = match target {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind((any, 0))?;
    socket.connect((target, 9))?;
    Ok(socket.local_addr()?.ip())
}

/// The path probe's connections to the intercepts, its one flow registered on each as a
/// copy shard registers a session's (see `replay::link`), and the replies routed back.
pub struct InterceptReplies {
    links: Vec<ProbeLink>,
    replies: VecDeque<Segment>,
}

struct ProbeLink {
    peer: SocketAddr,
    stream: TcpStream,
    decoder: InterceptStreamDecoder,
    handshake: CopyHandshake,
    unsent: Vec<u8>,
    flow: Flow,
    registered: bool,
}

impl InterceptReplies {
    /// Connects to each of `intercepts` (within [`CONNECT_TIMEOUT`]), says the hello,
    /// proving `secret` if given, and registers `flow`.
    pub fn register(
        intercepts: &[SocketAddr],
        secret: Option<Secret>,
        flow: Flow,
    ) -> io::Result<InterceptReplies> {
        let mut links = Vec::new();
        for &peer in intercepts {
            let stream = TcpStream::connect_timeout(&peer, CONNECT_TIMEOUT)?;
            stream.set_nodelay(true)?;
            let mut link = ProbeLink {
                peer,
                stream,
                decoder: InterceptStreamDecoder::new(Version::LATEST),
                handshake: CopyHandshake::new(secret.clone(), Instant::now(), CONNECT_TIMEOUT),
                unsent: Vec::new(),
                flow,
                registered: false,
            };
            proto::encode_hello(Version::LATEST, &mut link.unsent);
            if let Some(version) = link.handshake.registrations() {
                link.register(version);
            }
            link.write_unsent()?;
            links.push(link);
        }
        Ok(InterceptReplies {
            links,
            replies: VecDeque::new(),
        })
    }
}

impl ProbeLink {
    fn register(&mut self, version: Version) {
        let Flow { client, target } = self.flow;
        // The probe's flow is of the family the intercept speaks (an IPv4 one in version 6).
        if proto::encode_registration(
            version,
            &Registration::add(client, target),
            &mut self.unsent,
        )
        .is_ok()
        {
            self.registered = true;
        }
    }

    fn write_unsent(&mut self) -> io::Result<()> {
        self.stream.write_all(&self.unsent)?;
        self.unsent.clear();
        Ok(())
    }

    /// Reads what the intercept sent; the replies go to `replies`.
    fn read(&mut self, replies: &mut VecDeque<Segment>) -> io::Result<()> {
        let mut buffer = [0; 16 << 10];
        let n = match self.stream.read(&mut buffer) {
            Ok(0) => {
                return Err(io::Error::other(format!(
                    "intercept {} closed the connection",
                    self.peer
                )));
            }
            Ok(n) => n,
            Err(err) if err.kind() == ErrorKind::Interrupted => return Ok(()),
            Err(err) => return Err(err),
        };
        self.decoder.feed(&buffer[..n]);
        let peer = self.peer;
        let bad = move |err: proto::ProtoError| {
            io::Error::other(format!("bad data from intercept {peer}: {err}"))
        };
        while let Some(message) = self.decoder.next_message().map_err(bad)? {
            match self.handshake.on_message(message, &mut self.unsent) {
                CopyStep::Deliver(InterceptMessage::Reply(reply)) => {
                    if let Ok(segment) = packet::parse_ip_headers(reply.headers()) {
                        replies.push_back(segment);
                    }
                }
                CopyStep::Deliver(_) | CopyStep::Held => {}
                CopyStep::Opened { .. } => {
                    proto::encode_instance(
                        crate::replay::link::process_instance(),
                        &mut self.unsent,
                    );
                    if !self.registered {
                        self.register(Version::V7);
                    }
                }
                CopyStep::Failed(err) => {
                    let _ = self.write_unsent();
                    return Err(io::Error::other(format!("intercept {}: {err}", self.peer)));
                }
            }
        }
        self.write_unsent()
    }
}

impl ReplyFeed for InterceptReplies {
    fn next_reply(&mut self, deadline: Instant) -> io::Result<Option<Segment>> {
        loop {
            if let Some(reply) = self.replies.pop_front() {
                return Ok(Some(reply));
            }
            let now = Instant::now();
            if now >= deadline || self.links.is_empty() {
                return Ok(None);
            }
            let mut fds: Vec<libc::pollfd> = self
                .links
                .iter()
                .map(|link| crate::poll::pollfd(link.stream.as_raw_fd(), libc::POLLIN))
                .collect();
            if !crate::poll::poll(&mut fds, deadline - now)? {
                continue;
            }
            for (link, fd) in self.links.iter_mut().zip(&fds) {
                if fd.revents != 0 {
                    link.read(&mut self.replies)?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_every_linux_host_has() {
        assert!(sysctl("net.ipv4.ip_forward").is_some());
        assert_eq!(sysctl("net.ipv4.no_such_setting"), None);
        assert!(rp_filter().iter().any(|(scope, _)| scope == "all"));
        let none = ipv6_disabled(&["tcpcopy-none0".to_string()]);
        assert_eq!(none, [("tcpcopy-none0".to_string(), None)]);
        let loopback = IpAddr::from(Ipv4Addr::LOCALHOST);
        assert_eq!(route_source(loopback).unwrap(), loopback);
        assert_eq!(output_chain("/nonexistent/iptables"), Listing::NotInstalled);
    }

    #[test]
    fn connects_and_says_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(connect_host("127.0.0.1", addr.port()).unwrap(), addr);
        drop(listener);
        let err = connect(addr).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    }
}
