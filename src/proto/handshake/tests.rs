//! The two handshakes driven through the real stream decoders, byte for byte, as copy and
//! intercept run them: every pairing of secrets, a TCPCopy 1.x peer on either side, garbage,
//! an oversized frame and the timeouts.

use super::*;
use crate::proto::fixtures::{client, target};
use crate::proto::{
    CopyStreamDecoder, InterceptStreamDecoder, MAX_COPY_FRAME_BODY, ProtoError, Registration,
    encode_hello, encode_registration,
};

const TIMEOUT: Duration = Duration::from_secs(10);
const NONCE: [u8; NONCE_LEN] = [0x42; NONCE_LEN];

fn secret(text: &str) -> Option<Secret> {
    Some(Secret::new(text.as_bytes().to_vec()).unwrap())
}

/// Intercept's end: its decoder and handshake, and what it wrote back.
struct InterceptEnd {
    decoder: CopyStreamDecoder,
    handshake: InterceptHandshake,
    admissions: Vec<Admission>,
}

impl InterceptEnd {
    fn new(secret: Option<Secret>, now: Instant) -> Self {
        InterceptEnd {
            decoder: CopyStreamDecoder::default(),
            handshake: InterceptHandshake::new(secret, NONCE, now, TIMEOUT),
            admissions: Vec::new(),
        }
    }

    /// Takes `bytes` from copy; returns what intercept writes back, or the decoder's error.
    fn receive(&mut self, bytes: &[u8]) -> Result<Vec<u8>, ProtoError> {
        self.decoder.feed(bytes);
        let mut out = Vec::new();
        while let Some(message) = self.decoder.next_message()? {
            let admission = self.handshake.on_message(message, &mut out);
            self.admissions.push(admission);
        }
        Ok(out)
    }

    fn refusal(&self) -> Option<&HandshakeError> {
        self.admissions
            .iter()
            .find_map(|admission| match admission {
                Admission::Refused(error) => Some(error),
                _ => None,
            })
    }

    fn delivered(&self) -> Vec<&CopyMessage> {
        self.admissions
            .iter()
            .filter_map(|admission| match admission {
                Admission::Deliver(message) => Some(message),
                _ => None,
            })
            .collect()
    }
}

/// Copy's end, as `replay/link.rs` runs it: hello at connect, registrations in whatever
/// version the handshake allows, the instance and registrations again once it opens.
struct CopyEnd {
    decoder: InterceptStreamDecoder,
    handshake: CopyHandshake,
    steps: Vec<CopyStep>,
}

impl CopyEnd {
    fn new(secret: Option<Secret>, now: Instant) -> Self {
        CopyEnd {
            decoder: InterceptStreamDecoder::new(Version::V7),
            handshake: CopyHandshake::new(secret, now, TIMEOUT),
            steps: Vec::new(),
        }
    }

    /// The hello, and the registration of one live flow if the handshake lets it go now.
    fn connect(&self) -> Vec<u8> {
        let mut out = Vec::new();
        encode_hello(Version::V7, &mut out);
        self.register(&mut out);
        out
    }

    fn register(&self, out: &mut Vec<u8>) {
        if let Some(version) = self.handshake.registrations() {
            let registration = Registration::add(client(), target());
            encode_registration(version, &registration, out).unwrap();
        }
    }

    fn receive(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.decoder.feed(bytes);
        let mut out = Vec::new();
        while let Some(message) = self.decoder.next_message().unwrap() {
            let step = self.handshake.on_message(message, &mut out);
            if let CopyStep::Opened { held_back } = step {
                crate::proto::encode_instance(1, &mut out);
                if held_back {
                    self.register(&mut out);
                }
            }
            self.steps.push(step);
        }
        out
    }

    fn failure(&self) -> Option<&HandshakeError> {
        self.steps.iter().find_map(|step| match step {
            CopyStep::Failed(error) => Some(error),
            _ => None,
        })
    }
}

