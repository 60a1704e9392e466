//! The shared secret of version 7 and the three frames that carry its challenge-response:
//! challenge (intercept → copy), response (copy → intercept) and refusal (either way).
//!
//! Owns the secret value, the MAC that proves it (HMAC-SHA256 over a label and intercept's
//! nonce, checked in constant time) and the byte layouts of the three frame bodies. Draws no
//! random numbers (the caller passes the nonce) and does no I/O.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::ProtoError;
use super::v7::write_frame;
use super::wire::Reader;

/// intercept → copy, right after intercept's switch marker: whether and how copy must prove
/// the secret.
pub(crate) const FRAME_CHALLENGE: u16 = 6;
/// copy → intercept, right after copy's switch marker: the MAC of the challenge's nonce.
pub(crate) const FRAME_RESPONSE: u16 = 7;
/// Either way: the sender will not go on, and why; it closes the connection next.
pub(crate) const FRAME_REFUSAL: u16 = 8;

/// Bytes of intercept's nonce.
pub const NONCE_LEN: usize = 32;
/// Bytes of the MAC copy answers with.
pub const MAC_LEN: usize = 32;
/// The fewest bytes a secret may have: a short one falls to a guess from one recorded
/// challenge and response.
pub const MIN_SECRET_LEN: usize = 16;

/// What the MAC covers before the nonce, so it proves nothing in any other protocol.
const MAC_LABEL: &[u8] = b"tcpcopy v7 copy auth\0";
const METHOD_NONE: u8 = 0;
const METHOD_HMAC_SHA256: u8 = 1;

/// The secret of `--secret-file`, shared by copy and intercept. Its `Debug` shows no byte.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A secret of these bytes; `None` when it has fewer than [`MIN_SECRET_LEN`].
    pub fn new(bytes: Vec<u8>) -> Option<Secret> {
        (bytes.len() >= MIN_SECRET_LEN).then_some(Secret(bytes))
    }

    /// The MAC that answers `nonce`.
    pub fn respond(&self, nonce: &[u8; NONCE_LEN]) -> [u8; MAC_LEN] {
        self.mac(nonce).finalize().into_bytes().into()
    }

    /// Whether `mac` answers `nonce` (constant time).
    pub fn verify(&self, nonce: &[u8; NONCE_LEN], mac: &[u8; MAC_LEN]) -> bool {
        self.mac(nonce).verify_slice(mac).is_ok()
    }

    fn mac(&self, nonce: &[u8; NONCE_LEN]) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("hmac takes any key length");
        mac.update(MAC_LABEL);
        mac.update(nonce);
        mac
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// What intercept asks of a copy that speaks version 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// Intercept has no secret: registrations may follow at once.
    None,
    /// Answer with the MAC of this nonce before anything else.
    HmacSha256([u8; NONCE_LEN]),
}

/// Why a side refuses to go on (a refusal frame's reason, as the sender sees it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The response did not prove the secret: the two secrets differ.
    WrongSecret,
    /// The sender has a secret and the receiver showed none.
    SecretRequired,
    /// The sender has no secret and the receiver asked for one.
    SecretNotExpected,
    /// A reason this build does not know.
    Other(u8),
}

impl Refusal {
    fn code(self) -> u8 {
        match self {
            Refusal::WrongSecret => 1,
            Refusal::SecretRequired => 2,
            Refusal::SecretNotExpected => 3,
            Refusal::Other(code) => code,
        }
    }

    fn from_code(code: u8) -> Refusal {
        match code {
            1 => Refusal::WrongSecret,
            2 => Refusal::SecretRequired,
            3 => Refusal::SecretNotExpected,
            code => Refusal::Other(code),
        }
    }
}

impl fmt::Display for Refusal {
    /// What a receiver of the refusal tells its operator.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::WrongSecret => f.write_str(
                "the other side refused this side's secret: the --secret-file files of copy and \
                 intercept differ",
            ),
            Refusal::SecretRequired => f.write_str(
                "the other side has a --secret-file and this side has none: give copy and \
                 intercept the same --secret-file",
            ),
            Refusal::SecretNotExpected => f.write_str(
                "the other side has no --secret-file and this side has one: give copy and \
                 intercept the same --secret-file",
            ),
            Refusal::Other(code) => write!(f, "the other side refused to go on (reason {code})"),
        }
    }
}

/// Appends a challenge frame: `method u8` (0 none, 1 HMAC-SHA256), then for method 1 the
/// 32-byte nonce.
pub(crate) fn encode_challenge(challenge: &Challenge, out: &mut Vec<u8>) {
    // At most 33 bytes: always fits a frame.
    let _ = write_frame(FRAME_CHALLENGE, out, |body| match challenge {
        Challenge::None => body.push(METHOD_NONE),
        Challenge::HmacSha256(nonce) => {
            body.push(METHOD_HMAC_SHA256);
            body.extend_from_slice(nonce);
        }
    });
}

/// Reads a challenge body.
pub(crate) fn decode_challenge(body: &[u8]) -> Result<Challenge, ProtoError> {
    let mut reader = Reader::new(body, "v7 challenge");
    match reader.u8()? {
        METHOD_NONE => Ok(Challenge::None),
        METHOD_HMAC_SHA256 => Ok(Challenge::HmacSha256(reader.array()?)),
        method => Err(ProtoError::UnknownChallengeMethod { method }),
    }
}

