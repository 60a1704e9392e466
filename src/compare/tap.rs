//! What copy's shards tell a comparison about the target side, and the owned events that
//! carry it to the comparison's thread.
//!
//! A shard calls its [`TargetTap`] where its session table opens, sends, hears a reply and
//! forgets; without `--compare` it has none and does nothing more.

use crate::packet::{Flow, Segment, SeqNum, TcpFlags};

/// The target side of a comparison, as a shard sees it.
pub trait TargetTap: Send {
    /// The first replica of the captured flow `captured` (the real client → the target)
    /// replays as `replayed`.
    fn opened(&mut self, captured: Flow, replayed: Flow);
    /// copy sends `segment` (client → target) to the target.
    fn sent(&mut self, segment: &Segment);
    /// A reply of the target, as an intercept reported it: its headers, the payload bytes
    /// that came with them (none from a version-6 intercept) and intercept's capture time
    /// (version 7).
    fn replied(&mut self, segment: &Segment, prefix: &[u8], stamped_us: Option<u64>);
    /// The session replaying `replayed` is over.
    fn ended(&mut self, replayed: Flow);
}

/// A [`TargetTap`] call, owned, with copy's time of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetEvent {
    Opened {
        captured: Flow,
        replayed: Flow,
    },
    Sent {
        at_us: u64,
        replayed: Flow,
        seq: SeqNum,
        flags: TcpFlags,
        len: u32,
    },
    Replied {
        /// When copy read it.
        received_us: u64,
        stamped_us: Option<u64>,
        replayed: Flow,
        seq: SeqNum,
        flags: TcpFlags,
        len: u32,
        prefix: Vec<u8>,
    },
    Ended {
        replayed: Flow,
    },
}
