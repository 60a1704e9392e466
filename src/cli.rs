//! The command-line surface: clap derive types only. Doc comments here are the `--help`.
//!
//! Values with a syntax of their own (`-x`, `-c`, `-s`) are parsed by the types that use
//! them, so every flag error names the flag and the value.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::addresses::{ClientAddresses, InterceptAddr, PortMapping, SyntaxError, parse_list};
use crate::offline_clock::Speed;

/// Replicate live TCP traffic to a target server.
///
/// `copy` runs on each online host and replays the requests it captures to the target;
/// `intercept` runs on the target (NFQUEUE) or on an assistant host (pcap) and sends the
/// target's reply headers back to every `copy`.
#[derive(Debug, Parser)]
#[command(
    name = "tcpcopy",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace)
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "quiet", display_order = 100)]
    pub verbose: u8,
    /// Less log output (-q: warnings and errors only, -qq: errors only)
    #[arg(short, long, action = clap::ArgAction::Count, global = true, display_order = 100)]
    pub quiet: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture requests to an online service and replay them to a target server
    Copy(CopyArgs),
    /// Catch the target's replies and send their headers back to the copy processes
    Intercept(InterceptArgs),
    /// Report loss and how the target compares with the online system
    Stats(StatsArgs),
}

/// Options of `tcpcopy copy`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  tcpcopy copy -i eth0 -x 80-198.51.100.30:80 -c 203.0.113.0/24 -s 198.51.100.40
  tcpcopy copy --offline day1.pcap day2.pcapng --speed 2 --max-gap 1s --loop 3 \\
      -x 80-198.51.100.30:80 -c 203.0.113.0/24 -s 198.51.100.40")]