/// Appends a response frame: the 32-byte MAC.
pub(crate) fn encode_response(mac: &[u8; MAC_LEN], out: &mut Vec<u8>) {
    let _ = write_frame(FRAME_RESPONSE, out, |body| body.extend_from_slice(mac));
}

/// Reads a response body.
pub(crate) fn decode_response(body: &[u8]) -> Result<[u8; MAC_LEN], ProtoError> {
    Reader::new(body, "v7 response").array()
}

/// Appends a refusal frame: `reason u8`.
pub(crate) fn encode_refusal(refusal: Refusal, out: &mut Vec<u8>) {
    let _ = write_frame(FRAME_REFUSAL, out, |body| body.push(refusal.code()));
}

/// Reads a refusal body.
pub(crate) fn decode_refusal(body: &[u8]) -> Result<Refusal, ProtoError> {
    Ok(Refusal::from_code(Reader::new(body, "v7 refusal").u8()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v7::Frame;

    fn secret(text: &str) -> Secret {
        Secret::new(text.as_bytes().to_vec()).unwrap()
    }

    fn body(frame: &[u8], frame_type: u16) -> Vec<u8> {
        let (parsed, len) = Frame::split(frame).unwrap();
        assert_eq!((parsed.frame_type, len), (frame_type, frame.len()));
        parsed.body.to_vec()
    }

    #[test]
    fn the_mac_proves_the_secret_and_the_nonce() {
        let nonce = [7; NONCE_LEN];
        let mac = secret("a secret of 24 bytes....").respond(&nonce);
        assert!(secret("a secret of 24 bytes....").verify(&nonce, &mac));
        assert!(!secret("another secret, 24 bytes").verify(&nonce, &mac));
        assert!(!secret("a secret of 24 bytes....").verify(&[8; NONCE_LEN], &mac));
    }

    #[test]
    fn the_mac_is_hmac_sha256_of_the_label_and_nonce() {
        // RFC 4231 test case 2's key over our label and a zero nonce, computed elsewhere:
        // python3 -c "import hmac,hashlib; print(hmac.new(b'Jefe, what do ya want for
        // nothing?', b'tcpcopy v7 copy auth\0' + bytes(32), hashlib.sha256).hexdigest())"
        let key = Secret::new(b"Jefe, what do ya want for nothing?".to_vec()).unwrap();
        let hex: String = key
            .respond(&[0; NONCE_LEN])
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(
            hex,
            "acb63a0e8ba9d234d08c8c91a72263114594b9a42a14b27895d5dd291b348068"
        );
    }

    #[test]
    fn short_secrets_are_refused_and_debug_shows_no_byte() {
        assert!(Secret::new(vec![1; MIN_SECRET_LEN - 1]).is_none());
        let secret = Secret::new(b"sixteen bytes!!!".to_vec()).unwrap();
        assert_eq!(format!("{secret:?}"), "Secret(16 bytes)");
    }

    #[test]
    fn challenges_responses_and_refusals_round_trip() {
        for challenge in [Challenge::None, Challenge::HmacSha256([0xab; NONCE_LEN])] {
            let mut out = Vec::new();
            encode_challenge(&challenge, &mut out);
            assert_eq!(
                decode_challenge(&body(&out, FRAME_CHALLENGE)),
                Ok(challenge)
            );
        }
        let mut out = Vec::new();
        encode_response(&[0x5a; MAC_LEN], &mut out);
        assert_eq!(out.len(), 4 + MAC_LEN);
        assert_eq!(
            decode_response(&body(&out, FRAME_RESPONSE)),
            Ok([0x5a; MAC_LEN])
        );
        for refusal in [
            Refusal::WrongSecret,
            Refusal::SecretRequired,
            Refusal::SecretNotExpected,
            Refusal::Other(9),
        ] {
            let mut out = Vec::new();
            encode_refusal(refusal, &mut out);
            assert_eq!(decode_refusal(&body(&out, FRAME_REFUSAL)), Ok(refusal));
        }
    }

    #[test]
    fn the_frame_layouts_are_fixed() {
        let mut out = Vec::new();
        encode_challenge(&Challenge::None, &mut out);
        assert_eq!(out, [0x00, 0x06, 0x00, 0x01, 0x00]);
        out.clear();
        encode_challenge(&Challenge::HmacSha256([0x11; NONCE_LEN]), &mut out);
        assert_eq!(&out[..5], &[0x00, 0x06, 0x00, 0x21, 0x01]);
        out.clear();
        encode_refusal(Refusal::WrongSecret, &mut out);
        assert_eq!(out, [0x00, 0x08, 0x00, 0x01, 0x01]);
    }

    #[test]
    fn bad_bodies_are_typed_errors() {
        assert_eq!(
            decode_challenge(&[2]),
            Err(ProtoError::UnknownChallengeMethod { method: 2 })
        );
        assert_eq!(
            decode_challenge(&[1, 0, 0]),
            Err(ProtoError::Truncated {
                what: "v7 challenge",
                needed: 33,
                had: 3
            })
        );
        assert_eq!(
            decode_response(&[0; 31]),
            Err(ProtoError::Truncated {
                what: "v7 response",
                needed: 32,
                had: 31
            })
        );
    }
}
