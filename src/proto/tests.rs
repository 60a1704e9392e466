//! Cross-file tests: the recorded 1.x byte sequences, negotiation between every pairing of
//! our and 1.x's ends, and the stream decoders under arbitrary chunking, truncation and
//! garbage.

use std::net::SocketAddr;

use proptest::prelude::*;

use super::fixtures::{
    CLIENT_ADD, HELLO_V6, SYN_ACK, client, combined_syn_ack, target, tcp_packet,
};
use super::*;

/// Feeds `bytes` in one go and drains every message, stopping at the first error.
fn drain<M>(
    feed: &mut dyn FnMut(&[u8]),
    next: &mut dyn FnMut() -> Result<Option<M>, ProtoError>,
    bytes: &[u8],
) -> (Vec<M>, Option<ProtoError>) {
    feed(bytes);
    let mut messages = Vec::new();
    loop {
        match next() {
            Ok(Some(message)) => messages.push(message),
            Ok(None) => return (messages, None),
            Err(error) => return (messages, Some(error)),
        }
    }
}

fn decode_from_copy(decoder: &mut CopyStreamDecoder, bytes: &[u8]) -> Vec<CopyMessage> {
    decoder.feed(bytes);
    std::iter::from_fn(|| decoder.next_message().unwrap()).collect()
}

fn decode_from_intercept(
    decoder: &mut InterceptStreamDecoder,
    bytes: &[u8],
) -> Vec<InterceptMessage> {
    decoder.feed(bytes);
    std::iter::from_fn(|| decoder.next_message().unwrap()).collect()
}

fn ipv6_pair() -> (SocketAddr, SocketAddr) {
    (
        "[2001:db8::9:1]:52302".parse().unwrap(),
        "[2001:db8::3]:8080".parse().unwrap(),
    )
}

#[test]
fn the_recorded_v6_sequences_encode_byte_exact() {
    let mut out = Vec::new();
    encode_hello(Version::V6, &mut out);
    encode_registration(
        Version::V6,
        &Registration::add(client(), target()),
        &mut out,
    )
    .unwrap();
    assert_eq!(out, [HELLO_V6, CLIENT_ADD].concat());
    let mut batch = ReplyBatch::v6(V6Layout::Headers);
    batch.push(&SYN_ACK, 0).unwrap();
    out.clear();
    batch.flush_into(&mut out);
    assert_eq!(out, combined_syn_ack());
}

#[test]
fn the_recorded_v6_sequences_decode() {
    let mut from_copy = CopyStreamDecoder::default();
    let messages = decode_from_copy(&mut from_copy, &[HELLO_V6, CLIENT_ADD].concat());
    assert_eq!(
        messages,
        [
            CopyMessage::Hello {
                offered: 6,
                version: Version::V6
            },
            CopyMessage::Registration(Registration::add(client(), target())),
        ]
    );
    for offered in [Version::V6, Version::V7] {
        let mut from_intercept = InterceptStreamDecoder::new(offered);
        let messages = decode_from_intercept(&mut from_intercept, &combined_syn_ack());
        let [InterceptMessage::Reply(reply)] = &messages[..] else {
            panic!("expected one reply, got {messages:?}");
        };
        assert_eq!(reply.headers(), &SYN_ACK[..]);
        assert_eq!((reply.source(), reply.destination()), (target(), client()));
        assert_eq!(from_intercept.version(), Some(Version::V6));
        assert_eq!(from_intercept.buffered(), 0);
    }
}

#[test]
fn a_combined_frame_of_16_messages_decodes_to_16_replies() {
    let packets: Vec<Vec<u8>> = (0..16u8)
        .map(|i| {
            tcp_packet(
                target(),
                SocketAddr::from(([10, 77, 9, i], 40_000)),
                &[],
                &[],
            )
        })
        .collect();
    let mut batch = ReplyBatch::v6(V6Layout::Headers);
    for packet in &packets {
        batch.push(packet, 0).unwrap();
    }
    let mut frame = Vec::new();
    batch.flush_into(&mut frame);
    assert_eq!(&frame[..2], &[0x00, 0x10]);
    let mut decoder = InterceptStreamDecoder::new(Version::V6);
    let replies = decode_from_intercept(&mut decoder, &frame);
    assert_eq!(replies.len(), 16);
    for (reply, packet) in replies.iter().zip(&packets) {
        assert_eq!(
            reply,
            &InterceptMessage::Reply(ReplyHeaders::from_packet(packet, None, 0).unwrap())
        );
    }
}

