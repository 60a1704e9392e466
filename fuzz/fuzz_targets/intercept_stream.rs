//! The bytes an intercept sends, as copy decodes them (the settings byte picks the version
//! copy offered and the version-6 layout it expects): the switch marker, version-6 combined
//! frames and version-7 frames. The stream must decode the same however it is cut; each
//! reply's headers go on to the packet parser as copy's replay core hands them on, and
//! each taken flow must come back the same through the encoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcpcopy::packet::parse_ip_headers;
use tcpcopy::proto::{
    InterceptMessage, InterceptStreamDecoder, V6Layout, Version, encode_flow_taken, encode_switch,
};
use tcpcopy_fuzz::{decode_every_way, decode_in_pieces, settings};

fuzz_target!(|data: &[u8]| {
    let Some((settings, stream)) = settings(data) else {
        return;
    };
    let offered = if settings & 1 == 0 {
        Version::V6
    } else {
        Version::V7
    };
    let layout = if settings & 2 == 0 {
        V6Layout::Headers
    } else {
        V6Layout::HeadersAndPayload
    };
    let new_decoder = || InterceptStreamDecoder::new(offered).with_v6_layout(layout);
    let decoded = decode_every_way(new_decoder, settings, stream);
    for message in &decoded.messages {
        match message {
            InterceptMessage::Reply(reply) => {
                assert!(reply.payload_prefix().len() <= reply.payload_len());
                if let Ok(segment) = parse_ip_headers(reply.headers()) {
                    assert_eq!(
                        (segment.src, segment.dst),
                        (reply.source(), reply.destination())
                    );
                }
            }
            InterceptMessage::FlowTaken(flow) => {
                let mut again = Vec::new();
                encode_switch(&mut again);
                encode_flow_taken(flow, &mut again).expect("a decoded flow encodes");
                let redecoded =
                    decode_in_pieces(InterceptStreamDecoder::new(Version::V7), &again, 0);
                assert_eq!(redecoded.error, None);
                assert_eq!(redecoded.messages.last(), Some(message));
            }
            InterceptMessage::Switch(_)
            | InterceptMessage::Challenge(_)
            | InterceptMessage::Refusal(_)
            | InterceptMessage::Unknown { .. } => {}
        }
    }
});
