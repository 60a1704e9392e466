//! tcpcopy replicates live TCP traffic from online hosts to a target server.
//!
//! # Layout
//! - [`addresses`]: the `-x`, `-c`, `-s` and `--allow` syntaxes as value types (pure).
//! - [`packet`]: link layers, IPv4/IPv6 and TCP views, the owned `Segment` record, sequence
//!   numbers, checksums (pure).
//! - [`session`]: the per-flow TCP client emulation that replays one client connection to the
//!   target: events in, actions out (pure, no I/O, no clock).
//! - [`pid_file`]: `-P`, the process id in a file for the process's lifetime.
//! - [`secret_file`]: `--secret-file`, the shared secret of copy and intercept, checked at start.
//! - [`poll`]: the `poll(2)` wrapper the event loops wait in.
//! - [`offline_clock`]: when each recorded frame of an offline replay is due: speed, gap cap
//!   and loop rounds (pure).
//! - [`proto`]: the copy ⇄ intercept wire format, TCPCopy 1.x's version 6 and our own (pure).
//! - [`capabilities`]: which Linux capabilities this process holds (CapEff).
//! - [`capture`]: packet sources: live pcap behind one trait, and capture files (pcap and
//!   pcapng), several merged by timestamp.
//! - [`replay`]: the copy data path: share-nothing shards (capture, sessions, intercept links,
//!   batched raw send), one `poll` loop each.
//! - [`intercept`]: reply sources (NFQUEUE, pcap) and the server that routes replies to copies.
//! - [`stats`]: counters, loss arithmetic and reports.
//! - [`cli`]: the command-line surface (clap types only); [`compat`]: TCPCopy 1.x options
//!   that are gone, each failing with what to use instead; [`usage`]: the rules between
//!   flags that clap cannot say (a flag of one mode given in the other, shadowed mappings).
//! - [`diagnosis`]: `copy --check`, `intercept --check` and the warnings that say why the
//!   target's replies do not come back, each naming the command that checks it.
//! - [`cli_render`]: shell completions and man pages made from the clap definition.
//! - [`logging`]: the logger: level, text or JSON Lines, stderr or a file reopened on SIGHUP;
//!   the throttle of repeated warnings.
//! - [`progress`]: the progress bar of an offline replay on a terminal, and the log writer
//!   that keeps log lines above it.

pub mod addresses;
pub mod capabilities;
pub mod capture;
pub mod cli;
pub mod cli_render;
pub mod compare;
pub mod compat;
pub mod diagnosis;
pub mod intercept;
pub mod logging;
pub mod offline_clock;
pub mod packet;
pub mod pid_file;
pub mod poll;
pub mod progress;
pub mod proto;
pub mod replay;
pub mod secret_file;
pub mod session;
pub mod stats;
pub mod usage;
