//! A frame as copy captures it, on every link type (the settings byte picks it): parsed
//! down to the TCP payload as the capture path does, and written back as the replay path
//! writes a frame, which must parse to the same segment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcpcopy::packet::{emit_frame, parse_frame};
use tcpcopy_fuzz::{link_type, settings};

fuzz_target!(|data: &[u8]| {
    let Some((settings, frame)) = settings(data) else {
        return;
    };
    let Ok(parsed) = parse_frame(link_type(settings), frame) else {
        return;
    };
    assert_eq!(parsed.payload.len(), parsed.segment.payload_len);
    assert!(parsed.ip.len() <= frame.len());
    let mut written = Vec::new();
    if emit_frame(&parsed.link, &parsed.segment, parsed.payload, &mut written).is_err() {
        assert!(written.is_empty(), "a failed emit left bytes behind");
        return;
    }
    let again = parse_frame(link_type(settings), &written).expect("an emitted frame parses");
    assert_eq!(again.link, parsed.link);
    assert_eq!(again.segment, parsed.segment);
    assert_eq!(again.payload, parsed.payload);
});
