//! The command-line surface: clap derive types only. Doc comments here are the `--help`.
//!
//! Values with a syntax of their own (`-x`, `-c`, `-s`) are parsed by the types that use
//! them, so every flag error names the flag and the value.

use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::addresses::{ClientAddresses, InterceptAddr, PortMapping, SyntaxError, parse_list};

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
#[command(
    after_help = "Example: tcpcopy copy -i eth0 -x 80-198.51.100.30:80 -c 203.0.113.0/24 -s 198.51.100.40"
)]
pub struct CopyArgs {
    /// Capture device, repeatable (e.g. eth0)
    #[arg(
        short,
        long = "interface",
        value_name = "IFACE",
        required_unless_present = "offline"
    )]
    pub interfaces: Vec<String>,

    /// Read packets from a pcap file instead of a live device
    #[arg(long, value_name = "FILE", conflicts_with = "interfaces")]
    pub offline: Option<PathBuf>,

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

    /// Capture BPF filter to use instead of the one built from --map
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

    /// With --offline: how long to keep running after the end of the file so sessions finish
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

/// How a long-running subcommand reports its counters.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Time between counter reports in the log, e.g. 5s or 1m (0s turns them off; the
    /// totals are always logged at exit)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub stats_interval: Duration,

    /// Serve the counters and gauges as `GET /metrics` (Prometheus text format) on
    /// ADDR:PORT, e.g. 127.0.0.1:9361. Nothing listens without it
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,
}

/// Options of `tcpcopy stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(subcommand)]
    pub command: StatsCommand,
}

#[derive(Debug, Subcommand)]
pub enum StatsCommand {
    /// Loss from access logs: requests per time window online and at the target
    Logs(LogsArgs),
    /// Rates and losses from running copies and intercepts (their --metrics endpoints)
    Live(LiveArgs),
}

/// Options of `tcpcopy stats live`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: tcpcopy stats live 127.0.0.1:9361 http://198.51.100.40:9361/metrics --interval 10s\n\n\
                  Stops on Ctrl-C (SIGINT) or SIGTERM with a summary line."
)]
pub struct LiveArgs {
    /// The --metrics endpoints of copy and intercept processes: [http://]HOST:PORT[/PATH]
    /// (the path is /metrics by default); their counters are summed
    #[arg(value_name = "URL", required = true)]
    pub urls: Vec<String>,

    /// Time between scrapes and lines, e.g. 5s or 1m
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_interval)]
    pub interval: Duration,

    /// Print JSON Lines (a record per interval, then the summary) instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Options of `tcpcopy stats logs`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: tcpcopy stats logs --online host13.log host14.log.gz --target access.log --window 1m --max-loss 0.01\n\n\
                  Exit status: 0, or 1 when the total loss is above --max-loss, 2 on a usage or input error."
)]
pub struct LogsArgs {
    /// Access logs of the online hosts, one or more, repeatable: nginx or Apache common or
    /// combined format (or what --time-field/--time-format describe), gzip-compressed or not
    #[arg(long, value_name = "FILE", num_args = 1.., required = true)]
    pub online: Vec<PathBuf>,

    /// Access logs of the target, one or more, repeatable
    #[arg(long, value_name = "FILE", num_args = 1.., required = true)]
    pub target: Vec<PathBuf>,

    /// Length of a window, in whole seconds: e.g. 10s, 1m, 1h
    #[arg(long = "window", value_name = "DURATION", default_value = "1m", value_parser = parse_window)]
    pub window_seconds: NonZeroU32,

    /// How many times the target receives the online traffic (2 for a test that doubles it)
    #[arg(long, value_name = "N", default_value_t = 1.0, value_parser = parse_factor)]
    pub factor: f64,

    /// Count the first and last windows, which the logs cover only in part, in the total
    #[arg(long)]
    pub edges: bool,

    /// Only requests at or after TIME (RFC 3339, e.g. 2026-10-10T11:08:00+08:00)
    #[arg(long, value_name = "TIME")]
    pub from: Option<jiff::Timestamp>,

    /// Only requests before TIME (RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub to: Option<jiff::Timestamp>,

    /// Exit 1 when the total loss is above RATE: a fraction (0.01) or a percentage (1%)
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub max_loss: Option<f64>,