pub struct CopyArgs {
    /// Capture device, repeatable (e.g. eth0)
    #[arg(
        short,
        long = "interface",
        value_name = "IFACE",
        required_unless_present = "offline"
    )]
    pub interfaces: Vec<String>,

    /// Replay capture files instead of capturing live: pcap or pcapng (Ethernet with or
    /// without VLAN tags, Linux cooked v1/v2, raw IP), several merged by their timestamps.
    /// copy exits once they are replayed and --drain has passed. On a terminal a progress bar
    /// shows how far it is (not with -q)
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with = "interfaces")]
    pub offline: Vec<PathBuf>,

    /// With --offline: how fast recorded time passes, a factor (2 = twice as fast, 0.5 = half
    /// as fast) or `max`: no timing, frames go as fast as copy handles them, and each
    /// session's requests still wait for the target's answers [default: 1]
    // Not `requires = "offline"`: clap drops a requirement that conflicts with a present
    // argument (`-i`), and a default would hide the flag's absence.
    #[arg(long, value_name = "FACTOR|max", conflicts_with = "interfaces")]
    pub speed: Option<Speed>,

    /// With --offline: silences in the files longer than this are cut to it (recorded time,
    /// before --speed), e.g. 1s
    #[arg(long, value_name = "DURATION", conflicts_with = "interfaces", value_parser = humantime::parse_duration)]
    pub max_gap: Option<Duration>,

    /// With --offline: replay the files N times, one round after the other; each round moves
    /// the client ports, so rounds never share a connection on the target [default: 1]
    #[arg(long = "loop", value_name = "N", conflicts_with = "interfaces", value_parser = clap::value_parser!(u32).range(1..))]
    pub loops: Option<u32>,

    /// What to copy and where: [ONLINE_IP:]PORT-TARGET_IP:PORT[,...], repeatable.
    /// Without ONLINE_IP, packets to PORT on any of this host's own addresses are copied.
    #[arg(short = 'x', long = "map", value_name = "MAP", required = true, value_parser = parse_mappings)]
    pub mappings: Vec<Vec<PortMapping>>,

    /// Intercept(s) that send the target's replies back: HOST[:PORT][,...] (port 36524 by default)
    #[arg(short = 's', long = "intercept", value_name = "HOST[:PORT]", required = true, value_parser = parse_intercepts)]
    pub intercepts: Vec<Vec<InterceptAddr>>,

    /// Client addresses the copies use instead of the real ones: a.b.c.x, a CIDR (/20 to /32)
    /// or a list. The target must route them to the assistant host running intercept.
    #[arg(short = 'c', long = "client-ip", value_name = "IPS")]
    pub client_ips: Option<ClientAddresses>,

    /// Largest IP packet sent to the target; bigger captured segments are split
    #[arg(short = 'M', long, value_name = "BYTES", default_value_t = 1500, value_parser = clap::value_parser!(u16).range(576..))]
    pub mtu: u16,

    /// Capture BPF filter to use instead of the one built from --map (with --offline: applied
    /// while reading the files, which are not filtered otherwise)
    #[arg(short = 'F', long = "filter", value_name = "BPF")]
    pub filter: Option<String>,

    /// Kernel capture buffer per device and shard, in MiB [default: 8 on a device without
    /// receive offloads (one MTU-sized slot per packet: about 4,900 packets), 32 on one with
    /// GRO/LRO (packets up to 64 KiB, packed in blocks)]. Bursts beyond it wait in memory
    /// (up to 32 MiB per shard); overflows show as kernel_dropped
    #[arg(short = 'B', long = "buffer-size", value_name = "MIB", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub buffer_mib: Option<u16>,

    /// Replay only sessions whose SYN was captured (skip connections already open at start)
    #[arg(short = 'O', long)]
    pub only_full_sessions: bool,

    /// Send each request as soon as the target's window allows, without waiting for the
    /// previous response
    #[arg(short = 'W', long)]
    pub no_wait: bool,

    /// Shards: threads that each capture, replay and send their own share of the flows (the
    /// kernel spreads flows over them). Default: one per two cores, at most 8
    #[arg(long, visible_alias = "shards", value_name = "N", default_value_t = default_workers(), value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,

    /// Sessions each shard replays at once; new ones beyond are counted and skipped
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub max_sessions: usize,

    /// Write the copies to this pcap file instead of sending them (for inspection)
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// With --offline: how long to keep running after the end of the files so sessions finish
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub drain: Duration,

    #[command(flatten)]
    pub report: ReportArgs,
}

/// One shard per two cores, at most 8: copy shares the online host with the service it
/// copies (see docs/performance.md, "Shards").
fn default_workers() -> u16 {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    u16::try_from((cores / 2).clamp(1, 8)).unwrap_or(1)
}

/// Options of `tcpcopy intercept`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("mode").required(true).args(["nfqueue", "interfaces"]))]
pub struct InterceptArgs {
    /// Target mode: read the target's replies from NFQUEUE queue NUM and drop them
    /// (queue them with `iptables -I OUTPUT -p tcp --sport PORT -j NFQUEUE --queue-num NUM`)
    #[arg(long, value_name = "NUM", conflicts_with = "interfaces")]
    pub nfqueue: Option<u16>,

    /// Assistant mode: capture the target's replies on IFACE, repeatable
    #[arg(short, long = "interface", value_name = "IFACE", requires = "filter")]
    pub interfaces: Vec<String>,

    /// Assistant mode: BPF filter selecting the target's replies (e.g. 'tcp and src port 80')
    #[arg(short = 'F', long = "filter", value_name = "BPF")]
    pub filter: Option<String>,

    /// Assistant mode: kernel capture buffer per device, in MiB (all of it resident: the
    /// ring is mapped into intercept). Intercept captures 256 bytes of each reply, so 4 MiB
    /// holds about ten thousand; overflows show as kernel_dropped
    #[arg(short = 'B', long = "buffer-size", value_name = "MIB", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub buffer_mib: u16,

