//! The command-line surface: clap derive types only. Doc comments here are the `--help`.
//!
//! Values with a syntax of their own (`-x`, `-c`, `-s`) are parsed by the types that use
//! them, so every flag error names the flag and the value.

use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::addresses::{
    Cidr, ClientAddresses, InterceptAddr, PortMapping, SyntaxError, parse_list,
};
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
    max_term_width = 100,
    after_help = TOP_EXAMPLES
)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace)
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "quiet", display_order = 100)]
    pub verbose: u8,
    /// Less log output (-q: warnings and errors only, -qq: errors only)
    #[arg(short, long, action = clap::ArgAction::Count, global = true, display_order = 100)]
    pub quiet: u8,
    /// Write the process id to FILE (TCPCopy -P); removed at a clean exit
    #[arg(
        short = 'P',
        long,
        value_name = "FILE",
        global = true,
        display_order = 100
    )]
    pub pid_file: Option<PathBuf>,
    /// Log format: text for people, json for programs (one object per line: time, level,
    /// target, message, fields; counter lines carry their counters in fields)
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text, global = true, display_order = 101)]
    pub log_format: LogFormat,
    /// Append logs to FILE instead of stderr; SIGHUP reopens it (for logrotate)
    #[arg(
        short = 'l',
        long = "log",
        value_name = "FILE",
        global = true,
        display_order = 101
    )]
    pub log_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture requests to an online service and replay them to a target server
    Copy(Box<CopyArgs>),
    /// Catch the target's replies and send their headers back to the copy processes
    Intercept(InterceptArgs),
    /// Report loss and how the target compares with the online system
    Stats(StatsArgs),
    /// Print the shell completion script for SHELL on stdout
    Completions(CompletionsArgs),
    /// Write the man pages (tcpcopy.1, tcpcopy-copy.1, ...) into DIR
    Man(ManArgs),
}

/// How log records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Options of `tcpcopy copy`.
#[derive(Debug, Args)]
#[command(after_help = COPY_EXAMPLES)]
pub struct CopyArgs {
    /// Capture device, repeatable or comma-separated as in TCPCopy (e.g. eth0,eth1) [default:
    /// every device that is up and holds an address (the -x online address, when every
    /// mapping names one)]
    #[arg(short, long = "interface", value_name = "IFACE", value_delimiter = ',')]
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
    #[arg(long, value_name = "DURATION", conflicts_with = "interfaces", value_parser = parse_max_gap)]
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

    /// Client addresses the copies use instead of the real ones: a.b.c.x, an IPv4 CIDR (/20
    /// to /32), an IPv6 one (/116 to /128, e.g. 2001:db8:1::/120), or a list of them. The
    /// target must route them to the assistant host running intercept.
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
    /// receive offloads (8 KiB blocks: about 5,000 MTU-sized packets, tens of thousands of
    /// ACKs and short requests), 16 on one with GRO/LRO (128 KiB blocks, packets up to
    /// 64 KiB)]. Bursts beyond it wait in memory (up to 32 MiB per shard); overflows show as
    /// kernel_dropped
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
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = parse_max_sessions)]
    pub max_sessions: usize,

    #[command(flatten)]
    pub shaping: ShapingArgs,

    #[command(flatten)]
    pub tuning: SessionTuningArgs,

    /// Capture at most BYTES of each packet [default: the device's MTU plus its link header,
    /// or 65535 on a device with GRO/LRO]. Smaller cuts requests short
    #[arg(short = 'S', long, value_name = "BYTES", value_parser = clap::value_parser!(u16).range(64..))]
    pub snaplen: Option<u16>,

    /// Port of every -s intercept given without one
    #[arg(short = 'p', long = "intercept-port", value_name = "PORT", default_value_t = crate::proto::DEFAULT_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub intercept_port: u16,

    /// Accepted for TCPCopy 1.x command lines: copy opens one connection to each intercept per
    /// shard (--workers), whatever N says
    #[arg(short = 'C', long = "connections", value_name = "N", hide = true)]
    pub connections: Option<u16>,

    /// Accepted for TCPCopy 1.x command lines, and always so: copy keeps replaying and
    /// reconnects when an intercept goes away
    #[arg(short = 'L', long, hide = true)]
    pub lonely: bool,

    #[command(flatten)]
    pub retired: crate::compat::RetiredCopyFlags,

    /// Write the copies to this pcap file instead of sending them (for inspection)
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    #[command(flatten)]
    pub compare: CompareFlags,

    /// With --offline: how long to keep running after the end of the files so sessions finish
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub drain: Duration,

    #[command(flatten)]
    pub report: ReportArgs,

    #[command(flatten)]
    pub secret: SecretArgs,

    /// Run the local checks and exit, replaying nothing: capabilities, each capture device
    /// up, the -x online addresses this host's, each -s intercept reachable, a route to each
    /// target and its port open, and (with -c) the path: one SYN from a -c address whose
    /// answer must come back through an intercept within 2s (then reset on the target).
    /// Exits 0 when all pass, 1 naming each that failed and how to fix it; then lists what
    /// only the other hosts can show
    #[arg(long)]
    pub check: bool,
}