#[test]
fn our_copy_and_our_intercept_settle_on_v7() {
    let (v6_client, v6_target) = ipv6_pair();
    // copy: hello offering 7, and a registration sent before any answer (still v6 records).
    let mut to_intercept = Vec::new();
    encode_hello(Version::V7, &mut to_intercept);
    encode_registration(
        Version::V6,
        &Registration::add(client(), target()),
        &mut to_intercept,
    )
    .unwrap();

    let mut intercept_side = CopyStreamDecoder::default();
    let messages = decode_from_copy(&mut intercept_side, &to_intercept);
    assert_eq!(
        messages[0],
        CopyMessage::Hello {
            offered: 7,
            version: Version::V7
        }
    );
    assert_eq!(
        messages[1],
        CopyMessage::Registration(Registration::add(client(), target()))
    );

    // intercept: the switch, then replies and a taken flow in v7.
    let mut to_copy = Vec::new();
    encode_switch(&mut to_copy);
    let mut batch = ReplyBatch::v7(64);
    batch.push(&SYN_ACK, 1_700_000_000_000_001).unwrap();
    batch.flush_into(&mut to_copy);
    let taken = crate::packet::Flow {
        client: client(),
        target: target(),
    };
    encode_flow_taken(&taken, &mut to_copy).unwrap();

    let mut copy_side = InterceptStreamDecoder::new(Version::V7);
    let messages = decode_from_intercept(&mut copy_side, &to_copy);
    assert_eq!(copy_side.version(), Some(Version::V7));
    assert_eq!(messages[0], InterceptMessage::Switch(Version::V7));
    let InterceptMessage::Reply(reply) = &messages[1] else {
        panic!("{messages:?}")
    };
    assert_eq!(reply.timestamp_us(), Some(1_700_000_000_000_001));
    assert_eq!(messages[2], InterceptMessage::FlowTaken(taken));

    // copy: its own switch, then IPv6 registrations in v7.
    let mut to_intercept = Vec::new();
    encode_switch(&mut to_intercept);
    encode_registration(
        Version::V7,
        &Registration::add(v6_client, v6_target),
        &mut to_intercept,
    )
    .unwrap();
    let messages = decode_from_copy(&mut intercept_side, &to_intercept);
    assert_eq!(
        messages,
        [CopyMessage::Registration(Registration::add(
            v6_client, v6_target
        ))]
    );
    assert_eq!(intercept_side.version(), Some(Version::V7));
}

#[test]
fn our_copy_and_a_v6_only_intercept_settle_on_v6() {
    let mut copy_side = InterceptStreamDecoder::new(Version::V7);
    assert_eq!(copy_side.version(), None);
    copy_side.feed(&combined_syn_ack()[..1]);
    assert_eq!(copy_side.next_message(), Ok(None));
    assert_eq!(copy_side.version(), None, "one byte does not decide");
    let messages = decode_from_intercept(&mut copy_side, &combined_syn_ack()[1..]);
    assert_eq!(copy_side.version(), Some(Version::V6));
    assert!(matches!(&messages[..], [InterceptMessage::Reply(_)]));
}

#[test]
fn a_1x_copy_and_our_intercept_settle_on_v6() {
    let mut intercept_side = CopyStreamDecoder::default();
    let messages = decode_from_copy(&mut intercept_side, &HELLO_V6);
    assert_eq!(
        messages,
        [CopyMessage::Hello {
            offered: 6,
            version: Version::V6
        }]
    );
    assert_eq!(intercept_side.version(), Some(Version::V6));
    // In v6 a switch marker is not special: 0xffff... is read as a record and refused.
    let mut marker = Vec::new();
    encode_switch(&mut marker);
    marker.extend_from_slice(&[0; 6]);
    intercept_side.feed(&marker);
    assert_eq!(
        intercept_side.next_message(),
        Err(ProtoError::UnknownRecordType { record_type: 7 })
    );
}

#[test]
fn an_intercept_limited_to_v6_answers_a_v7_hello_in_v6() {
    let mut hello = Vec::new();
    encode_hello(Version::V7, &mut hello);
    let mut intercept_side = CopyStreamDecoder::new(Version::V6);
    let messages = decode_from_copy(&mut intercept_side, &[hello, CLIENT_ADD.to_vec()].concat());
    assert_eq!(
        messages[0],
        CopyMessage::Hello {
            offered: 7,
            version: Version::V6
        }
    );
    assert_eq!(messages.len(), 2);
}

