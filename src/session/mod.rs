//! The per-flow TCP client emulation: replays one captured client connection against the
//! target server.
//!
//! Events in ([`Session::on_client`], [`Session::on_reply`], [`Session::on_timeout`]),
//! packets and counters out through [`Output`]. Pure: no I/O, no clock (time is an argument),
//! no threads; the worker owns the sockets, the timer wheel and the buffers.
//!
//! - [`engine`]: the state machine ([`Session`]); `engine/send.rs` builds what it sends,
//!   `engine/timeouts.rs` handles its timers and its end.
//! - [`send_queue`]: the client's bytes by sequence number, trimmed and reordered.
//! - [`pacing`]: when the next request may go (TCPCopy's wait-for-response).
//! - [`rtt`]: RFC 6298 round-trip estimation and retransmission timeout.
//! - [`timers`]: the session's deadlines.
//! - [`timestamps`]: RFC 7323 TSval/TSecr of the replayed connection.
//! - [`config`], [`event`]: tunables and what a session reports.

mod config;
mod engine;
mod event;
mod pacing;
mod rtt;
mod send_queue;
mod timers;
mod timestamps;

pub use config::SessionConfig;
pub use engine::Session;
pub use event::{Event, Output, RecordingOutput};

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