/// `copy --compare`: a comparison test of the target against the online server.
#[derive(Debug, Args)]
pub struct CompareFlags {
    /// Comparison test: also capture the online server's replies, and write a JSON Lines
    /// record for each replayed request to FILE: its head and how the online server and the
    /// target answered (class, bytes, time to the first and the last reply byte). Read it
    /// with `tcpcopy stats compare FILE` (docs/comparison.md)
    #[arg(help_heading = "Comparison", long = "compare", value_name = "FILE", conflicts_with_all = ["offline", "output"])]
    pub file: Option<PathBuf>,

    /// With --compare: the longest request or reply head a record shows, in bytes
    /// [default: 64]
    #[arg(help_heading = "Comparison", long = "compare-head", value_name = "BYTES", requires = "file", value_parser = clap::value_parser!(u16).range(8..=2048))]
    pub head: Option<u16>,

    /// With --compare: the protocol of the copied service(s), which classes the replies
    /// [default: guessed from each session's first request, and logged]
    #[arg(
        help_heading = "Comparison",
        long,
        value_name = "PROTOCOL",
        value_enum,
        requires = "file"
    )]
    pub protocol: Option<crate::compare::Protocol>,
}

impl CompareFlags {
    /// `--compare-head`, 64 bytes by default.
    pub fn head_bytes(&self) -> usize {
        usize::from(self.head.unwrap_or(64))
    }
}

/// How copy multiplies, samples and caps what it replays.
#[derive(Debug, Args)]
pub struct ShapingArgs {
    /// Replay every session N times (TCPCopy -n), each replica from its own client port (and
    /// its own -c address). No two live sessions toward the target share a port: a taken one
    /// is replaced and counted as ports_remapped
    #[arg(help_heading = "Shaping", short = 'n', long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1023))]
    pub copies: u16,

    /// Move every client port by F×2048 (TCPCopy -f): give each copy instance that replays
    /// into the same target its own F
    #[arg(help_heading = "Shaping", short = 'f', long, value_name = "F", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=1023))]
    pub port_shift: u16,

    /// Replay only PERCENT of the sessions (TCPCopy -r), whole sessions chosen by a hash of
    /// the client's address and port: the same ones on every run and host
    #[arg(help_heading = "Shaping", short = 'r', long = "sample", value_name = "PERCENT", default_value_t = 100.0, value_parser = parse_percent)]
    pub sample_percent: f64,

    /// Raise the replayed share linearly from 0 to --sample over DURATION (e.g. 10m)
    #[arg(help_heading = "Shaping", long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub ramp: Option<Duration>,

    /// TCPCopy -g (replay gradually): --ramp 100s
    #[arg(
        help_heading = "Shaping",
        short = 'g',
        long = "gradually",
        conflicts_with = "ramp"
    )]
    pub gradually: bool,

    /// Open at most N new sessions per second toward the target (N or N/s; each replica
    /// counts). Sessions beyond are not replayed, and counted as sessions_rate_limited
    #[arg(help_heading = "Shaping", long, value_name = "N/s", value_parser = parse_rate)]
    pub max_rate: Option<f64>,
}

/// TCPCopy 1.x's `-g`: from nothing to everything in 100 one-second steps.
const GRADUAL_RAMP: Duration = Duration::from_secs(100);

impl ShapingArgs {
    /// `--ramp`, or `-g`'s.
    pub fn ramp(&self) -> Duration {
        match (self.ramp, self.gradually) {
            (Some(ramp), _) => ramp,
            (None, true) => GRADUAL_RAMP,
            (None, false) => Duration::ZERO,
        }
    }
}

/// The session engine's knobs TCPCopy 1.x exposes.
#[derive(Debug, Args)]
pub struct SessionTuningArgs {
    /// MSS of the SYNs copy makes itself, for sessions caught mid-stream (TCPCopy -D)
    #[arg(help_heading = "Sessions", short = 'D', long, value_name = "BYTES", default_value_t = 1460, value_parser = clap::value_parser!(u16).range(88..))]
    pub mss: u16,

