//! The bytes a copy sends, as intercept decodes them (the settings byte picks the highest
//! version intercept agrees to): the hello, version-6 records, the switch marker and
//! version-7 frames. The stream must decode the same however it is cut, and every
//! registration decoded must come back the same through the version-7 encoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcpcopy::proto::{
    CopyMessage, CopyStreamDecoder, Version, encode_hello, encode_registration, encode_switch,
};
use tcpcopy_fuzz::{decode_every_way, decode_in_pieces, settings};

fuzz_target!(|data: &[u8]| {
    let Some((settings, stream)) = settings(data) else {
        return;
    };
    let highest = if settings & 1 == 0 {
        Version::V6
    } else {
        Version::V7
    };
    let decoded = decode_every_way(|| CopyStreamDecoder::new(highest), settings, stream);
    for message in &decoded.messages {
        let CopyMessage::Registration(registration) = message else {
            continue;
        };
        let mut again = Vec::new();
        encode_hello(Version::V7, &mut again);
        encode_switch(&mut again);
        encode_registration(Version::V7, registration, &mut again)
            .expect("a decoded registration encodes");
        let redecoded = decode_in_pieces(CopyStreamDecoder::new(Version::V7), &again, 0);
        assert_eq!(redecoded.error, None);
        assert_eq!(redecoded.messages.last(), Some(message));
    }
});