    /// Print JSON Lines (a record per window, then the total) instead of a table
    #[arg(long)]
    pub json: bool,

    /// Also write a chart of the windows to FILE (SVG)
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,

    /// strftime format of the time field [default: %d/%b/%Y:%H:%M:%S %z, the
    /// `[10/Oct/2026:13:55:36 +0000]` of the common and combined formats]; times without
    /// %z or %:z are read as UTC
    #[arg(long, value_name = "FORMAT")]
    pub time_format: Option<String>,

    /// The time field starts at the Nth space-separated field of a line (1 is the first; a
    /// leading `[` or `"` is skipped) [default: just after the first `[`]
    #[arg(long, value_name = "N")]
    pub time_field: Option<NonZeroUsize>,
}

/// A `--window`: a humantime duration of whole seconds, at least one.
fn parse_window(text: &str) -> Result<NonZeroU32, String> {
    let duration = humantime::parse_duration(text).map_err(|err| err.to_string())?;
    if duration.subsec_nanos() != 0 {
        return Err(format!("`{text}` is not a whole number of seconds"));
    }
    u32::try_from(duration.as_secs())
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(|| format!("`{text}` must be at least 1s and at most {}s", u32::MAX))
}

/// A `stats live --interval`: a humantime duration of at least 100 ms.
fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(text).map_err(|err| err.to_string())?;
    if interval < Duration::from_millis(100) {
        return Err(format!("`{text}` is shorter than 100ms"));
    }
    Ok(interval)
}

/// A `--factor`: a finite number above zero.
fn parse_factor(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(factor) if factor.is_finite() && factor > 0.0 => Ok(factor),
        _ => Err(format!("`{text}` is not a number above 0")),
    }
}