    /// Round-trip time that decides a response has ended (TCPCopy -R; milliseconds, or a
    /// duration such as 5ms) [default: measured per session]
    #[arg(help_heading = "Sessions", short = 'R', long, value_name = "MS", value_parser = parse_rtt)]
    pub rtt: Option<Duration>,

    /// A session with no packet from either side for this long ends (TCPCopy -t; seconds, or
    /// a duration such as 2m)
    #[arg(help_heading = "Sessions", short = 't', long = "session-timeout", value_name = "SECS", default_value = "120", value_parser = parse_seconds)]
    pub session_timeout: Duration,

    /// TCPCopy -k (idle time of a keep-alive session): copy has one idle timeout, the longer
    /// of -t and -k
    #[arg(help_heading = "Sessions", short = 'k', long = "keepalive-timeout", value_name = "SECS", value_parser = parse_seconds)]
    pub keepalive_timeout: Option<Duration>,
}

impl SessionTuningArgs {
    /// The idle timeout: `-t`, or `-k` when longer.
    pub fn idle_timeout(&self) -> Duration {
        self.keepalive_timeout
            .map_or(self.session_timeout, |keepalive| {
                keepalive.max(self.session_timeout)
            })
    }
}

/// A percentage in (0, 100].
fn parse_percent(text: &str) -> Result<f64, String> {
    match text.trim_end_matches('%').parse::<f64>() {
        Ok(percent) if percent > 0.0 && percent <= 100.0 => Ok(percent),
        _ => Err(format!(
            "`{text}` is not a percentage above 0 and at most 100"
        )),
    }
}

/// A rate of new sessions: `N` or `N/s`, above 0.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.strip_suffix("/s").unwrap_or(text).parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate.is_finite() => Ok(rate),
        _ => Err(format!("`{text}` is not a rate such as 500/s")),
    }
}

/// A bare number in `unit`s (TCPCopy's syntax), or a duration with its unit.
fn parse_number_or_duration(text: &str, unit: Duration) -> Result<Duration, String> {
    match text.parse::<u32>() {
        Ok(n) => Ok(unit * n),
        Err(_) => humantime::parse_duration(text)
            .map_err(|err| format!("`{text}` is neither a number nor a duration: {err}")),
    }
}

/// A `-R` round-trip time: milliseconds or a duration, above zero.
fn parse_rtt(text: &str) -> Result<Duration, String> {
    match parse_number_or_duration(text, Duration::from_millis(1))? {
        Duration::ZERO => Err(format!(
            "`{text}` is no round-trip time: leave -R out to measure it per session"
        )),
        rtt => Ok(rtt),
    }
}

/// A `--max-gap`: a duration above zero.
fn parse_max_gap(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text).map_err(|err| err.to_string())? {
        Duration::ZERO => Err(format!(
            "`{text}` would cut every silence: for no timing at all use --speed max"
        )),
        gap => Ok(gap),
    }
}

/// A `--max-sessions`: at least one session.
fn parse_max_sessions(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("0 sessions would replay nothing: give at least 1".to_string()),
        Ok(max) => Ok(max),
        Err(err) => Err(format!("`{text}`: {err}")),
    }
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    match parse_number_or_duration(text, Duration::from_secs(1))? {
        Duration::ZERO => Err(format!("`{text}` is not a timeout above zero")),
        timeout => Ok(timeout),
    }
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
#[command(after_help = INTERCEPT_EXAMPLES)]
pub struct InterceptArgs {
    /// Target mode: read the target's replies from NFQUEUE queue NUM and drop them
    /// (queue them with `iptables -I OUTPUT -p tcp --sport PORT -j NFQUEUE --queue-num NUM`)
    #[arg(long, value_name = "NUM", conflicts_with = "interfaces")]
    pub nfqueue: Option<u16>,

