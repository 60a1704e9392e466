//! Keep-alive catch-up: a replay behind the client releases each request as soon as the
//! target's answer to the previous one is as long as the online server's, and falls back to a
//! quiet time of the live RTT when the sizes differ.

use std::collections::HashSet;

use super::*;

/// `requests` keep-alive requests sent back to back (the capture is ahead of the replay),
/// each answered online with `online` bytes; the client acknowledges each answer only with
/// its next request (no pure ACK in between).
fn queued_requests(requests: usize, online: u32) -> ClientScript {
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack();
    for i in 0..requests {
        client.send(format!("GET /{i}\n").as_bytes());
        client.server_seq += online;
    }
    client.fin();
    client
}

/// When the engine first sent each request (every request fits one segment), in order.
fn request_releases(world: &World) -> Vec<Instant> {
    let mut seen = HashSet::new();
    world
        .sent
        .iter()
        .filter(|(_, seg, payload)| !payload.is_empty() && seen.insert(seg.seq))
        .map(|(at, _, _)| *at)
        .collect()
}

/// When the engine received the last byte of each answer, the target answering every request
/// with `len` bytes; the target's retransmissions are not counted twice.
fn answer_ends(world: &World, len: u32) -> Vec<Instant> {
    let mut received_end: Option<SeqNum> = None;
    let mut received = 0u64;
    let mut ends = Vec::new();
    for (at, seg) in &world.replies {
        if seg.payload_len == 0 {
            continue;
        }
        let end = seg.seq + seg.payload_len;
        let new = match received_end {
            None => seg.payload_len as u64,
            Some(before) => end.distance_from(before).max(0) as u64,
        };
        received_end = Some(received_end.map_or(end, |before| before.max(end)));
        let answers_before = received / u64::from(len);
        received += new;
        if received / u64::from(len) > answers_before {
            ends.push(*at);
        }
    }
    ends
}

/// Every request reached the target only after the target had sent its whole answer to the
/// previous one (the sim target writes each answer at once).
fn assert_each_request_follows_the_previous_answer(world: &World) {
    let requests = world
        .target
        .times_of(|log| matches!(log, TargetLog::Request(_)));
    let answers = world.target.times_of(|log| *log == TargetLog::ResponseSent);
    for (k, (next, answered)) in requests[1..].iter().zip(&answers).enumerate() {
        assert!(
            next > answered,
            "request {} overtook answer {}",
            k + 2,
            k + 1
        );
    }
}

#[test]
fn equal_answers_release_each_request_when_the_last_byte_arrives() {
    // One segment per answer, and three (the last one short).
    for len in [300, 3000] {
        let client = queued_requests(6, len);
        let target = TargetConfig {
            response_len: len,
            ..TargetConfig::default()
        };
        let mut world = world(SessionConfig::default(), target);
        world.play(&client);
        run_to_end(&mut world);

        let releases = request_releases(&world);
        let ends = answer_ends(&world, len);
        assert_eq!(releases.len(), 6);
        // No quiet time: the next request leaves the instant the answer is complete.
        assert_eq!(&releases[1..], &ends[..5], "answers of {len} bytes");
        assert_each_request_follows_the_previous_answer(&world);
        assert_eq!(world.count(Event::ResponseTimeout), 0);
        assert_stream_delivered(&world, &client);
        assert_eq!(world.target.requests, 6);
    }
}

#[test]
fn pure_acks_duplicates_and_capture_reordering_do_not_change_the_count() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack();
    for i in 0..4 {
        client.send(format!("GET /{i}\n").as_bytes());
        // The answer acknowledged in two pure ACKs, the second one repeated.
        client.receive(100).receive(200);
        let last = client.items.len() - 1;
        client.repeat(last);
    }
    client.fin();
    // The capture saw the third request before two of the pure ACKs that preceded it.
    let third = client
        .items
        .iter()
        .position(|(_, _, payload)| payload.as_slice() == b"GET /2\n")
        .expect("the third request");
    let at = client.items[third - 3].0;
    client.items[third].0 = at;
    client.items.sort_by_key(|(at, _, _)| *at);
    let mut world = world(SessionConfig::default(), TargetConfig::default());
    world.play(&client);
    run_to_end(&mut world);

    let releases = request_releases(&world);
    assert_eq!(&releases[1..], &answer_ends(&world, 300)[..3]);
    assert_each_request_follows_the_previous_answer(&world);
    assert_stream_delivered(&world, &client);
}

#[test]
fn shorter_or_longer_answers_end_by_quiet_time() {
    let config = SessionConfig::default();
    // Online 300 bytes; the target answers 200 or 400, in one segment.
    for len in [200, 400] {
        let client = queued_requests(4, 300);
        let target = TargetConfig {
            response_len: len,
            ..TargetConfig::default()
        };
        let mut world = world(config.clone(), target);
        world.play(&client);
        run_to_end(&mut world);

        let releases = request_releases(&world);
        let ends = answer_ends(&world, len);
        for (release, end) in releases[1..].iter().zip(&ends) {
            // Half an RTT after a short segment, at least the floor (the LAN RTT is below).
            assert_eq!(
                *release - *end,
                config.min_response_quiet,
                "answers of {len}"
            );
        }
        assert_each_request_follows_the_previous_answer(&world);
        assert_eq!(world.count(Event::ResponseTimeout), 0);
        assert_stream_delivered(&world, &client);
    }
}

