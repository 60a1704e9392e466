//! A replayed flow, named the same way by copy and intercept: the copy's client end and the
//! target end, whichever direction a segment travels.

use std::net::SocketAddr;

use super::Segment;

/// One replayed connection: the (possibly rewritten) client address and port, and the
/// target's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Flow {
    pub client: SocketAddr,
    pub target: SocketAddr,
}

impl Flow {
    /// The flow of a segment the client sends to the target.
    pub fn of_request(segment: &Segment) -> Flow {
        Flow {
            client: segment.src,
            target: segment.dst,
        }
    }

    /// The flow of a segment the target sends back to the client.
    pub fn of_reply(segment: &Segment) -> Flow {
        Flow {
            client: segment.dst,
            target: segment.src,
        }
    }
}