    /// Assistant mode: capture the target's replies on IFACE, repeatable or comma-separated
    /// as in intercept 1.0 (e.g. eth0,eth1)
    #[arg(
        short,
        long = "interface",
        value_name = "IFACE",
        requires = "filter",
        value_delimiter = ','
    )]
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
    #[arg(short, long, value_name = "PORT", default_value_t = crate::proto::DEFAULT_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,

    /// Target mode: packets the kernel holds in the queue for intercept before it drops
    /// them (TCPCopy's intercept -q) [default: the kernel's, 1024]
    #[arg(long, value_name = "N", requires = "nfqueue", value_parser = clap::value_parser!(u32).range(1..))]
    pub queue_length: Option<u32>,

    #[command(flatten)]
    pub retired: crate::compat::RetiredInterceptFlags,

    /// Address to listen on (all addresses by default)
    #[arg(short, long, value_name = "ADDR")]
    pub bind: Option<IpAddr>,

    /// Assistant mode: start even though this host forwards IP (net.ipv4.ip_forward or
    /// net.ipv6.conf.all.forwarding on, for a family a capture device carries), with a
    /// warning. Without it intercept refuses to start there, since the host would pass the
    /// target's replies on to the real clients, and forwarding turned on while it runs is
    /// logged as an error every minute
    #[arg(long)]
    pub allow_forwarding: bool,

    /// Copy hosts that may connect to the control port: addresses or blocks (198.51.100.20,
    /// 198.51.100.0/24, 2001:db8::/32), comma-separated or repeated. Connections from any
    /// other address are closed at once and counted as connections_refused [default: any
    /// address]
    #[arg(long, value_name = "CIDR[,CIDR...]", value_delimiter = ',')]
    pub allow: Vec<Cidr>,

    #[command(flatten)]
    pub secret: SecretArgs,

    #[command(flatten)]
    pub report: ReportArgs,

    /// Run the local checks and exit, catching nothing: capabilities, each -i device up,
    /// IPv4 and IPv6 forwarding off (assistant mode), an iptables/ip6tables OUTPUT rule
    /// queueing to --nfqueue NUM (target mode), rp_filter shown. Exits 0 when all pass, 1
    /// naming each that failed and how to fix it
    #[arg(long)]
    pub check: bool,
}

/// The secret copy and intercept share.
#[derive(Debug, Args)]
pub struct SecretArgs {
    /// The shared secret of copy and intercept, in FILE (the same file on both; 16 bytes or
    /// more, readable by no other user). Intercept then lets in only copies that prove it at
    /// the hello (protocol version 7; TCPCopy 1.x's version 6 cannot, and is refused), and
    /// copy registers its flows only with intercepts that check it. It proves who connects,
    /// it encrypts nothing: see docs/security.md
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
}

/// MiB to bytes, for a capture buffer size.
pub fn mib_to_bytes(mib: u16) -> i32 {
    i32::from(mib) << 20
}

/// How a long-running subcommand reports its counters.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Time between counter reports in the log, e.g. 5s or 1m, at least 100ms (0s turns
    /// them off; the totals are always logged at exit)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_report_interval)]
    pub stats_interval: Duration,

    /// Serve the counters and gauges as `GET /metrics` (Prometheus text format) on
    /// ADDR:PORT, e.g. 127.0.0.1:9361. Nothing listens without it
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,
}

/// Options of `tcpcopy stats`.
#[derive(Debug, Args)]
#[command(after_help = STATS_EXAMPLES)]
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
    /// A comparison test: how the target answered each request against the online server
    /// (the files `copy --compare` wrote)
    Compare(CompareArgs),
}

/// Options of `tcpcopy stats compare`.
#[derive(Debug, Args)]
#[command(after_help = STATS_COMPARE_EXAMPLES)]
pub struct CompareArgs {
    /// Files `copy --compare` wrote (JSON Lines, gzip-compressed or not), one per copy;
    /// their records are summed
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,

    /// Print one JSON summary object (`{"type":"summary","data":{...}}`) instead of the
    /// report
    #[arg(long)]
    pub json: bool,

    /// Also write a chart of both sides' latency distributions to FILE (SVG)
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,

    /// Group the latency table by request head (HTTP: method and path without the query)
    /// or by the online reply's status (class)
    #[arg(long, value_name = "WHAT", value_enum, default_value_t = GroupBy::Head)]
    pub by: GroupBy,

    /// Rows of the group table and of the lists of differing heads and sizes
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub top: u32,

    /// Exit 1 when the share of matched requests whose outcomes differ is above RATE: a
    /// fraction (0.01) or a percentage (1%)
    #[arg(long, value_name = "RATE", value_parser = parse_mismatch_rate)]
    pub max_mismatch: Option<f64>,
}

/// What `stats compare` groups its latency table by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    /// The request head's group.
    Head,
    /// The online reply's class.
    Status,
}

/// Options of `tcpcopy stats live`.
#[derive(Debug, Args)]
#[command(after_help = STATS_LIVE_EXAMPLES)]
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
#[command(after_help = STATS_LOGS_EXAMPLES)]
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
    #[arg(long, value_name = "RATE", value_parser = parse_loss_rate)]
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

/// A `--stats-interval`: 0 (no reports) or at least 100 ms.
fn parse_report_interval(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text).map_err(|err| err.to_string())? {
        Duration::ZERO => Ok(Duration::ZERO),
        _ => parse_interval(text).map_err(|err| format!("{err} (0s turns the reports off)")),
    }
}