#[test]
fn stream_errors_are_typed_and_latched() {
    let mut decoder = InterceptStreamDecoder::new(Version::V6);
    decoder.feed(&[0x00, 0x00]);
    let zero = Err(ProtoError::BadCombinedCount { count: 0, max: 64 });
    assert_eq!(decoder.next_message(), zero);
    decoder.feed(&combined_syn_ack());
    assert_eq!(decoder.next_message(), zero, "an error ends the stream");

    let mut decoder = InterceptStreamDecoder::new(Version::V7);
    decoder.feed(&[0xff, 0xff, 0x54, 0x43, 0x50, 0x44, 0x00, 0x07]);
    assert_eq!(
        decoder.next_message(),
        Err(ProtoError::BadSwitchMagic { found: 0x5443_5044 })
    );

    let mut decoder = InterceptStreamDecoder::new(Version::V6);
    decoder.feed(&[0xff, 0xff]);
    assert_eq!(
        decoder.next_message(),
        Err(ProtoError::BadCombinedCount {
            count: 0xffff,
            max: 64
        })
    );
}

#[test]
fn unknown_v7_frames_are_skipped() {
    let mut stream = Vec::new();
    encode_switch(&mut stream);
    stream.extend_from_slice(&[0x7f, 0x00, 0x00, 0x03, 1, 2, 3]);
    // Type 3, reserved (an early draft's counters frame), is skipped too.
    stream.extend_from_slice(&[0x00, 0x03, 0x00, 0x02, 0, 0]);
    let mut decoder = InterceptStreamDecoder::new(Version::V7);
    let messages = decode_from_intercept(&mut decoder, &stream);
    assert_eq!(
        messages[1..],
        [
            InterceptMessage::Unknown {
                frame_type: 0x7f00,
                body_len: 3
            },
            InterceptMessage::Unknown {
                frame_type: 3,
                body_len: 2
            },
        ]
    );
}

/// A reply packet for the property tests: IPv4 or IPv6, random options and payload.
fn arbitrary_reply_packet(ipv4_only: bool) -> impl Strategy<Value = Vec<u8>> {
    let family = if ipv4_only {
        Just(false).boxed()
    } else {
        any::<bool>().boxed()
    };
    (
        family,
        any::<u16>(),
        proptest::collection::vec(any::<u8>(), 0..=40),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(ipv6, port, options, payload)| {
            let (source, destination) = if ipv6 {
                let (client, target) = ipv6_pair();
                (target, SocketAddr::new(client.ip(), port))
            } else {
                (target(), SocketAddr::new(client().ip(), port))
            };
            tcp_packet(source, destination, &options, &payload)
        })
}

fn arbitrary_registration() -> impl Strategy<Value = Registration> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(|(add, ipv6, a, b, p, q)| {
            let (client, target) = if ipv6 {
                (SocketAddr::from((a, p)), SocketAddr::from((b, q)))
            } else {
                let (a4, b4) = ([a[0], a[1], a[2], a[3]], [b[0], b[1], b[2], b[3]]);
                (SocketAddr::from((a4, p)), SocketAddr::from((b4, q)))
            };
            if add {
                Registration::add(client, target)
            } else {
                Registration::del(client, target)
            }
        })
}

/// What a v7 intercept sends: the switch, then replies, counters and unknown frames.
fn arbitrary_v7_intercept_stream() -> impl Strategy<Value = Vec<u8>> {
    let item = prop_oneof![
        (arbitrary_reply_packet(false), 1..u64::MAX, 0..300usize).prop_map(
            |(packet, timestamp, limit)| {
                let mut batch = ReplyBatch::v7(limit);
                batch.push(&packet, timestamp).unwrap();
                let mut out = Vec::new();
                batch.flush_into(&mut out);
                out
            }
        ),
        (any::<u16>(), any::<u16>()).prop_map(|(client_port, target_port)| {
            let flow = crate::packet::Flow {
                client: SocketAddr::from(([203, 0, 113, 5], client_port)),
                target: SocketAddr::from(([198, 51, 100, 30], target_port)),
            };
            let mut out = Vec::new();
            encode_flow_taken(&flow, &mut out).unwrap();
            out
        }),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(|body| {
            let mut out = vec![0x40, 0x00, 0x00, body.len() as u8];
            out.extend_from_slice(&body);
            out
        }),
    ];
    proptest::collection::vec(item, 0..8).prop_map(|items| {
        let mut stream = Vec::new();
        encode_switch(&mut stream);
        stream.extend(items.concat());
        stream
    })
}

