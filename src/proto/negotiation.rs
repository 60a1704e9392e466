//! Version negotiation: the hello copy opens with and the switch marker that moves a
//! connection onto version 7.
//!
//! Owns the two negotiation byte layouts. The hello is a version-6 record with both addresses
//! zero and the type naming copy's highest version, so a 1.x intercept reads it as it always
//! has (it only warns when the type is not 6). The switch marker is 8 bytes, `0xFFFF`, the
//! magic "TCPC", then the version; its first two bytes can never open a version-6 combined
//! frame (count 65535) nor a version-6 record (client address 255.255.x.x, reserved, which
//! copy refuses to encode in version 6), which is how each decoder tells it from version-6
//! traffic. Intercept sends it in answer to a hello of 7 or
//! more; copy sends it back once it has seen intercept's, and speaks version 7 after it.

use super::v6::Record;
use super::wire::Reader;
use super::{ProtoError, Version};

/// Length of the switch marker.
pub(crate) const SWITCH_LEN: usize = 8;
/// The first two bytes of the switch marker.
pub(crate) const SWITCH_MARKER: u16 = 0xffff;
/// "TCPC" in ASCII.
const SWITCH_MAGIC: u32 = 0x5443_5043;

/// Appends copy's hello offering `version` (14 bytes: zeros, type = version at offset 6).
pub fn encode_hello(version: Version, out: &mut Vec<u8>) {
    Record::hello(version.number()).encode(out);
}

/// Appends the switch marker to version 7: `FFFF 54435043 0007`. Intercept sends it in answer
/// to a hello of 7; copy sends it after receiving intercept's, right before its first
/// version-7 frame.
pub fn encode_switch(out: &mut Vec<u8>) {
    out.extend_from_slice(&SWITCH_MARKER.to_be_bytes());
    out.extend_from_slice(&SWITCH_MAGIC.to_be_bytes());
    out.extend_from_slice(&Version::V7.number().to_be_bytes());
}

/// Reads a switch marker from exactly [`SWITCH_LEN`] bytes; only version 7 can be switched to.
pub(crate) fn decode_switch(bytes: &[u8]) -> Result<Version, ProtoError> {
    let mut reader = Reader::new(bytes, "version switch");
    let _marker = reader.u16()?;
    let magic = reader.u32()?;
    if magic != SWITCH_MAGIC {
        return Err(ProtoError::BadSwitchMagic { found: magic });
    }
    match reader.u16()? {
        7 => Ok(Version::V7),
        version => Err(ProtoError::UnexpectedSwitchVersion { version }),
    }
}
