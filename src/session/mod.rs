//! The per-flow TCP client emulation: replays one captured client connection against the
//! target server.
//!
//! Events in ([`Session::on_client`], [`Session::on_reply`], [`Session::on_timeout`]),
//! packets and counters out through [`Output`]. Pure: no I/O, no clock (time is an argument),
//! no threads; the worker owns the sockets, the timer wheel and the buffers, and registers a
//! flow with intercept whenever a session transmits a SYN.
//!
//! # What a session does
//! - Keeps the client's sequence numbers; every ACK it sends is RCV.NXT, what the target has
//!   actually sent (from reply seq + `payload_len`), so the target never waits on an ACK.
//!   TSecr echoes the target's latest TSval, TSval follows the client's clock and never goes
//!   back. The client's SYN options are kept (SACK-permitted dropped: we send no SACK blocks).
//! - A session caught mid-stream opens with a SYN of its own (seq = first byte − 1, MSS
//!   option, timestamps if the client uses them), unless `only_full_sessions`.
//! - Client bytes go through a queue that trims retransmissions, reorders, and resegments to
//!   the target's MSS within the target's (scaled) window. Client pure ACKs are not
//!   forwarded; the session acknowledges target data itself (every second segment, short
//!   segments at once, the rest after `ack_delay`).
//! - Pacing (TCPCopy's wait-for-response): a payload whose client ACK moved forward starts a
//!   new request, held until the target's previous answer is complete: as many bytes as the
//!   online server answered with (the advance of the client's ACK), or, when the sizes
//!   differ, a quiet time of the live RTT; greetings are waited for the same way; FIN and RST
//!   wait too. Unlike 1.x no hold outlasts `response_timeout`.
//! - Reliability toward the target: RFC 6298 RTO with backoff and a give-up limit, fast
//!   retransmit and NewReno-style recovery, zero-window probes.
//! - Port reuse (new ISN or a sequence jump) resets the old replay and starts anew; a target
//!   RST or FIN with client data left rebuilds the connection from the first unacknowledged
//!   byte; every session ends with a RST to the target, then a time-wait answers late target
//!   packets with RST.
//! - Every cap and timeout that triggers is an [`Event`].
//!
//! # Layout
//! - `engine`: the state machine ([`Session`]) and what it takes from the client;
//!   `engine/connection.rs` opens, rebuilds and restarts the connection,
//!   `engine/reply.rs` handles the target's segments, `engine/send.rs` builds what it
//!   sends, `engine/timeouts.rs` handles its timers and its end.
//! - `send_queue`: the client's bytes by sequence number, trimmed and reordered, and where
//!   requests start.
//! - `pacing`: when the next request or close may go; `answer`: how much of the answer to the
//!   request in flight the target has sent.
//! - `rtt`: RFC 6298 round-trip estimation and retransmission timeout.
//! - `time_wait`: what a closed connection answers, and the small record a table keeps of a
//!   session in time-wait instead of the whole session.
//! - `timers`: the session's deadlines.
//! - `timestamps`: RFC 7323 TSval/TSecr of the replayed connection.
//! - `config`, `event`: tunables and what a session reports.
//! - `sim` (tests only): a scripted client, a minimal TCP target and a lossy network.

mod answer;
mod config;
mod engine;
mod event;
mod pacing;
mod rtt;
mod send_queue;
mod time_wait;
mod timers;
mod timestamps;

pub use config::SessionConfig;
pub use engine::Session;
pub use event::{Event, Output, RecordingOutput};
pub use time_wait::TimeWait;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
