//! (being built)

/// The TCP port intercept listens on and copy connects to.
pub const DEFAULT_PORT: u16 = 36524;
