//! The end-to-end test harness: a network-namespace lab of five hosts (see `scripts/lab.sh`),
//! processes started inside its hosts, the servers the tests talk to, packet captures and
//! bounded clients.
//!
//! It owns the lab's life cycle (up, teardown on drop, even when a test panics) and every
//! process it starts (killed by pid, then reaped). It must not send traffic anywhere but the
//! lab's own hosts, and never lets an e2e test skip: when the lab cannot be built (not root, a
//! command missing) [`Lab::up`] returns an error saying why, and the test panics with it.
//!
//! Run e2e tests one at a time (`cargo test --test 'e2e_*' -- --test-threads=1`, as
//! `scripts/test.sh` does); labs are also serialized by a process-wide lock.

// Each test binary compiles this whole module but uses only part of it.
#![allow(dead_code, unused_imports)]

mod access_log;
mod cache_client;
mod capture;
mod client;
mod command_log;
mod copy_totals;
mod counters;
mod deploy;
mod flood;
mod held;
mod host;
mod http;
mod impairment;
mod lab;
mod netns;
mod process;
mod reorder;
mod replication;
mod request_multiset;
mod servers;
mod sessions;
mod settle;
mod slow_http;
mod temp_dir;
mod wait;

pub use access_log::AccessEntry;
pub use cache_client::CommandLoad;
pub use capture::{Capture, CaptureSummary, TcpPacket};
pub use client::{Connections, LoadReport};
pub use command_log::{CommandLog, CommandServer, LoggedCommand};
pub use copy_totals::copy_exit_totals;
pub use counters::{counter, last_counters};
pub use deploy::{
    EXIT_TIMEOUT, Family, Mode, READY_TIMEOUT, intercept_connections, stop_copy, stop_with_totals,
    wait_for_log,
};
pub use flood::{
    AFTER_FLOOD_REQUESTS, FLOOD_PER_SECOND, Flood, FloodReport, FloodShape, REAL_CONNECTIONS,
    SegmentKind, connections_after_flood, real_connections_replayed, real_load_during,
};
pub use held::HeldHttp;
pub use host::{CLIENT_NET, CLIENT_NET6, Host};
pub use http::{
    BIG_FILE, BIG_FILE_BYTES, HttpConnection, HttpRequest, UPLOAD, keep_alive_rounds,
    open_connections, short_connections,
};
pub use impairment::{Link, LossCounts};
pub use lab::Lab;
pub use process::{Output, Proc};
pub use reorder::{ReorderCounts, Reorderer};
pub use replication::{Replication, Totals};
pub use request_multiset::{
    RequestKey, assert_same_requests, multiset, multiset_differences, multiset_excess, requests,
};
pub use servers::{HTTP_PORT, MEMCACHED_PORT, Nginx, REDIS_PORT};
pub use sessions::wait_for_sessions_to_end;
pub use settle::{caught_up, settled, stable};
pub use slow_http::SlowHttp;
pub use temp_dir::TempDir;
pub use wait::{bound_packet_sockets, has_bound_packet_socket, port_open, wait_until};

/// The `tcpcopy` binary cargo built for this test run.
pub fn tcpcopy_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tcpcopy")
}