/// A `--factor`: a finite number above zero.
fn parse_factor(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(factor) if factor.is_finite() && factor > 0.0 => Ok(factor),
        _ => Err(format!("`{text}` is not a number above 0")),
    }
}

/// A `--max-loss`: a fraction (`0.01`) or a percentage (`1%`), from 0 to 1.
fn parse_loss_rate(text: &str) -> Result<f64, String> {
    parse_fraction(text, "loss rate")
}

/// A `--max-mismatch`: a fraction or a percentage, from 0 to 1.
fn parse_mismatch_rate(text: &str) -> Result<f64, String> {
    parse_fraction(text, "mismatch rate")
}

/// A fraction (`0.01`) or a percentage (`1%`), from 0 to 1; errors name it `what`.
fn parse_fraction(text: &str, what: &str) -> Result<f64, String> {
    let (number, scale) = match text.strip_suffix('%') {
        Some(percent) => (percent, 100.0),
        None => (text, 1.0),
    };
    match number.trim().parse::<f64>() {
        Ok(rate) if (0.0..=scale).contains(&rate) => Ok(rate / scale),
        _ => Err(format!(
            "`{text}` is not a {what} from 0 to 1 (or 0% to 100%)"
        )),
    }
}

/// Options of `tcpcopy completions`.
#[derive(Debug, Args)]
#[command(after_help = COMPLETIONS_EXAMPLES)]
pub struct CompletionsArgs {
    /// Shell to write the script for
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// Options of `tcpcopy man`.
#[derive(Debug, Args)]
#[command(after_help = MAN_EXAMPLES)]
pub struct ManArgs {
    /// Folder to write the pages into (created if missing)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
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

    /// Every `-s` intercept, however they were split between flags and commas; those given
    /// without a port get `-p`'s.
    pub fn all_intercepts(&self) -> Vec<InterceptAddr> {
        self.intercepts
            .iter()
            .flatten()
            .map(|addr| addr.clone().with_default_port(self.intercept_port))
            .collect()
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

// Examples shown after each `--help` (and in the man pages). The addresses are the lab's
// (README.md, "The lab"): online 198.51.100.20, target .30, assistant .40, copies' clients
// 203.0.113.0/24. docs/quick-reference.md has the longer set-ups.

const TOP_EXAMPLES: &str = "\
Examples:
  # on the assistant 198.51.100.40 (the target routes 203.0.113.0/24 via it)
  tcpcopy intercept -i eth0 -F 'tcp and src port 80'
  # on the online host: port 80 to the target 198.51.100.30, clients in 203.0.113.0/24
  tcpcopy copy -i eth0 -x 80-198.51.100.30:80 -c 203.0.113.0/24 -s 198.51.100.40

More set-ups: docs/quick-reference.md (installed in /usr/share/doc/tcpcopy/).";

const COPY_EXAMPLES: &str = "\
Examples:
  # assistant mode: the target routes 203.0.113.0/24 via the assistant 198.51.100.40
  tcpcopy copy -i eth0 -x 80-198.51.100.30:80 -c 203.0.113.0/24 -s 198.51.100.40
  # target mode: intercept runs on the target itself (NFQUEUE)
  tcpcopy copy -i eth0 -x 80-198.51.100.30:80 -c 203.0.113.0/24 -s 198.51.100.30
  # two services, and a pcap file instead of a live device
  tcpcopy copy --offline online.pcap -x 80-198.51.100.30:80,11211-198.51.100.30:11211 \\
      -c 203.0.113.0/24 -s 198.51.100.40
  # two days of captures, twice as fast, silences cut to 1 s, three rounds
  tcpcopy copy --offline day1.pcap day2.pcapng --speed 2 --max-gap 1s --loop 3 \\
      -x 80-198.51.100.30:80 -c 203.0.113.0/24 -s 198.51.100.40
  # check this host's half of the set-up first (exit 1 names what is wrong)
  tcpcopy copy --check -i eth0 -x 80-198.51.100.30:80 -c 203.0.113.0/24 -s 198.51.100.40
  # a comparison test: a record per request in replies.jsonl, for `tcpcopy stats compare`
  tcpcopy copy -i eth0 -x 80-198.51.100.30:80 -c 203.0.113.0/24 -s 198.51.100.40 \\
      --compare replies.jsonl";

const INTERCEPT_EXAMPLES: &str = "\
Examples:
  # assistant mode (net.ipv4.ip_forward=0 on this host: it must swallow the replies, and
  # intercept refuses to start while it forwards)
  tcpcopy intercept -i eth0 -F 'tcp and src host 198.51.100.30 and src port 80'
  # target mode: the target queues its replies to the copies' clients (copy -c) to queue 0
  # (never with --queue-bypass; intercept says so when copies register and nothing is queued)
  iptables -I OUTPUT -p tcp --sport 80 -d 203.0.113.0/24 -j NFQUEUE --queue-num 0
  tcpcopy intercept --nfqueue 0
  # only the copy hosts, proving the secret they share (copy --secret-file, the same file)
  tcpcopy intercept -i eth0 -F 'tcp and src port 80' --allow 198.51.100.20,198.51.100.21 \\
      --secret-file /etc/tcpcopy/secret
  # check this host first: forwarding off (assistant), the rule (target)
  tcpcopy intercept --check -i eth0 -F 'tcp and src port 80'
  tcpcopy intercept --check --nfqueue 0";

const STATS_EXAMPLES: &str = "\
Examples:
  # loss per minute: two online hosts against the target, exit 1 above 1 % loss
  tcpcopy stats logs --online host13.log host14.log.gz --target access.log --max-loss 1%
  # live rates from running copies and intercepts (started with --metrics)
  tcpcopy stats live 127.0.0.1:9361 198.51.100.40:9361
  # a comparison test: what copy --compare wrote on two online hosts
  tcpcopy stats compare host13.jsonl host14.jsonl --max-mismatch 1%";

const STATS_LOGS_EXAMPLES: &str = "\
Examples:
  # one minute of two online hosts against the target; exit 1 above 1 % loss
  tcpcopy stats logs --online host13.log host14.log.gz --target access.log --max-loss 1%
  # a ×2 stress test, 10 s windows, as JSON Lines and a chart
  tcpcopy stats logs --online a.log --target t.log --factor 2 --window 10s --json --svg loss.svg

Exit status: 0, or 1 when the total loss is above --max-loss, 2 on a usage or input error.";

const STATS_COMPARE_EXAMPLES: &str = "\
Examples:
  # the report of the comparison files of two online hosts; exit 1 above 1 % differing
  tcpcopy stats compare host13.jsonl host14.jsonl.gz --max-mismatch 1%
  # grouped by the online status, as JSON, with a latency chart
  tcpcopy stats compare compare.jsonl --by status --json --svg latency.svg

Exit status: 0, or 1 when the mismatch is above --max-mismatch, 2 on a usage or input error.";

const STATS_LIVE_EXAMPLES: &str = "\
Examples:
  tcpcopy stats live 127.0.0.1:9361 http://198.51.100.40:9361/metrics --interval 10s

Stops on Ctrl-C (SIGINT) or SIGTERM with a summary line.";

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  tcpcopy completions bash > /etc/bash_completion.d/tcpcopy
  tcpcopy completions zsh > \"${fpath[1]}/_tcpcopy\"
  tcpcopy completions fish > ~/.config/fish/completions/tcpcopy.fish";

const MAN_EXAMPLES: &str = "\
Example:
  tcpcopy man ~/.local/share/man/man1 && man tcpcopy-copy";

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tcpcopy").chain(args.iter().copied()))
    }