    /// Target mode: replies to these client addresses are let through instead of dropped.
    /// Only for addresses that are not real clients.
    #[arg(
        short = 'x',
        long,
        value_name = "ADDR[,ADDR...]",
        value_delimiter = ',',
        requires = "nfqueue"
    )]
    pub passlist: Vec<IpAddr>,

    /// Port copy processes connect to
    #[arg(short, long, value_name = "PORT", default_value_t = crate::proto::DEFAULT_PORT)]
    pub port: u16,

    /// Address to listen on (all addresses by default)
    #[arg(short, long, value_name = "ADDR")]
    pub bind: Option<IpAddr>,

    #[command(flatten)]
    pub report: ReportArgs,
}

/// MiB to bytes, for a capture buffer size.
pub fn mib_to_bytes(mib: u16) -> i32 {
    i32::from(mib) << 20
}

/// How often a long-running subcommand logs its counters.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Time between counter reports in the log, e.g. 5s or 1m (0s turns them off; the
    /// totals are always logged at exit)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub stats_interval: Duration,
}

/// Options of `tcpcopy stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {}

fn parse_mappings(text: &str) -> Result<Vec<PortMapping>, SyntaxError> {
    parse_list(text)
}

fn parse_intercepts(text: &str) -> Result<Vec<InterceptAddr>, SyntaxError> {
    parse_list(text)
}

impl CopyArgs {
    /// Every `-x` mapping, however they were split between flags and commas.
    pub fn all_mappings(&self) -> Vec<PortMapping> {
        self.mappings.iter().flatten().copied().collect()
    }

    /// Every `-s` intercept, however they were split between flags and commas.
    pub fn all_intercepts(&self) -> Vec<InterceptAddr> {
        self.intercepts.iter().flatten().cloned().collect()
    }

    /// `--speed`, the recorded pace by default.
    pub fn speed(&self) -> Speed {
        self.speed.unwrap_or(Speed::RECORDED)
    }

    /// How many times `--loop` plays the files: once by default.
    pub fn rounds(&self) -> u32 {
        self.loops.unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tcpcopy").chain(args.iter().copied()))
    }