/// What a v6 intercept sends: combined frames of 1..=16 IPv4 replies.
fn arbitrary_v6_intercept_stream() -> impl Strategy<Value = Vec<u8>> {
    let frame =
        proptest::collection::vec(arbitrary_reply_packet(true), 1..=16).prop_map(|packets| {
            let mut batch = ReplyBatch::v6(V6Layout::Headers);
            for packet in &packets {
                batch.push(packet, 0).unwrap();
            }
            let mut out = Vec::new();
            batch.flush_into(&mut out);
            out
        });
    proptest::collection::vec(frame, 1..4).prop_map(|frames| frames.concat())
}

/// What our copy sends to our intercept: hello 7, v6 records, switch, v7 registrations.
fn arbitrary_copy_stream() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(arbitrary_registration(), 0..6),
        proptest::collection::vec(arbitrary_registration(), 0..6),
    )
        .prop_map(|(before, after)| {
            let mut stream = Vec::new();
            encode_hello(Version::V7, &mut stream);
            for registration in &before {
                // Only what version 6 can carry (IPv4, no client in 255.255.0.0/16).
                let _ = encode_registration(Version::V6, registration, &mut stream);
            }
            encode_switch(&mut stream);
            for registration in &after {
                encode_registration(Version::V7, registration, &mut stream).unwrap();
            }
            stream
        })
}

/// Feeds `stream` in chunks of the given sizes (cycled), draining after each.
fn chunked<M>(
    feed: &mut dyn FnMut(&[u8]),
    next: &mut dyn FnMut() -> Result<Option<M>, ProtoError>,
    stream: &[u8],
    sizes: &[usize],
) -> (Vec<M>, Option<ProtoError>) {
    let mut messages = Vec::new();
    let mut rest = stream;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at((*size).min(rest.len()));
        rest = tail;
        let (more, error) = drain(feed, next, chunk);
        messages.extend(more);
        if error.is_some() {
            return (messages, error);
        }
    }
    (messages, None)
}

macro_rules! intercept_decoder {
    ($decoder:ident) => {
        (
            &mut |bytes: &[u8]| $decoder.borrow_mut().feed(bytes),
            &mut || $decoder.borrow_mut().next_message(),
        )
    };
}

