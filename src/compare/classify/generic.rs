//! The fallback for protocols without a classifier: a reply is just bytes. Two replies are
//! then compared by their size and first bytes (see the matcher), not by a class.

use super::{Classified, Framing};

/// The class every non-empty reply of an unknown protocol gets.
pub const REPLY: &str = "reply";

/// Any reply: [`REPLY`], with no framing to check.
pub fn classify() -> Classified {
    Classified::new(REPLY, Framing::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_reply_is_a_reply_of_unknown_framing() {
        assert_eq!(classify(), Classified::new(REPLY, Framing::Unknown));
    }
}