/// Runs the exchange to its end: copy connects, then each side answers what it read.
fn exchange(
    copy_secret: Option<Secret>,
    intercept_secret: Option<Secret>,
) -> (CopyEnd, InterceptEnd) {
    let now = Instant::now();
    let mut copy = CopyEnd::new(copy_secret, now);
    let mut intercept = InterceptEnd::new(intercept_secret, now);
    let mut to_intercept = copy.connect();
    for _ in 0..4 {
        let to_copy = intercept.receive(&to_intercept).unwrap();
        to_intercept = copy.receive(&to_copy);
    }
    (copy, intercept)
}

fn registered(intercept: &InterceptEnd) -> usize {
    intercept
        .delivered()
        .iter()
        .filter(|message| matches!(message, CopyMessage::Registration(_)))
        .count()
}

#[test]
fn the_same_secret_opens_both_ends_and_only_then_do_registrations_count() {
    let (copy, intercept) = exchange(
        secret("sixteen bytes or more"),
        secret("sixteen bytes or more"),
    );
    assert!(intercept.handshake.is_open());
    assert!(intercept.admissions.contains(&Admission::Opened {
        offered: 7,
        version: Version::V7,
        authenticated: true
    }));
    assert_eq!(copy.handshake.registrations(), Some(Version::V7));
    assert_eq!(copy.failure(), None);
    assert_eq!(
        registered(&intercept),
        1,
        "the flow, registered once, after the proof"
    );
    assert!(intercept.delivered().contains(&&CopyMessage::Instance(1)));
}

#[test]
fn a_wrong_secret_is_refused_and_registers_nothing() {
    let (copy, intercept) = exchange(
        secret("a stranger's guess!!"),
        secret("sixteen bytes or more"),
    );
    assert_eq!(intercept.refusal(), Some(&HandshakeError::WrongSecret));
    assert_eq!(
        copy.failure(),
        Some(&HandshakeError::Refused(Refusal::WrongSecret)),
        "copy is told why"
    );
    assert_eq!(registered(&intercept), 0);
    assert!(!intercept.handshake.is_open());
}

#[test]
fn a_copy_without_the_secret_is_refused_and_its_early_records_never_count() {
    let (copy, intercept) = exchange(None, secret("sixteen bytes or more"));
    assert_eq!(copy.failure(), Some(&HandshakeError::InterceptWantsSecret));
    // Copy switched (and sent its instance) before it read the challenge.
    assert_eq!(intercept.refusal(), Some(&HandshakeError::NoResponse));
    assert_eq!(
        registered(&intercept),
        0,
        "the v6 record sent before the challenge"
    );
}

#[test]
fn a_copy_with_a_secret_refuses_an_intercept_without_one() {
    let (copy, intercept) = exchange(secret("sixteen bytes or more"), None);
    assert_eq!(copy.failure(), Some(&HandshakeError::InterceptHasNoSecret));
    assert_eq!(
        intercept.refusal(),
        Some(&HandshakeError::Refused(Refusal::SecretRequired))
    );
    assert_eq!(registered(&intercept), 0, "copy held its flows back");
}

#[test]
fn without_secrets_version_7_opens_at_the_hello_as_before() {
    let (copy, intercept) = exchange(None, None);
    assert_eq!(copy.failure(), None);
    assert_eq!(intercept.refusal(), None);
    assert_eq!(
        intercept.admissions[0],
        Admission::Opened {
            offered: 7,
            version: Version::V7,
            authenticated: false
        }
    );
    assert_eq!(
        registered(&intercept),
        1,
        "the v6 record sent with the hello"
    );
}

#[test]
fn a_version_6_copy_is_refused_when_intercept_has_a_secret_and_taken_without() {
    let mut hello_and_add = Vec::new();
    encode_hello(Version::V6, &mut hello_and_add);
    let registration = Registration::add(client(), target());
    encode_registration(Version::V6, &registration, &mut hello_and_add).unwrap();

    let mut guarded = InterceptEnd::new(secret("sixteen bytes or more"), Instant::now());
    let answer = guarded.receive(&hello_and_add).unwrap();
    assert!(
        answer.is_empty(),
        "a 1.x copy reads nothing from its intercept"
    );
    assert_eq!(
        guarded.refusal(),
        Some(&HandshakeError::CopyVersion6 { offered: 6 })
    );
    assert_eq!(registered(&guarded), 0);

    let mut open = InterceptEnd::new(None, Instant::now());
    assert!(open.receive(&hello_and_add).unwrap().is_empty());
    assert_eq!(registered(&open), 1);
}

