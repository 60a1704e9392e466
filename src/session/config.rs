//! Per-session tunables: what the replay waits for, how long, and how much it buffers.
//!
//! Plain data with documented defaults; the CLI maps its flags onto [`SessionConfig`]. Nothing
//! here reads a clock or the environment.

use std::time::Duration;

/// How every [`Session`](super::Session) of a worker behaves. Cheap to clone; sessions keep a
/// copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// MSS option of the SYNs we make ourselves (mid-stream and rebuilt sessions); TCPCopy `-D`.
    pub mss: u16,
    /// Retransmission timeout before any RTT sample (RFC 6298 §2.1 says 1 s for the Internet;
    /// targets sit on a LAN, so we start lower).
    pub initial_rto: Duration,
    /// Lower bound of the retransmission timeout (RFC 6298 §2.4 suggests 1 s; TCPCopy 1.x uses
    /// 100 ms, which suits a LAN and is our default).
    pub min_rto: Duration,
    /// Upper bound of the backed-off retransmission timeout (RFC 6298 §2.5 allows any cap ≥ 60 s;
    /// a replay that waits longer than this has lost its timing anyway).
    pub max_rto: Duration,
    /// Retransmissions of one segment before the session gives up and resets.
    pub max_retransmits: u32,
    /// Time from our SYN to the target's SYN-ACK before the session gives up (TCPCopy: 3 s).
    pub handshake_timeout: Duration,
    /// No packet from either side for this long ends the session (TCPCopy `-t`).
    pub idle_timeout: Duration,
    /// Client bytes a session may hold (unsent, unacknowledged or out of order). Beyond it the
    /// session is reset: a replay missing bytes would be wrong.
    pub max_buffered_bytes: usize,
    /// Out-of-order client segments held at once, waiting for a gap to fill.
    pub max_out_of_order_segments: usize,
    /// Replay only sessions whose SYN was captured (TCPCopy `-O`).
    pub only_full_sessions: bool,
    /// Hold each new request until the target has answered the previous one (TCPCopy's
    /// default; `-W` turns it off).
    pub wait_for_response: bool,
    /// Round-trip time used to decide that a response has ended (TCPCopy `-R`); `None`
    /// measures it from our SYN to the target's SYN-ACK.
    pub response_end_rtt: Option<Duration>,
    /// Floor of the quiet time that ends a response, so a sub-millisecond LAN RTT does not cut
    /// a response the target writes in several bursts.
    pub min_response_quiet: Duration,
    /// A request the target neither answers nor acknowledges further for this long counts as
    /// answered, so a diverging target cannot stall the replay until the idle timeout.
    pub response_timeout: Duration,
    /// Longest a target data segment waits for our acknowledgement (RFC 9293 §3.8.6.3 allows
    /// up to 0.5 s; we keep it short so the target never stalls).
    pub ack_delay: Duration,
    /// After our FIN is acknowledged, how long we wait for the target's FIN before resetting.
    pub fin_wait_timeout: Duration,
    /// After a session ends, late target packets are answered with RST for this long.
    pub time_wait: Duration,
    /// A client sequence number this far from the expected one means the port was reused.
    pub port_reuse_jump: u32,
    /// How many times a session may be rebuilt after the target closed it early.
    pub max_rebuilds: u32,
}

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig {
            mss: 1460,
            initial_rto: Duration::from_millis(250),
            min_rto: Duration::from_millis(100),
            max_rto: Duration::from_secs(2),
            max_retransmits: 8,
            handshake_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(120),
            max_buffered_bytes: 16 << 20,
            max_out_of_order_segments: 256,
            only_full_sessions: false,
            wait_for_response: true,
            response_end_rtt: None,
            min_response_quiet: Duration::from_millis(2),
            response_timeout: Duration::from_secs(5),
            ack_delay: Duration::from_millis(5),
            fin_wait_timeout: Duration::from_secs(2),
            time_wait: Duration::from_secs(6),
            port_reuse_jump: 16 << 20,
            max_rebuilds: 3,
        }
    }
}
