//! A reply as intercept captures it (an IP packet from NFQUEUE or pcap, payload possibly
//! cut short): turned into reply headers, batched in each version and layout as intercept
//! sends them (the settings byte picks one), and decoded as copy decodes them, which must
//! give back the same reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcpcopy::packet::split_ip_headers;
use tcpcopy::proto::{
    InterceptMessage, InterceptStreamDecoder, ReplyBatch, ReplyHeaders, V6Layout, Version,
    encode_switch,
};
use tcpcopy_fuzz::{decode_every_way, settings};

/// A capture time that survives version 7 (which sends a missing one as 0).
const TIMESTAMP_US: u64 = 1_764_651_443_437_347;

fuzz_target!(|data: &[u8]| {
    let Some((settings, packet)) = settings(data) else {
        return;
    };
    let prefix_limit = usize::from(settings);
    let Ok(reply) = ReplyHeaders::from_packet(packet, Some(TIMESTAMP_US), prefix_limit) else {
        assert!(
            split_ip_headers(packet).is_err(),
            "split but not made a reply"
        );
        return;
    };
    let split = split_ip_headers(packet).expect("a reply's packet splits");
    assert_eq!(
        (reply.source(), reply.destination()),
        (split.src, split.dst)
    );
    assert_eq!(reply.payload_len(), split.payload_len);

    let (mut batch, layout) = match settings % 3 {
        0 => (ReplyBatch::v6(V6Layout::Headers), V6Layout::Headers),
        1 => (
            ReplyBatch::v6(V6Layout::HeadersAndPayload),
            V6Layout::HeadersAndPayload,
        ),
        _ => (ReplyBatch::v7(prefix_limit), V6Layout::default()),
    };
    let offered = batch.version();
    if batch.push(packet, TIMESTAMP_US).is_err() {
        assert_eq!(offered, Version::V6, "version 7 refused a reply");
        return;
    }
    let mut stream = Vec::new();
    if offered == Version::V7 {
        encode_switch(&mut stream);
    }
    batch.flush_into(&mut stream);
    let new_decoder = || InterceptStreamDecoder::new(offered).with_v6_layout(layout);
    let decoded = decode_every_way(new_decoder, settings, &stream);
    assert_eq!(
        decoded.error, None,
        "copy cannot decode what intercept sent"
    );
    let replies: Vec<&ReplyHeaders> = decoded
        .messages
        .iter()
        .filter_map(|message| match message {
            InterceptMessage::Reply(reply) => Some(reply),
            _ => None,
        })
        .collect();
    let [sent] = replies[..] else {
        panic!("one reply sent, {} decoded", replies.len());
    };
    assert_eq!((sent.source(), sent.destination()), (split.src, split.dst));
    assert_eq!(sent.payload_len(), split.payload_len);
    if offered == Version::V7 {
        assert_eq!(sent, &reply, "version 7 changed the reply");
    }
});