/// Online each answer was one full segment; the target's is two. The next request goes when
/// the first segment arrives (the count matched), and the second one, sent before the target
/// had that request, is the old answer's surplus: it must not complete the next answer, or
/// the request after would overtake it.
#[test]
fn the_surplus_of_a_longer_answer_is_not_the_next_answer() {
    let client = queued_requests(5, 1460);
    let target = TargetConfig {
        response_len: 2920,
        ..TargetConfig::default()
    };
    let mut world = world(SessionConfig::default(), target);
    world.play(&client);
    run_to_end(&mut world);

    let releases = request_releases(&world);
    let first_segments: Vec<Instant> = world
        .replies
        .iter()
        .filter(|(_, seg, ..)| seg.payload_len > 0)
        .step_by(2)
        .map(|(at, _)| *at)
        .collect();
    assert_eq!(&releases[1..], &first_segments[..4]);
    assert_each_request_follows_the_previous_answer(&world);
    assert_eq!(world.count(Event::ResponseTimeout), 0);
    assert_stream_delivered(&world, &client);
}

#[test]
fn loss_and_reordering_toward_the_target_keep_the_count_exact() {
    let client = queued_requests(8, 3000);
    let target = TargetConfig {
        response_len: 3000,
        ..TargetConfig::default()
    };
    for seed in 1..=6 {
        let net = NetConfig {
            loss_to_target: 15,
            reorder_to_target: 10,
            seed,
            ..NetConfig::default()
        };
        let mut world = World::new(SessionConfig::default(), target.clone(), net);
        world.play(&client);
        world.run_for(Duration::from_secs(60));

        let releases = request_releases(&world);
        assert_eq!(
            &releases[1..],
            &answer_ends(&world, 3000)[..7],
            "seed {seed}"
        );
        assert_each_request_follows_the_previous_answer(&world);
        assert_eq!(world.count(Event::ResponseTimeout), 0, "seed {seed}");
        assert_stream_delivered(&world, &client);
        assert_eq!(world.target.requests, 8, "seed {seed}");
    }
}

/// A session opened while the path was slow (10 ms each way) keeps its quiet time only as
/// long as the path stays slow: once it is fast again, the live RTT brings the quiet time
/// down to its floor, where the handshake's RTT would have kept it at 10 ms.
#[test]
fn the_quiet_time_follows_the_live_rtt() {
    let config = SessionConfig::default();
    let client = queued_requests(40, 300);
    let target = TargetConfig {
        response_len: 200,
        ..TargetConfig::default()
    };
    let net = NetConfig {
        latency: ms(10),
        ..NetConfig::default()
    };
    let mut world = World::new(config.clone(), target, net);
    world.play(&client);
    world.run_for(ms(100));
    world.net_config.latency = Duration::from_micros(200);
    run_to_end(&mut world);

    let releases = request_releases(&world);
    let gaps: Vec<Duration> = releases[1..]
        .iter()
        .zip(answer_ends(&world, 200))
        .map(|(release, end)| *release - end)
        .collect();
    assert_eq!(gaps.len(), 39);
    assert!(gaps[0] >= ms(10), "slow path: {:?}", gaps[0]);
    assert_eq!(gaps.last(), Some(&config.min_response_quiet), "{gaps:?}");
    assert_stream_delivered(&world, &client);
}

/// TCPCopy's `-R`: a fixed RTT is kept whatever the samples say.
#[test]
fn a_fixed_rtt_is_not_replaced_by_live_samples() {
    let config = SessionConfig {
        response_end_rtt: Some(ms(10)),
        ..SessionConfig::default()
    };
    let client = queued_requests(10, 300);
    let target = TargetConfig {
        response_len: 200,
        ..TargetConfig::default()
    };
    let mut world = world(config, target);
    world.play(&client);
    run_to_end(&mut world);

    let releases = request_releases(&world);
    let ends = answer_ends(&world, 200);
    for (release, end) in releases[1..].iter().zip(&ends) {
        // Half the fixed RTT after a short segment.
        assert_eq!(*release - *end, ms(5));
    }
}

/// The request an answer released acknowledges that answer: no pure ACK goes before it.
#[test]
fn the_released_request_carries_the_ack_of_the_answer() {
    let client = queued_requests(4, 300);
    let mut world = world(SessionConfig::default(), TargetConfig::default());
    world.play(&client);
    run_to_end(&mut world);

    for end in &answer_ends(&world, 300)[..3] {
        let sent: Vec<_> = world.sent.iter().filter(|(at, ..)| at == end).collect();
        assert_eq!(sent.len(), 1, "{sent:?}");
        let (_, request, payload) = sent[0];
        assert!(!payload.is_empty(), "a request, not a pure ACK: {request}");
    }
    // The last answer, which releases nothing, is still acknowledged at once.
    let last = *answer_ends(&world, 300).last().expect("four answers");
    assert!(
        world
            .sent
            .iter()
            .any(|(at, seg, payload)| *at == last && seg.flags.ack() && payload.is_empty())
    );
}
