//! The record `copy --compare FILE` writes for each request, one JSON object per line, and
//! `stats compare` reads back. The keys are documented in docs/comparison.md.

use serde::{Deserialize, Serialize};

use super::Protocol;
use super::side::End;

/// One request, as the online server and the target answered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When the request's first byte came (online; the target's when only it saw the
    /// request), RFC 3339 in UTC with microseconds.
    pub time: String,
    /// The real client, `ADDR:PORT`.
    pub client: String,
    /// The online service it asked, `ADDR:PORT` (the target's when online saw nothing).
    pub server: String,
    pub protocol: Protocol,
    /// The request's head: its first line for HTTP, its first bytes otherwise; escaped
    /// (`\r`, `\n`, `\t`, `\\`, `\xHH`), at most `--compare-head` bytes. Empty when only the
    /// target side saw the request (copy's shards do not pass its bytes on).
    pub head: String,
    /// The request's bytes.
    pub request_bytes: u64,
    /// How the online server answered; `null` when the online capture did not see the
    /// request.
    pub online: Option<SideRecord>,
    /// How the target answered; `null` when copy did not replay the request.
    pub target: Option<SideRecord>,
    /// Both sides answered this one request, and neither reply held part of another.
    pub matched: bool,
    /// Why the request is not matched: `online only`, `target only`, `pipelined`.
    pub why: Option<String>,
    /// Whether the two outcomes differ: the classes, or for the generic protocol the sizes
    /// and first bytes; `null` when it cannot be told (not matched, or the target side has
    /// no reply head: a TCPCopy 1.x intercept).
    pub differs: Option<bool>,
}

/// One side's answer to a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideRecord {
    /// The reply's head (the status line for HTTP, the first bytes otherwise), escaped;
    /// `null` when no reply came, or when its bytes are not known (version 6).
    pub head: Option<String>,
    /// The reply's class (`200`, `VALUE`, `$nil`, `reply`, `no reply`, with ` truncated`
    /// when it stopped short); `null` when its bytes are not known.
    pub class: Option<String>,
    /// The reply's bytes.
    pub bytes: u64,
    /// µs from the request's first byte to the reply's first byte, and to its last one, on
    /// that side; `null` without a reply.
    pub first_byte_us: Option<u64>,
    pub last_byte_us: Option<u64>,
    /// How the exchange ended.
    pub end: End,
}

/// The class of a reply that never came.
pub const NO_REPLY: &str = "no reply";
/// What marks the class of a reply that stopped short of its framing.
pub const TRUNCATED: &str = " truncated";
/// `why` for a request the target side did not see.
pub const ONLINE_ONLY: &str = "online only";
/// `why` for a request the online side did not see.
pub const TARGET_ONLY: &str = "target only";
/// `why` for a request whose reply held part of another request's (or ended when the next
/// request came before it was whole).
pub const PIPELINED: &str = "pipelined";

/// `us` since the Unix epoch in RFC 3339, UTC, with microseconds.
pub fn format_micros(us: u64) -> String {
    let stamp = i64::try_from(us)
        .ok()
        .and_then(|us| jiff::Timestamp::from_microsecond(us).ok())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!("{stamp:.6}")
}

impl Record {
    /// The outcome as the report's matrix keys it: `ONLINE->TARGET` classes (`-` for a
    /// side without one).
    pub fn outcome(&self) -> String {
        let class = |side: &Option<SideRecord>| {
            side.as_ref()
                .and_then(|side| side.class.clone())
                .unwrap_or_else(|| "-".to_owned())
        };
        format!("{}->{}", class(&self.online), class(&self.target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_with_microseconds() {
        assert_eq!(
            format_micros(1_791_609_680_123_456),
            "2026-10-10T05:21:20.123456Z"
        );
        assert_eq!(format_micros(0), "1970-01-01T00:00:00.000000Z");
    }
}
