//! Faults put on the replay path of a lab, all with netfilter rules on the target (the lab's
//! kernel has no netem qdisc): random loss with the `statistic` match, and packets queued to
//! a [`super::reorder::Reorderer`], or only counted. Each applies to one [`Link`]; what the
//! rules did is read back from their own packet counters. Also what the target's kernel tells about it: its TCP
//! retransmissions and the connections it still holds.

use anyhow::{Context, Result, ensure};

use super::host::{CLIENT_NET, Host};
use super::lab::Lab;

/// Marks the rules of this module, so their counters can be read back.
const SEEN_COMMENT: &str = "tcpcopy-e2e-seen";
const DROP_COMMENT: &str = "tcpcopy-e2e-drop";

/// A direction of the replay path, as the target's netfilter sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Copy's packets arriving at the target from the rewritten clients (online → target).
    CopiesToTarget,
    /// The target's replies leaving for the rewritten clients, routed via the assistant
    /// (target → assistant), where intercept captures them.
    RepliesToAssistant,
}

impl Link {
    /// The target's chain the link's packets pass.
    fn chain(self) -> &'static str {
        match self {
            Link::CopiesToTarget => "INPUT",
            Link::RepliesToAssistant => "OUTPUT",
        }
    }

    /// The match of the link's packets for the service on `port`.
    fn matches(self, port: &str) -> [&str; 6] {
        match self {
            Link::CopiesToTarget => ["-p", "tcp", "-s", CLIENT_NET, "--dport", port],
            Link::RepliesToAssistant => ["-p", "tcp", "-d", CLIENT_NET, "--sport", port],
        }
    }
}

/// Random loss on a link: the packets the link carried and those dropped, by the rules' own
/// counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossCounts {
    pub seen: u64,
    pub dropped: u64,
}

impl LossCounts {
    /// The loss rate exercised.
    pub fn rate(&self) -> f64 {
        self.dropped as f64 / self.seen.max(1) as f64
    }
}

impl Lab {
    /// Drops `link`'s packets of the service on `port` at random with `probability`, and
    /// counts every packet of the link (`iptables -m statistic --mode random`).
    pub fn lose_randomly(&self, link: Link, port: u16, probability: f64) -> Result<()> {
        let service = port.to_string();
        let probability = probability.to_string();
        let matches = link.matches(&service);
        let drop = [
            &["iptables", "-I", link.chain(), "1"][..],
            &matches,
            &[
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &probability,
            ],
            &["-m", "comment", "--comment", DROP_COMMENT, "-j", "DROP"],
        ]
        .concat();
        self.run_ok(Host::Target, &drop)
            .context("adding the loss rule")?;
        self.count_link(link, port)
    }

    /// Counts every packet of `link` for the service on `port` (a rule ahead of any other of
    /// `link`'s chain), read back with [`Lab::link_packets`].
    pub fn count_link(&self, link: Link, port: u16) -> Result<()> {
        let port = port.to_string();
        let seen = [
            &["iptables", "-I", link.chain(), "1"][..],
            &link.matches(&port),
            &["-m", "comment", "--comment", SEEN_COMMENT],
        ]
        .concat();
        self.run_ok(Host::Target, &seen)
            .context("adding the counting rule")?;
        Ok(())
    }

    /// The packets [`Lab::count_link`] counted on `link` so far.
    pub fn link_packets(&self, link: Link) -> Result<u64> {
        self.rule_packets(link, SEEN_COMMENT)
    }

    /// What the loss rules of `link` counted so far.
    pub fn loss_counts(&self, link: Link) -> Result<LossCounts> {
        Ok(LossCounts {
            seen: self.rule_packets(link, SEEN_COMMENT)?,
            dropped: self.rule_packets(link, DROP_COMMENT)?,
        })
    }

    /// The packet counter of `link`'s rule marked with `comment`.
    fn rule_packets(&self, link: Link, comment: &str) -> Result<u64> {
        let listing = self.run_ok(
            Host::Target,
            &["iptables", "-L", link.chain(), "-v", "-x", "-n"],
        )?;
        let line = listing
            .lines()
            .find(|line| line.contains(&format!("/* {comment} */")))
            .with_context(|| format!("no {comment} rule in:\n{listing}"))?;
        let first = line.split_whitespace().next().unwrap_or_default();
        first
            .parse()
            .with_context(|| format!("packet count of {line:?}"))
    }

    /// Queues `link`'s packets of the service on `port` to NFQUEUE `queue` (a reorderer's;
    /// bind it first: the rule has no `--queue-bypass`).
    pub fn queue_link(&self, link: Link, port: u16, queue: u16) -> Result<()> {
        self.edit_queue_rule("-I", link, port, queue)
    }

    /// Deletes the rule [`Lab::queue_link`] added.
    pub fn unqueue_link(&self, link: Link, port: u16, queue: u16) -> Result<()> {
        self.edit_queue_rule("-D", link, port, queue)
    }

    fn edit_queue_rule(&self, action: &str, link: Link, port: u16, queue: u16) -> Result<()> {
        let port = port.to_string();
        let queue = queue.to_string();
        let rule = [
            &["iptables", action, link.chain()][..],
            &link.matches(&port),
            &["-j", "NFQUEUE", "--queue-num", &queue],
        ]
        .concat();
        self.run_ok(Host::Target, &rule)
            .with_context(|| format!("iptables {action} of the NFQUEUE rule"))?;
        Ok(())
    }

    /// The segments the target's TCP has retransmitted (`TcpRetransSegs` of its namespace's
    /// /proc/net/snmp).
    pub fn target_retransmissions(&self) -> Result<u64> {
        let snmp = self.run_ok(Host::Target, &["cat", "/proc/net/snmp"])?;
        let mut tcp = snmp.lines().filter(|line| line.starts_with("Tcp: "));
        let (Some(names), Some(values)) = (tcp.next(), tcp.next()) else {
            anyhow::bail!("no Tcp lines in /proc/net/snmp:\n{snmp}");
        };
        let value = names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(name, _)| *name == "RetransSegs")
            .map(|(_, value)| value.parse::<u64>());
        match value {
            Some(Ok(value)) => Ok(value),
            _ => anyhow::bail!("no RetransSegs in /proc/net/snmp:\n{snmp}"),
        }
    }

    /// The TCP connections `host` holds on local `port`, in any state but LISTEN and
    /// TIME-WAIT (`ss` in its namespace): each line `STATE LOCAL PEER`.
    pub fn open_connections_on(&self, host: Host, port: u16) -> Result<Vec<String>> {
        let filter = format!("( sport = :{port} )");
        let listing = self.run_ok(
            host,
            &[
                "ss",
                "-Htan",
                "state",
                "all",
                "exclude",
                "listening",
                "exclude",
                "time-wait",
                &filter,
            ],
        )?;
        let connections: Vec<String> = listing
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .filter(|fields| fields.len() >= 5)
            .map(|fields| format!("{} {} {}", fields[0], fields[3], fields[4]))
            .collect();
        ensure!(
            connections.iter().all(|c| !c.starts_with("LISTEN")),
            "ss listed a listening socket: {connections:?}"
        );
        Ok(connections)
    }
}
