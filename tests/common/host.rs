//! The lab's hosts and addresses, as `scripts/lab.sh` builds them.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

/// The network that `tcpcopy copy -c` rewrites client addresses into; the target routes it
/// via the assistant.
pub const CLIENT_NET: &str = "203.0.113.0/24";

/// The IPv6 network `-c` rewrites clients into in an IPv6 lab (`Lab::up_ipv6`): a block of
/// the 2001:db8:1::/64 the target routes via the assistant.
pub const CLIENT_NET6: &str = "2001:db8:1::/120";

/// One host of the lab: its own network namespace with `eth0` on the lab's bridge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    /// Sends the real requests to the online host.
    Client,
    /// The production server; `tcpcopy copy` runs here.
    Online,
    /// A second production server, for several copy processes feeding one target.
    Online2,
    /// The server that receives the copies.
    Target,
    /// Black-holes the target's replies to rewritten clients; `tcpcopy intercept` runs here.
    Assistant,
}

impl Host {
    /// Every host, in the order the lab creates them.
    pub const ALL: [Host; 5] = [
        Host::Client,
        Host::Online,
        Host::Online2,
        Host::Target,
        Host::Assistant,
    ];

    /// The name `scripts/lab.sh` uses (the namespace is `PREFIX-name`).
    pub fn name(self) -> &'static str {
        match self {
            Host::Client => "client",
            Host::Online => "online",
            Host::Online2 => "online2",
            Host::Target => "target",
            Host::Assistant => "assistant",
        }
    }

    /// The host's address on `eth0`.
    pub fn addr(self) -> Ipv4Addr {
        match self {
            Host::Client => Ipv4Addr::new(198, 51, 100, 10),
            Host::Online => Ipv4Addr::new(198, 51, 100, 20),
            Host::Online2 => Ipv4Addr::new(198, 51, 100, 21),
            Host::Target => Ipv4Addr::new(198, 51, 100, 30),
            Host::Assistant => Ipv4Addr::new(198, 51, 100, 40),
        }
    }

    /// The host's address with `port`.
    pub fn socket(self, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(self.addr(), port)
    }

    /// The host's IPv6 address on `eth0` in an IPv6 lab: 2001:db8::N, N the last byte of
    /// its IPv4 address written in decimal digits (the client 2001:db8::10).
    pub fn addr6(self) -> Ipv6Addr {
        let last = self.addr().octets()[3];
        let digits = u16::from(last / 10) << 4 | u16::from(last % 10);
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, digits)
    }

    /// The host's IPv6 address with `port`.
    pub fn socket6(self, port: u16) -> SocketAddrV6 {
        SocketAddrV6::new(self.addr6(), port, 0, 0)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