#[test]
fn an_older_copy_that_skips_the_challenge_is_refused() {
    let mut intercept = InterceptEnd::new(secret("sixteen bytes or more"), Instant::now());
    let mut stream = Vec::new();
    encode_hello(Version::V7, &mut stream);
    intercept.receive(&stream).unwrap();
    stream.clear();
    encode_switch(&mut stream);
    crate::proto::encode_instance(5, &mut stream);
    let answer = intercept.receive(&stream).unwrap();
    assert_eq!(intercept.refusal(), Some(&HandshakeError::NoResponse));
    assert_eq!(
        answer,
        [0x00, 0x08, 0x00, 0x01, 0x02],
        "a refusal: secret required"
    );
}

#[test]
fn garbage_instead_of_a_hello_is_a_decoder_error() {
    let mut intercept = InterceptEnd::new(None, Instant::now());
    assert_eq!(
        intercept.receive(b"GET / HTTP/1.1\r\n"),
        Err(ProtoError::BadHello {
            record_type: u16::from_be_bytes(*b"HT")
        })
    );
    assert!(
        intercept.admissions.is_empty(),
        "nothing reached the handshake"
    );
}

#[test]
fn an_oversized_frame_is_an_error_before_its_body_arrives() {
    let mut intercept = InterceptEnd::new(None, Instant::now());
    let mut stream = Vec::new();
    encode_hello(Version::V7, &mut stream);
    encode_switch(&mut stream);
    let too_long = u16::try_from(MAX_COPY_FRAME_BODY + 1).unwrap();
    stream.extend_from_slice(&[0x00, 0x63]);
    stream.extend_from_slice(&too_long.to_be_bytes());
    assert_eq!(
        intercept.receive(&stream),
        Err(ProtoError::FrameTooLarge {
            len: MAX_COPY_FRAME_BODY + 1,
            max: MAX_COPY_FRAME_BODY
        })
    );
}

#[test]
fn a_connection_not_open_in_time_is_timed_out_once() {
    let now = Instant::now();
    let mut silent = InterceptEnd::new(None, now);
    assert_eq!(silent.handshake.on_timeout(now + TIMEOUT / 2), None);
    assert_eq!(
        silent.handshake.on_timeout(now + TIMEOUT),
        Some(HandshakeError::NoHello { after: TIMEOUT })
    );
    assert_eq!(silent.handshake.on_timeout(now + TIMEOUT * 2), None, "once");

    let mut unanswered = InterceptEnd::new(secret("sixteen bytes or more"), now);
    let mut hello = Vec::new();
    encode_hello(Version::V7, &mut hello);
    unanswered.receive(&hello).unwrap();
    assert_eq!(
        unanswered.handshake.on_timeout(now + TIMEOUT),
        Some(HandshakeError::ChallengeUnanswered { after: TIMEOUT })
    );

    let (_, mut open) = exchange(None, None);
    assert_eq!(open.handshake.on_timeout(now + TIMEOUT * 2), None);
}

#[test]
fn copy_with_a_secret_gives_up_on_an_intercept_that_never_challenges() {
    let now = Instant::now();
    let mut facing_1x = CopyEnd::new(secret("sixteen bytes or more"), now);
    assert_eq!(
        facing_1x.handshake.registrations(),
        None,
        "nothing goes out before"
    );
    assert_eq!(facing_1x.handshake.on_timeout(now + TIMEOUT / 2), None);
    assert_eq!(
        facing_1x.handshake.on_timeout(now + TIMEOUT),
        Some(HandshakeError::InterceptVersion6)
    );

    let mut facing_older = CopyEnd::new(secret("sixteen bytes or more"), now);
    let mut switch = Vec::new();
    encode_switch(&mut switch);
    assert_eq!(facing_older.receive(&switch), switch, "copy switches too");
    assert_eq!(
        facing_older.handshake.on_timeout(now + TIMEOUT),
        Some(HandshakeError::NoChallenge)
    );

    let mut without_secret = CopyEnd::new(None, now);
    assert_eq!(without_secret.handshake.on_timeout(now + TIMEOUT), None);
}
