//! TCP sequence numbers: modulo-2^32 arithmetic and comparison (RFC 9293 §3.4).
//!
//! Every place that adds to, subtracts from or compares sequence numbers goes through
//! [`SeqNum`], so wrap-around is handled in exactly one spot.

use std::cmp::Ordering;
use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// A TCP sequence or acknowledgement number.
///
/// Ordering is the "serial number" ordering of RFC 1982: `a < b` when `b` is less than
/// 2^31 ahead of `a`. It is not a total order over all of `u32`, so `SeqNum` implements
/// `PartialOrd` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// The signed distance from `earlier` to `self`: positive when `self` is ahead.
    pub fn distance_from(self, earlier: SeqNum) -> i32 {
        self.0.wrapping_sub(earlier.0) as i32
    }

    /// The larger of two sequence numbers in serial-number order.
    pub fn max(self, other: SeqNum) -> SeqNum {
        if self.distance_from(other) >= 0 {
            self
        } else {
            other
        }
    }

    /// The smaller of two sequence numbers in serial-number order.
    pub fn min(self, other: SeqNum) -> SeqNum {
        if self.distance_from(other) <= 0 {
            self
        } else {
            other
        }
    }
}

impl PartialOrd for SeqNum {
    fn partial_cmp(&self, other: &SeqNum) -> Option<Ordering> {
        Some(self.distance_from(*other).cmp(&0))
    }
}

impl Add<u32> for SeqNum {
    type Output = SeqNum;
    fn add(self, rhs: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(rhs))
    }
}

impl Add<usize> for SeqNum {
    type Output = SeqNum;
    /// Adds a byte count; counts above 2^31 make no sense for TCP and wrap.
    fn add(self, rhs: usize) -> SeqNum {
        SeqNum(self.0.wrapping_add(rhs as u32))
    }
}

impl AddAssign<u32> for SeqNum {
    fn add_assign(&mut self, rhs: u32) {
        self.0 = self.0.wrapping_add(rhs);
    }
}

impl Sub<u32> for SeqNum {
    type Output = SeqNum;
    fn sub(self, rhs: u32) -> SeqNum {
        SeqNum(self.0.wrapping_sub(rhs))
    }
}

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ordering_wraps_around_zero() {
        assert!(SeqNum(u32::MAX) < SeqNum(0));
        assert!(SeqNum(0) > SeqNum(u32::MAX - 10));
        assert_eq!(SeqNum(u32::MAX) + 2u32, SeqNum(1));
        assert_eq!(SeqNum(1) - 2, SeqNum(u32::MAX));
        assert_eq!(SeqNum(5).distance_from(SeqNum(u32::MAX)), 6);
    }

    proptest! {
        #[test]
        fn adding_less_than_half_the_space_moves_forward(base: u32, step in 1u32..(1 << 31)) {
            let a = SeqNum(base);
            let b = a + step;
            prop_assert!(a < b);
            prop_assert!(b > a);
            prop_assert_eq!(b.distance_from(a), step as i32);
            prop_assert_eq!(a.max(b), b);
            prop_assert_eq!(a.min(b), a);
        }
    }
}