    fn copy(args: &[&str]) -> CopyArgs {
        match parse(args).unwrap().command {
            Command::Copy(copy) => *copy,
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
            "eth0,eth2",
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
        assert_eq!(
            args.interfaces,
            ["eth0", "eth2", "eth1"],
            "1.x's comma list too"
        );
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
    fn compare_flags_need_compare_and_live_capture() {
        let base = ["copy", "-i", "eth0", "-x", "80-198.51.100.30:80", "-s", "h"];
        let args = copy(&base);
        assert_eq!(
            (args.compare.file.as_ref(), args.compare.head_bytes()),
            (None, 64)
        );
        let args = copy(
            &[
                &base[..],
                &[
                    "--compare",
                    "c.jsonl",
                    "--compare-head",
                    "128",
                    "--protocol",
                    "memcached",
                ],
            ]
            .concat(),
        );
        assert_eq!(args.compare.file, Some(PathBuf::from("c.jsonl")));
        assert_eq!(
            (args.compare.head_bytes(), args.compare.protocol),
            (128, Some(crate::compare::Protocol::Memcached))
        );
        for (extra, flag) in [
            (&["--protocol", "http"][..], "--compare"),
            (&["--compare-head", "32"], "--compare"),
            (&["--compare", "c", "--protocol", "smtp"], "--protocol"),
            (&["--compare", "c", "--compare-head", "4"], "--compare-head"),
            (&["--compare", "c", "--output", "o.pcap"], "--output"),
        ] {
            let err = parse(&[&base[..], extra].concat()).unwrap_err().to_string();
            assert!(err.contains(flag), "{extra:?}: {err}");
        }
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
    }

    #[test]
    fn the_published_1x_command_line_parses_without_i() {
        // TCPCopy's README: `./tcpcopy -x 80-61.135.233.160:8080 -s 61.135.233.161 -c 62.135.200.x`
        let args = copy(&[
            "copy",
            "-x",
            "80-198.51.100.30:8080",
            "-s",
            "198.51.100.40",
            "-c",
            "203.0.113.x",
        ]);
        assert!(args.interfaces.is_empty(), "devices chosen at run time");
    }

    #[test]
    fn every_1x_copy_option_keeps_its_letter_and_meaning() {
        let args = copy(&[
            "copy",
            "-x",
            "80-198.51.100.30:80",
            "-s",
            "198.51.100.40,198.51.100.41:9",
            "-c",
            "203.0.113.x",
            "-n",
            "3",
            "-f",
            "2",
            "-r",
            "30",
            "-M",
            "1400",
            "-D",
            "1400",
            "-R",
            "5",
            "-t",
            "300",
            "-k",
            "600",
            "-C",
            "4",
            "-p",
            "4000",
            "-P",
            "/run/t.pid",
            "-O",
            "-W",
            "-L",
            "-i",
            "eth0",
            "-F",
            "tcp dst port 80",
            "-B",
            "16",
            "-S",
            "2000",
            "-g",
        ]);
        let shaping = &args.shaping;
        assert_eq!((shaping.copies, shaping.port_shift), (3, 2));
        assert_eq!(shaping.sample_percent, 30.0);
        assert_eq!(shaping.ramp(), Duration::from_secs(100), "-g");
        assert_eq!((args.mtu, args.tuning.mss), (1400, 1400));
        assert_eq!(
            args.tuning.rtt,
            Some(Duration::from_millis(5)),
            "-R is in ms"
        );
        assert_eq!(
            args.tuning.idle_timeout(),
            Duration::from_secs(600),
            "-t, -k"
        );
        assert_eq!(args.connections, Some(4));
        let ports: Vec<u16> = args.all_intercepts().iter().map(|i| i.port).collect();
        assert_eq!(ports, [4000, 9], "-p is the default intercept port");
        assert!(args.only_full_sessions && args.no_wait && args.lonely);
        assert_eq!(args.interfaces, ["eth0"]);
        assert_eq!(args.filter.as_deref(), Some("tcp dst port 80"));
        assert_eq!((args.buffer_mib, args.snaplen), (Some(16), Some(2000)));
    }

    #[test]
    fn every_1x_intercept_option_keeps_its_letter_and_meaning() {
        let cli = parse(&[
            "intercept",
            "-i",
            "eth0,eth1",
            "-F",
            "tcp and src port 80",
            "-p",
            "4000",
            "-b",
            "198.51.100.40",
            "-P",
            "/run/i.pid",
        ])
        .unwrap();
        assert_eq!(cli.pid_file, Some(PathBuf::from("/run/i.pid")));
        let cli = parse(&[
            "copy",
            "-x",
            "80-198.51.100.30:80",
            "-s",
            "h",
            "-l",
            "/var/log/t.log",
        ])
        .unwrap();
        assert_eq!(
            cli.log_file,
            Some(PathBuf::from("/var/log/t.log")),
            "-l, 1.x's too"
        );
        let cli = parse(&[
            "intercept",
            "--nfqueue",
            "0",
            "-x",
            "198.51.100.9",
            "--queue-length",
            "4096",
        ])
        .unwrap();
        let Command::Intercept(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.passlist, ["198.51.100.9".parse::<IpAddr>().unwrap()]);
        assert_eq!(args.queue_length, Some(4096));
    }

    #[test]
    fn retired_1x_options_say_what_to_use_instead() {
        let copy_base = ["copy", "-x", "80-198.51.100.30:80", "-s", "h"];
        let cases: [(&[&str], &str); 5] = [
            (&["-d"], "systemd"),
            (&["-U", "8"], "--max-sessions"),
            (&["-m", "512"], "MemoryMax"),
            (&["-H", "198.51.100.1"], "-c"),
            (&["-o", "eth1"], "routing"),
        ];
        for (extra, hint) in cases {
            let err = parse(&[&copy_base[..], extra].concat())
                .unwrap_err()
                .to_string();
            assert!(err.contains(hint), "{extra:?}: {err}");
        }
        let intercept_base = ["intercept", "--nfqueue", "0"];
        let cases: [(&[&str], &str); 3] = [
            (&["-d"], "systemd"),
            (&["-s", "65536"], "drop -s"),
            (&["-n", "16"], "drop -n"),
        ];
        for (extra, hint) in cases {
            let err = parse(&[&intercept_base[..], extra].concat())
                .unwrap_err()
                .to_string();
            assert!(err.contains(hint), "{extra:?}: {err}");
        }
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
            "eth0,eth1",
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
        assert_eq!(
            args.interfaces,
            ["eth0", "eth1"],
            "intercept 1.0's comma list"
        );
        assert_eq!(args.port, 4000);

        assert!(parse(&["intercept"]).is_err(), "a mode is required");
        assert!(
            parse(&["intercept", "-i", "eth0"]).is_err(),
            "pcap mode needs -F"
        );
        assert!(parse(&["intercept", "--nfqueue", "1", "-i", "eth0", "-F", "tcp"]).is_err());
    }

    #[test]
    fn log_flags_are_global() {
        let cli = parse(&["stats", "live", "127.0.0.1:9361"]).unwrap();
        assert_eq!((cli.log_format, cli.log_file), (LogFormat::Text, None));
        let cli = parse(&[
            "--log-format",
            "json",
            "stats",
            "live",
            "-l",
            "/var/log/t.log",
            "127.0.0.1:9361",
        ])
        .unwrap();
        assert_eq!(cli.log_format, LogFormat::Json);
        assert_eq!(cli.log_file, Some(PathBuf::from("/var/log/t.log")));
        let err = parse(&["stats", "live", "127.0.0.1:9361", "--log-format", "xml"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--log-format") && err.contains("xml"), "{err}");
    }

    #[test]
    fn completions_and_man_take_their_operand() {
        let Command::Completions(args) = parse(&["completions", "zsh"]).unwrap().command else {
            panic!()
        };
        assert_eq!(args.shell, clap_complete::Shell::Zsh);
        assert!(parse(&["completions", "tcsh"]).is_err());
        assert!(parse(&["completions"]).is_err());
        let Command::Man(args) = parse(&["man", "out/man"]).unwrap().command else {
            panic!()
        };
        assert_eq!(args.dir, PathBuf::from("out/man"));
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
    fn compare_takes_files_and_its_report_options() {
        let compare = |args: &[&str]| {
            let cli = parse(&[&["stats", "compare"], args].concat())?;
            let Command::Stats(StatsArgs {
                command: StatsCommand::Compare(compare),
            }) = cli.command
            else {
                panic!("parsed as {:?}", cli.command)
            };
            Ok::<_, clap::Error>(compare)
        };
        let args = compare(&["a.jsonl", "b.jsonl"]).unwrap();
        assert_eq!(args.files, ["a.jsonl", "b.jsonl"].map(PathBuf::from));
        assert_eq!(
            (args.by, args.top, args.json, args.max_mismatch),
            (GroupBy::Head, 10, false, None)
        );
        let args = compare(&["a", "--by", "status", "--top", "3", "--max-mismatch", "2%"]).unwrap();
        assert_eq!(
            (args.by, args.top, args.max_mismatch),
            (GroupBy::Status, 3, Some(0.02))
        );
        assert!(compare(&[]).is_err(), "a file is required");
        for (bad, flag) in [
            (&["a", "--top", "0"][..], "--top"),
            (&["a", "--max-mismatch", "2"], "--max-mismatch"),
            (&["a", "--by", "path"], "--by"),
        ] {
            let err = compare(bad).unwrap_err().to_string();
            assert!(err.contains(flag), "{err}");
        }
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

    #[test]
    fn intercept_allow_takes_blocks_of_both_families_listed_or_repeated() {
        let cli = parse(&[
            "intercept",
            "--nfqueue",
            "0",
            "--allow",
            "198.51.100.20,198.51.100.0/24",
            "--allow",
            "2001:db8::/32",
            "--secret-file",
            "/etc/tcpcopy/secret",
        ])
        .unwrap();
        let Command::Intercept(args) = cli.command else {
            panic!()
        };
        let shown: Vec<String> = args.allow.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["198.51.100.20/32", "198.51.100.0/24", "2001:db8::/32"]
        );
        assert_eq!(
            args.secret.secret_file.as_deref(),
            Some(std::path::Path::new("/etc/tcpcopy/secret"))
        );
        let err = parse(&["intercept", "--nfqueue", "0", "--allow", "198.51.100.7/24"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--allow") && err.contains("host bits"),
            "{err}"
        );
    }

    #[test]
    fn copy_takes_a_secret_file() {
        let args = copy(&[
            "copy",
            "-x",
            "80-198.51.100.30:80",
            "-s",
            "198.51.100.40",
            "--secret-file",
            "secret",
        ]);
        assert_eq!(
            args.secret.secret_file.as_deref(),
            Some(std::path::Path::new("secret"))
        );
    }
}
