//! tcpcopy replicates live TCP traffic from online hosts to a target server.
//!
//! # Layout
//! - [`addresses`]: the `-x`, `-c` and `-s` syntaxes as value types (pure).
//! - [`packet`]: link layers, IPv4/IPv6 and TCP views, the owned `Segment` record, sequence
//!   numbers, checksums (pure).
//! - [`session`]: the per-flow TCP client emulation that replays one client connection to the
//!   target: events in, actions out (pure, no I/O, no clock).
//! - [`pid_file`]: `-P`, the process id in a file for the process's lifetime.
//! - [`poll`]: the `poll(2)` wrapper the event loops wait in.
//! - [`proto`]: the copy ⇄ intercept wire format, TCPCopy 1.x's version 6 and our own (pure).
//! - [`capture`]: packet sources, live pcap and pcap files, behind one trait.
//! - [`replay`]: the copy data path: share-nothing shards (capture, sessions, intercept links,
//!   batched raw send), one `poll` loop each.
//! - [`intercept`]: reply sources (NFQUEUE, pcap) and the server that routes replies to copies.
//! - [`stats`]: counters, loss arithmetic and reports.
//! - [`cli`]: the command-line surface (clap types only); [`compat`]: TCPCopy 1.x options
//!   that are gone, each failing with what to use instead.
//! - [`cli_render`]: shell completions and man pages made from the clap definition.
//! - [`logging`]: the logger: level, text or JSON Lines, stderr or a file reopened on SIGHUP.

pub mod addresses;
pub mod capture;
pub mod cli;
pub mod cli_render;
pub mod compat;
pub mod intercept;
pub mod logging;
pub mod packet;
pub mod pid_file;
pub mod poll;
pub mod proto;
pub mod replay;
pub mod session;
pub mod stats;
