//! Comparison tests (`copy --compare`, `stats compare`): the target's replies against the
//! online server's, request by request.
//!
//! Pure: segments with their times in, records out; no socket, no clock, no thread. copy's
//! edge (its capture of the online server's replies and the shards' [`TargetTap`]) feeds a
//! [`Comparator`]; `stats compare` reads the [`Record`]s it wrote.
//!
//! # Layout
//! - [`protocol`]: the protocol families, guessed from a first request, and the heads of
//!   requests and replies as a record shows them.
//! - [`classify`]: one small classifier per protocol family: a reply's class (`200`,
//!   `VALUE`, `$nil`, ...) and whether its bytes are one whole reply.
//! - [`bytes`]: one direction's bytes of an exchange: how many, when, and the first ones.
//! - [`side`]: one side's view of a session (online or target): the client's turns and the
//!   server's, cut into exchanges by the client's sequence numbers.
//! - [`matcher`]: the two sides of a session joined by the sequence number each request
//!   starts at, so a request is paired with itself or reported unmatched, never with another.
//! - [`clock`]: the target side's times on copy's clock (intercept's timestamps).
//! - [`comparator`]: every session of a copy, their limits and timeouts.
//! - [`record`]: the JSON Lines record of one request (written by copy, read by stats).
//! - [`tap`]: what copy's shards tell a comparison about the target side.

pub mod bytes;
pub mod classify;
pub mod clock;
pub mod comparator;
pub mod matcher;
pub mod protocol;
pub mod record;
pub mod side;
pub mod tap;

pub use comparator::{Comparator, ComparatorLimits, Tally};
pub use protocol::Protocol;
pub use record::{Record, SideRecord};
pub use tap::TargetTap;
