//! Bounds-checked big-endian reading, shared by every decoder in this module.
//!
//! Owns nothing but a cursor over a borrowed slice; it never panics and reports short input as
//! [`ProtoError::Truncated`] naming the structure being read.

use super::ProtoError;

/// A cursor that reads network-byte-order fields from a slice.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `bytes`, naming them `what` in errors.
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader {
            bytes,
            pos: 0,
            what,
        }
    }

    /// The next `len` bytes.
    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], ProtoError> {
        let end = self.pos.saturating_add(len);
        let taken = self.bytes.get(self.pos..end).ok_or(ProtoError::Truncated {
            what: self.what,
            needed: end,
            had: self.bytes.len(),
        })?;
        self.pos = end;
        Ok(taken)
    }

    /// The next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtoError> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ProtoError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, ProtoError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, ProtoError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, ProtoError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

/// The big-endian `u16` at `offset`, if the slice is long enough.
pub(crate) fn be_u16_at(bytes: &[u8], offset: usize) -> Option<u16> {
    let pair = bytes.get(offset..offset.checked_add(2)?)?;
    Some(u16::from_be_bytes([pair[0], pair[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_in_network_order() {
        let bytes = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
        let mut reader = Reader::new(&bytes, "test");
        assert_eq!(reader.u8(), Ok(0x01));
        assert_eq!(reader.u16(), Ok(0x0203));
        assert_eq!(reader.u32(), Ok(0x0405_0607));
        assert_eq!(reader.u64(), Ok(0x0809_0a0b_0c0d_0e0f));
    }

    #[test]
    fn short_input_reports_needed_and_had() {
        let mut reader = Reader::new(&[1, 2, 3], "thing");
        assert_eq!(reader.u16(), Ok(0x0102));
        assert_eq!(
            reader.u32(),
            Err(ProtoError::Truncated {
                what: "thing",
                needed: 6,
                had: 3
            })
        );
    }

    #[test]
    fn be_u16_at_is_bounds_checked() {
        assert_eq!(be_u16_at(&[0xff, 0xfe, 1], 0), Some(0xfffe));
        assert_eq!(be_u16_at(&[0xff, 0xfe, 1], 2), None);
        assert_eq!(be_u16_at(&[], usize::MAX), None);
    }
}