    fn copy(args: &[&str]) -> CopyArgs {
        match parse(args).unwrap().command {
            Command::Copy(copy) => copy,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn copy_minimal() {
        let args = copy(&[
            "copy",
            "-i",
            "eth0",
            "-x",
            "80-198.51.100.30:80",
            "-s",
            "198.51.100.40",
        ]);
        assert_eq!(args.interfaces, ["eth0"]);
        assert_eq!(args.all_mappings().len(), 1);
        let intercepts = args.all_intercepts();
        assert_eq!(intercepts[0].port, crate::proto::DEFAULT_PORT);
        assert_eq!(args.mtu, 1500);
        assert_eq!(args.buffer_mib, None);
        assert!(args.client_ips.is_none());
    }

    #[test]
    fn copy_repeated_and_listed_values_add_up() {
        let args = copy(&[
            "copy",
            "-i",
            "eth0",
            "-i",
            "eth1",
            "-x",
            "80-198.51.100.30:80,443-198.51.100.30:443",
            "-x",
            "8080-198.51.100.31:80",
            "-s",
            "198.51.100.40,198.51.100.41:9000",
            "-c",
            "203.0.113.x",
        ]);
        assert_eq!(args.interfaces, ["eth0", "eth1"]);
        assert_eq!(args.all_mappings().len(), 3);
        assert!(
            parse(&[
                "copy",
                "-i",
                "eth0",
                "-x",
                "80-198.51.100.30:80",
                "-s",
                "h",
                "-B",
                "0"
            ])
            .is_err()
        );
        assert_eq!(args.all_intercepts()[1].port, 9000);
        assert_eq!(args.client_ips.unwrap().len(), 254);
    }

    #[test]
    fn copy_offline_replaces_interface() {
        let args = copy(&[
            "copy",
            "--offline",
            "in.pcap",
            "-x",
            "80-198.51.100.30:80",
            "-s",
            "198.51.100.40",
        ]);
        assert_eq!(args.offline, [PathBuf::from("in.pcap")]);
        assert_eq!(
            (args.speed(), args.max_gap, args.rounds()),
            (Speed::RECORDED, None, 1)
        );
        assert!(
            parse(&[
                "copy",
                "--offline",
                "a.pcap",
                "-i",
                "eth0",
                "-x",
                "80-198.51.100.30:80",
                "-s",
                "h"
            ])
            .is_err()
        );
    }

    #[test]
    fn copy_offline_files_speed_gap_and_loop() {
        let args = copy(&[
            "copy",
            "-x",
            "80-198.51.100.30:80",
            "-s",
            "h",
            "--offline",
            "a.pcap",
            "b.pcapng",
            "--speed",
            "max",
            "--max-gap",
            "1500ms",
            "--loop",
            "3",
        ]);
        assert_eq!(args.offline, [PathBuf::from("a.pcap"), "b.pcapng".into()]);
        assert_eq!(args.speed(), Speed::Max);
        assert_eq!(args.max_gap, Some(Duration::from_millis(1500)));
        assert_eq!(args.rounds(), 3);
        let base = ["copy", "-x", "80-198.51.100.30:80", "-s", "h"];
        for (extra, flag) in [
            (&["--offline", "a.pcap", "--speed", "0"][..], "--speed"),
            (&["--offline", "a.pcap", "--speed", "fast"], "--speed"),
            (&["--offline", "a.pcap", "--loop", "0"], "--loop"),
            (&["--offline", "a.pcap", "--max-gap", "soon"], "--max-gap"),
            (&["-i", "eth0", "--speed", "2"], "--interface"),
            (&["-i", "eth0", "--loop", "2"], "--interface"),
            (&["-i", "eth0", "--max-gap", "1s"], "--interface"),
        ] {
            let err = parse(&[&base[..], extra].concat()).unwrap_err().to_string();
            assert!(err.contains(flag), "{extra:?}: {err}");
        }
    }

    #[test]
    fn copy_errors_name_the_flag() {
        let err = parse(&["copy", "-i", "eth0", "-x", "80", "-s", "h"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--map") && err.contains("`80`"), "{err}");
        let err = parse(&["copy", "-i", "eth0", "-x", "80-198.51.100.30:80"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--intercept"), "{err}");
        let err = parse(&[
            "copy",
            "-i",
            "eth0",
            "-x",
            "80-198.51.100.30:80",
            "-s",
            "h",
            "-c",
            "1.2.3",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("--client-ip"), "{err}");
        let err = parse(&["copy", "-x", "80-198.51.100.30:80", "-s", "h"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--interface"), "{err}");
    }

    #[test]
    fn intercept_modes() {
        let cli = parse(&["intercept", "--nfqueue", "3"]).unwrap();
        let Command::Intercept(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.nfqueue, Some(3));
        assert_eq!(args.port, crate::proto::DEFAULT_PORT);

        let cli = parse(&[
            "intercept",
            "-i",
            "eth0",
            "-F",
            "tcp and src port 80",
            "-p",
            "4000",
            "-b",
            "198.51.100.40",
        ])
        .unwrap();
        let Command::Intercept(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.interfaces, ["eth0"]);
        assert_eq!(args.port, 4000);

        assert!(parse(&["intercept"]).is_err(), "a mode is required");
        assert!(
            parse(&["intercept", "-i", "eth0"]).is_err(),
            "pcap mode needs -F"
        );
        assert!(parse(&["intercept", "--nfqueue", "1", "-i", "eth0", "-F", "tcp"]).is_err());
    }

    #[test]
    fn verbosity_flags() {
        let cli = parse(&["-vv", "stats"]).unwrap();
        assert_eq!(cli.verbose, 2);
        let cli = parse(&["stats", "-q"]).unwrap();
        assert_eq!(cli.quiet, 1);
        assert!(parse(&["-v", "-q", "stats"]).is_err());
    }
}