fn check_intercept_stream(
    stream: &[u8],
    offered: Version,
    sizes: &[usize],
) -> Result<(), TestCaseError> {
    let whole = std::cell::RefCell::new(InterceptStreamDecoder::new(offered));
    let (feed, next) = intercept_decoder!(whole);
    let (expected, error) = drain(feed, next, stream);
    prop_assert_eq!(error, None);
    prop_assert!(!expected.is_empty() || stream.is_empty());

    let one_by_one = std::cell::RefCell::new(InterceptStreamDecoder::new(offered));
    let (feed, next) = intercept_decoder!(one_by_one);
    prop_assert_eq!(chunked(feed, next, stream, &[1]), (expected.clone(), None));

    let random = std::cell::RefCell::new(InterceptStreamDecoder::new(offered));
    let (feed, next) = intercept_decoder!(random);
    prop_assert_eq!(chunked(feed, next, stream, sizes), (expected.clone(), None));

    for cut in 0..stream.len() {
        let truncated = std::cell::RefCell::new(InterceptStreamDecoder::new(offered));
        let (feed, next) = intercept_decoder!(truncated);
        let (messages, error) = drain(feed, next, &stream[..cut]);
        prop_assert_eq!(
            error,
            None,
            "a truncated stream needs more, it is not wrong"
        );
        prop_assert!(messages.len() < expected.len());
        prop_assert_eq!(&messages[..], &expected[..messages.len()]);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn v7_intercept_streams_decode_alike_in_any_chunking(
        stream in arbitrary_v7_intercept_stream(),
        sizes in proptest::collection::vec(1..64usize, 1..8),
    ) {
        check_intercept_stream(&stream, Version::V7, &sizes)?;
    }

    #[test]
    fn v6_intercept_streams_decode_alike_in_any_chunking(
        stream in arbitrary_v6_intercept_stream(),
        sizes in proptest::collection::vec(1..200usize, 1..8),
    ) {
        check_intercept_stream(&stream, Version::V7, &sizes)?;
        check_intercept_stream(&stream, Version::V6, &sizes)?;
    }

    #[test]
    fn copy_streams_decode_alike_in_any_chunking(
        stream in arbitrary_copy_stream(),
        sizes in proptest::collection::vec(1..40usize, 1..8),
    ) {
        let whole = std::cell::RefCell::new(CopyStreamDecoder::default());
        let (feed, next) = intercept_decoder!(whole);
        let (expected, error) = drain(feed, next, &stream);
        prop_assert_eq!(error, None);
        for sizes in [&[1][..], &sizes[..]] {
            let chunks = std::cell::RefCell::new(CopyStreamDecoder::default());
            let (feed, next) = intercept_decoder!(chunks);
            prop_assert_eq!(chunked(feed, next, &stream, sizes), (expected.clone(), None));
        }
        for cut in 0..stream.len() {
            let truncated = std::cell::RefCell::new(CopyStreamDecoder::default());
            let (feed, next) = intercept_decoder!(truncated);
            let (messages, error) = drain(feed, next, &stream[..cut]);
            prop_assert_eq!(error, None);
            prop_assert_eq!(&messages[..], &expected[..messages.len()]);
        }
    }

    #[test]
    fn v7_replies_round_trip_exactly(
        packet in arbitrary_reply_packet(false),
        timestamp in 1..u64::MAX,
        limit in 0..300usize,
    ) {
        let mut batch = ReplyBatch::v7(limit);
        batch.push(&packet, timestamp).unwrap();
        let mut stream = Vec::new();
        encode_switch(&mut stream);
        batch.flush_into(&mut stream);
        let mut decoder = InterceptStreamDecoder::new(Version::V7);
        let messages = decode_from_intercept(&mut decoder, &stream);
        let expected = ReplyHeaders::from_packet(&packet, Some(timestamp), limit).unwrap();
        prop_assert_eq!(&messages[1], &InterceptMessage::Reply(expected));
    }

    #[test]
    fn registrations_round_trip(registration in arbitrary_registration()) {
        let mut stream = Vec::new();
        encode_hello(Version::V7, &mut stream);
        encode_switch(&mut stream);
        encode_registration(Version::V7, &registration, &mut stream).unwrap();
        let mut decoder = CopyStreamDecoder::default();
        let messages = decode_from_copy(&mut decoder, &stream);
        prop_assert_eq!(&messages[1], &CopyMessage::Registration(registration));
    }

    #[test]
    fn garbage_never_panics_and_errors_stick(
        prefix in 0..3usize,
        garbage in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut hello_v7 = Vec::new();
        encode_hello(Version::V7, &mut hello_v7);
        let mut switch = Vec::new();
        encode_switch(&mut switch);
        let copy_prefixes = [Vec::new(), hello_v7.clone(), [hello_v7, switch.clone()].concat()];
        let mut from_copy = CopyStreamDecoder::default();
        from_copy.feed(&copy_prefixes[prefix]);
        from_copy.feed(&garbage);
        let copy_result = std::iter::from_fn(|| from_copy.next_message().transpose()).find_map(Result::err);
        if let Some(error) = copy_result {
            prop_assert_eq!(from_copy.next_message(), Err(error));
        }

        let intercept_prefixes = [Vec::new(), switch.clone(), Vec::new()];
        let layouts = [V6Layout::Headers, V6Layout::Headers, V6Layout::HeadersAndPayload];
        let offered = [Version::V7, Version::V7, Version::V6];
        let mut from_intercept = InterceptStreamDecoder::new(offered[prefix]).with_v6_layout(layouts[prefix]);
        from_intercept.feed(&intercept_prefixes[prefix]);
        from_intercept.feed(&garbage);
        let intercept_result =
            std::iter::from_fn(|| from_intercept.next_message().transpose()).find_map(Result::err);
        if let Some(error) = intercept_result {
            prop_assert_eq!(from_intercept.next_message(), Err(error));
        }
    }
}

#[test]
fn the_negotiation_bytes_are_fixed() {
    let mut out = Vec::new();
    encode_hello(Version::V7, &mut out);
    assert_eq!(out, [0, 0, 0, 0, 0, 0, 0x00, 0x07, 0, 0, 0, 0, 0, 0]);
    out.clear();
    encode_switch(&mut out);
    assert_eq!(out, [0xff, 0xff, 0x54, 0x43, 0x50, 0x43, 0x00, 0x07]);
    assert_eq!(DEFAULT_PORT, 36524);
}