/// A `--max-loss`: a fraction (`0.01`) or a percentage (`1%`), from 0 to 1.
fn parse_rate(text: &str) -> Result<f64, String> {
    let (number, scale) = match text.strip_suffix('%') {
        Some(percent) => (percent, 100.0),
        None => (text, 1.0),
    };
    match number.trim().parse::<f64>() {
        Ok(rate) if (0.0..=scale).contains(&rate) => Ok(rate / scale),
        _ => Err(format!(
            "`{text}` is not a loss rate from 0 to 1 (or 0% to 100%)"
        )),
    }
}

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
        assert_eq!(args.report.metrics, None, "nothing listens unless asked");
    }

    #[test]
    fn metrics_needs_an_address_and_a_port() {
        let base = ["copy", "-i", "eth0", "-x", "80-198.51.100.30:80", "-s", "h"];
        let args = copy(&[&base[..], &["--metrics", "127.0.0.1:9361"]].concat());
        assert_eq!(args.report.metrics, Some("127.0.0.1:9361".parse().unwrap()));
        let err = parse(&[&base[..], &["--metrics", "9361"]].concat())
            .unwrap_err()
            .to_string();
        assert!(err.contains("--metrics"), "{err}");
        let cli = parse(&["intercept", "--nfqueue", "0", "--metrics", "[::1]:9362"]).unwrap();
        let Command::Intercept(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.report.metrics, Some("[::1]:9362".parse().unwrap()));
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
        assert_eq!(args.offline, Some(PathBuf::from("in.pcap")));
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
        let cli = parse(&["-vv", "stats", "logs", "--online", "a", "--target", "b"]).unwrap();
        assert_eq!(cli.verbose, 2);
        let cli = parse(&["stats", "logs", "--online", "a", "--target", "b", "-q"]).unwrap();
        assert_eq!(cli.quiet, 1);
        assert!(
            parse(&[
                "-v", "-q", "stats", "logs", "--online", "a", "--target", "b"
            ])
            .is_err()
        );
    }

    fn logs(args: &[&str]) -> Result<LogsArgs, clap::Error> {
        let cli = parse(&[&["stats", "logs"], args].concat())?;
        let Command::Stats(StatsArgs {
            command: StatsCommand::Logs(logs),
        }) = cli.command
        else {
            panic!("parsed as {:?}", cli.command)
        };
        Ok(logs)
    }

    #[test]
    fn logs_defaults() {
        let args = logs(&["--online", "a.log", "--target", "t.log"]).unwrap();
        assert_eq!(args.online, [PathBuf::from("a.log")]);
        assert_eq!(args.target, [PathBuf::from("t.log")]);
        assert_eq!(args.window_seconds.get(), 60);
        assert_eq!(args.factor, 1.0);
        assert!(!args.edges && !args.json);
        assert_eq!((args.max_loss, args.from, args.to), (None, None, None));
        assert_eq!((args.time_format, args.time_field), (None, None));
    }

    #[test]
    fn logs_files_may_be_listed_and_repeated() {
        let args = logs(&[
            "--online", "a.log", "b.log.gz", "--target", "t.log", "--online", "c.log",
        ])
        .unwrap();
        assert_eq!(
            args.online,
            ["a.log", "b.log.gz", "c.log"].map(PathBuf::from)
        );
        assert!(
            logs(&["--online", "a.log"]).is_err(),
            "--target is required"
        );
        assert!(
            logs(&["--target", "t.log"]).is_err(),
            "--online is required"
        );
        assert!(
            logs(&["--online", "--target", "t.log"]).is_err(),
            "a file is required"
        );
    }

    #[test]
    fn logs_window_is_whole_seconds() {
        let window = |text| logs(&["--online", "a", "--target", "b", "--window", text]);
        assert_eq!(window("10s").unwrap().window_seconds.get(), 10);
        assert_eq!(window("1h").unwrap().window_seconds.get(), 3600);
        for bad in ["0s", "1500ms", "soon"] {
            let err = window(bad).unwrap_err().to_string();
            assert!(err.contains("--window") && err.contains(bad), "{err}");
        }
    }

    #[test]
    fn logs_factor_is_above_zero() {
        let factor = |text| {
            logs(&[
                "--online",
                "a",
                "--target",
                "b",
                &format!("--factor={text}"),
            ])
        };
        assert_eq!(factor("2").unwrap().factor, 2.0);
        assert_eq!(factor("0.5").unwrap().factor, 0.5);
        for bad in ["0", "-1", "inf", "NaN", "two"] {
            let err = factor(bad).unwrap_err().to_string();
            assert!(err.contains("--factor"), "{err}");
        }
    }

    #[test]
    fn logs_max_loss_is_a_fraction_or_a_percentage() {
        let max_loss = |text| {
            logs(&[
                "--online",
                "a",
                "--target",
                "b",
                &format!("--max-loss={text}"),
            ])
        };
        assert_eq!(max_loss("0").unwrap().max_loss, Some(0.0));
        assert_eq!(max_loss("0.01").unwrap().max_loss, Some(0.01));
        assert_eq!(max_loss("0.25%").unwrap().max_loss, Some(0.0025));
        for bad in ["-0.1", "1.5", "101%", "low"] {
            let err = max_loss(bad).unwrap_err().to_string();
            assert!(err.contains("--max-loss") && err.contains(bad), "{err}");
        }
    }

    #[test]
    fn live_takes_urls_and_an_interval() {
        let cli = parse(&["stats", "live", "127.0.0.1:9361", "http://h:9361/metrics"]).unwrap();
        let Command::Stats(StatsArgs {
            command: StatsCommand::Live(args),
        }) = cli.command
        else {
            panic!("parsed as {:?}", cli.command)
        };
        assert_eq!(args.urls, ["127.0.0.1:9361", "http://h:9361/metrics"]);
        assert_eq!(args.interval, Duration::from_secs(5));
        assert!(!args.json);
        assert!(parse(&["stats", "live"]).is_err(), "a URL is required");
        let err = parse(&["stats", "live", "h:1", "--interval", "10ms"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--interval"), "{err}");
    }

    #[test]
    fn logs_from_and_to_are_rfc3339() {
        let args = logs(&[
            "--online",
            "a",
            "--target",
            "b",
            "--from",
            "2026-10-10T11:08:00+08:00",
            "--to",
            "2026-10-10T03:09:00Z",
        ])
        .unwrap();
        assert_eq!(
            args.from.unwrap().as_second() + 60,
            args.to.unwrap().as_second()
        );
        let err = logs(&["--online", "a", "--target", "b", "--from", "11:08"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--from"), "{err}");
    }
}
