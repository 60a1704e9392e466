//! Whole-session scenarios: a scripted client replayed through [`Session`] against the
//! simulated target of [`sim`](super::sim), in simulated time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sim::{
    ClientScript, NetConfig, TargetConfig, TargetLog, World, client_addr, target_addr,
};
use super::{Event, RecordingOutput, Session, SessionConfig};
use crate::packet::{Segment, SeqNum, TcpFlags, TcpOptions};

const CLIENT_ISN: u32 = 0x0a00_0000;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn world(session: SessionConfig, target: TargetConfig) -> World {
    World::new(session, target, NetConfig::default())
}

/// A full session: SYN, handshake ACK, `requests` keep-alive requests each answered online
/// with 300 bytes, then FIN.
fn keep_alive_script(requests: usize) -> ClientScript {
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack();
    for i in 0..requests {
        client.send(format!("GET /{i} HTTP/1.1\n").as_bytes());
        client.wait(ms(1)).receive(300);
    }
    client.fin();
    client
}

/// Runs long enough for the session to end and leave time-wait.
fn run_to_end(world: &mut World) {
    world.run_for(Duration::from_secs(20));
    assert!(world.session.is_finished(), "events: {:?}", world.events);
    assert_each_opened_session_ended_once(world);
    assert_each_captured_request_sent_or_discarded(world);
}

/// Every request the session captured was released or dropped when it ended, and every one
/// released was answered or not.
fn assert_each_captured_request_sent_or_discarded(world: &World) {
    let sum = |count_of: fn(&Event) -> usize| world.events.iter().map(count_of).sum::<usize>();
    let captured = sum(|e| match e {
        Event::RequestsCaptured { count } => *count,
        _ => 0,
    });
    let discarded = sum(|e| match e {
        Event::RequestsDiscarded { count } => *count,
        _ => 0,
    });
    assert_eq!(
        captured,
        world.requests_sent() + discarded,
        "events: {:?}",
        world.events
    );
    let answered = world.count(Event::RequestAnswered) + world.count(Event::RequestUnanswered);
    assert_eq!(
        world.requests_sent(),
        answered,
        "answered or not: {:?}",
        world.events
    );
}

/// Every session that opened reported exactly one of the events that end one.
fn assert_each_opened_session_ended_once(world: &World) {
    let opened = world
        .events
        .iter()
        .filter(|e| matches!(e, Event::Opened { .. }))
        .count();
    let ended = world.events.iter().filter(|e| e.ends_session()).count();
    assert_eq!(opened, ended, "events: {:?}", world.events);
}

/// The target got exactly the client's stream, never beyond its window, never twice.
fn assert_stream_delivered(world: &World, client: &ClientScript) {
    assert_eq!(world.target.stream.len(), client.stream.len());
    assert!(world.target.stream == client.stream, "stream differs");
    assert_eq!(world.target.window_violations, 0);
}

/// Every session ends with an RST to the target, after which nothing else is sent.
fn assert_ends_with_rst(world: &World) {
    let (_, last, _) = world.sent.last().expect("the engine sent something");
    assert!(last.flags.rst(), "last segment {last}");
}

#[test]
fn full_session_with_keep_alive_requests() {
    let client = keep_alive_script(3);
    let mut world = world(SessionConfig::default(), TargetConfig::default());
    world.play(&client);
    run_to_end(&mut world);

    assert_stream_delivered(&world, &client);
    assert_eq!(world.target.duplicate_bytes, 0);
    assert_eq!(world.target.requests, 3);
    assert_eq!(world.count(Event::Opened { syn_seen: true }), 1);
    assert_eq!(world.count(Event::Established), 1);
    assert_eq!(world.requests_sent(), 3);
    assert_eq!(world.count(Event::Closed), 1);
    assert_eq!(world.count(Event::FakeHandshake), 0);
    assert_eq!(world.target.resets_received, 1);
    assert_ends_with_rst(&world);

    // The client's SYN goes out with its sequence number and options, minus SACK.
    let (_, syn, _) = &world.sent[0];
    assert_eq!(syn.flags, TcpFlags::SYN);
    assert_eq!(syn.seq, SeqNum(CLIENT_ISN));
    assert_eq!(syn.options.mss, Some(1460));
    assert_eq!(syn.options.window_scale, Some(7));
    assert!(!syn.options.sack_permitted);
    // The third ACK is ours and acknowledges the target's ISN.
    let (_, third, _) = &world.sent[1];
    assert_eq!(third.flags, TcpFlags::ACK);
    assert_eq!(third.ack, SeqNum(TargetConfig::default().isn + 1));
    assert_eq!(third.ttl, 64);
    // Every ACK we send lies in the target's sequence space; timestamps never go back and
    // echo the target's clock.
    let mut last_tsval = 0;
    for (_, seg, _) in &world.sent[1..] {
        if seg.flags.ack() {
            assert!(seg.ack.0 > TargetConfig::default().isn, "{seg}");
        }
        if let Some(ts) = seg.options.timestamps {
            assert!(ts.tsval >= last_tsval);
            assert!(ts.tsecr >= 5_000_000, "TSecr echoes the target's TSval");
            last_tsval = ts.tsval;
        }
    }
}

#[test]
fn mid_stream_session_opens_with_a_fake_handshake() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client
        .send(b"GET /a HTTP/1.1\n")
        .receive(300)
        .send(b"GET /b\n")
        .fin();
    let mut world = world(SessionConfig::default(), TargetConfig::default());
    world.play(&client);
    run_to_end(&mut world);

    let (_, syn, _) = &world.sent[0];
    assert_eq!(syn.flags, TcpFlags::SYN);
    assert_eq!(syn.seq, SeqNum(CLIENT_ISN - 1));
    assert_eq!(syn.options.mss, Some(1460));
    assert_eq!(syn.options.window_scale, None);
    assert_eq!(syn.window, 65535);
    assert_eq!(syn.ttl, 64);
    let (_, third, _) = &world.sent[1];
    assert_eq!(third.flags, TcpFlags::ACK);
    assert_eq!(third.seq, SeqNum(CLIENT_ISN));
    assert_stream_delivered(&world, &client);
    assert_eq!(world.target.requests, 2);
    assert_eq!(world.count(Event::Opened { syn_seen: false }), 1);
    assert_eq!(world.count(Event::FakeHandshake), 1);
    // Without the client's window scale we advertise an unscaled 65535.
    assert!(world.sent.iter().all(|(_, seg, _)| seg.window == 65535));
    assert_ends_with_rst(&world);
}

#[test]
fn only_full_sessions_skips_a_mid_stream_session() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client.send(b"GET /\n");
    let config = SessionConfig {
        only_full_sessions: true,
        ..SessionConfig::default()
    };
    let mut world = world(config, TargetConfig::default());
    world.play(&client);
    world.run_for(ms(100));
    assert!(world.session.is_finished());
    assert!(world.sent.is_empty());
    assert_eq!(world.events, vec![Event::NotFullSessionSkipped]);
}

#[test]
fn greeting_protocol_waits_for_the_target_to_speak_first() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client
        .syn()
        .ack()
        .receive(40)
        .send(b"EHLO me\n")
        .receive(300)
        .send(b"QUIT\n")
        .receive(300)
        .fin();
    let target = TargetConfig {
        greeting: 40,
        think_time: ms(20),
        ..TargetConfig::default()
    };
    let mut world = world(SessionConfig::default(), target);
    world.play(&client);
    run_to_end(&mut world);

    let greeting_sent = world.target.times_of(|log| *log == TargetLog::ResponseSent)[0];
    let first_data = world
        .sent
        .iter()
        .find(|(_, seg, _)| seg.payload_len > 0)
        .map(|(at, _, _)| *at)
        .expect("data was sent");
    assert!(
        first_data > greeting_sent,
        "the request waited for the greeting"
    );
    assert_stream_delivered(&world, &client);
    assert_eq!(world.target.requests, 2);
    assert_eq!(world.count(Event::ResponseTimeout), 0);
}

/// Two requests the client sent back to back (its capture compressed the wait).
fn two_requests() -> ClientScript {
    let mut client = ClientScript::new(CLIENT_ISN);
    client
        .syn()
        .ack()
        .send(b"GET /1\n")
        .receive(300)
        .send(b"GET /2\n")
        .receive(300)
        .fin();
    client
}

fn slow_target() -> TargetConfig {
    TargetConfig {
        think_time: ms(50),
        ..TargetConfig::default()
    }
}

#[test]
fn pacing_holds_the_second_request_until_the_first_response_ends() {
    let client = two_requests();
    let mut world = world(SessionConfig::default(), slow_target());
    world.play(&client);
    run_to_end(&mut world);

    let second = world.target.times_of(|log| *log == TargetLog::Request(2))[0];
    let first_response = world.target.times_of(|log| *log == TargetLog::ResponseSent)[0];
    assert!(second > first_response);
    assert_stream_delivered(&world, &client);
    assert_eq!(world.requests_sent(), 2);
}

#[test]
fn without_pacing_requests_go_at_once() {
    let client = two_requests();
    let config = SessionConfig {
        wait_for_response: false,
        ..SessionConfig::default()
    };
    let mut world = world(config, slow_target());
    world.play(&client);
    run_to_end(&mut world);

    let second = world.target.times_of(|log| *log == TargetLog::Request(2))[0];
    let first_response = world.target.times_of(|log| *log == TargetLog::ResponseSent)[0];
    assert!(second < first_response);
    assert_stream_delivered(&world, &client);
}

#[test]
fn a_client_reset_waits_for_the_pending_response() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack().send(b"GET /1\n").rst();
    let mut world = world(SessionConfig::default(), slow_target());
    world.play(&client);
    run_to_end(&mut world);

    let response = world.target.times_of(|log| *log == TargetLog::ResponseSent)[0];
    let reset = world
        .target
        .times_of(|log| *log == TargetLog::ResetReceived)[0];
    assert!(reset > response);
    assert_eq!(world.count(Event::Closed), 1);
    assert_eq!(world.sent_with(TcpFlags::FIN), 0);
    assert_stream_delivered(&world, &client);
    assert_ends_with_rst(&world);
}

#[test]
fn a_one_megabyte_request_respects_the_target_window() {
    let mut body = vec![b'x'; 1 << 20];
    body.push(b'\n');
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack().send(&body).receive(300).fin();
    let target = TargetConfig {
        window_scale: None,
        window: 16 * 1024,
        ..TargetConfig::default()
    };
    let mut world = world(SessionConfig::default(), target);
    world.play(&client);
    run_to_end(&mut world);

    assert_stream_delivered(&world, &client);
    assert_eq!(world.target.duplicate_bytes, 0);
    assert_eq!(world.target.requests, 1);
    assert_eq!(world.count(Event::Retransmitted), 0);
    // Segments never exceed the target's MSS.
    assert!(world.sent.iter().all(|(_, seg, _)| seg.payload_len <= 1460));
    // The target sent only ACKs while the body went out, yet our TSecr follows its clock.
    let tsecrs: Vec<u32> = world
        .sent
        .iter()
        .filter(|(_, seg, _)| seg.payload_len > 0)
        .filter_map(|(_, seg, _)| seg.options.timestamps.map(|ts| ts.tsecr))
        .collect();
    assert!(tsecrs.windows(2).all(|pair| pair[0] <= pair[1]));
    assert!(tsecrs.last() > tsecrs.first());
}

#[test]
fn a_large_response_is_acknowledged_completely() {
    let client = two_requests();
    let target = TargetConfig {
        response_len: 1 << 20,
        ..TargetConfig::default()
    };
    let mut world = world(SessionConfig::default(), target);
    world.play(&client);
    world.run_for(Duration::from_secs(1));

    // Both responses were sent in full and acknowledged: the target never waited on us.
    assert_eq!(
        world
            .target
            .times_of(|log| *log == TargetLog::ResponseSent)
            .len(),
        2
    );
    let target_isn = TargetConfig::default().isn;
    let highest_ack = world
        .sent
        .iter()
        .filter(|(_, seg, _)| seg.flags.ack() && !seg.flags.rst())
        .map(|(_, seg, _)| seg.ack.0.wrapping_sub(target_isn))
        .max();
    assert!(highest_ack >= Some(2 << 20));
    // Delayed ACKs: fewer pure ACKs than target segments.
    let target_segments = (2 << 20) / 1460;
    let pure_acks = world
        .sent
        .iter()
        .filter(|(_, seg, _)| seg.flags == TcpFlags::ACK && seg.payload_len == 0)
        .count();
    assert!(pure_acks < target_segments, "{pure_acks} ACKs");
    run_to_end(&mut world);
    assert_stream_delivered(&world, &client);
    assert_eq!(world.target.unacknowledged(), 0);
}

/// The client closed after receiving a 1 MB response. A pause in the target's answer (here
/// the network slows down mid-response) looks like its end, yet the FIN must wait until the
/// target has sent as much as the client received, or the target would abort the rest.
#[test]
fn a_client_fin_waits_for_the_whole_response_across_a_pause() {
    const RESPONSE: u32 = 1 << 20;
    let mut client = ClientScript::new(CLIENT_ISN);
    client
        .syn()
        .ack()
        .send(b"GET /big\n")
        .receive(RESPONSE)
        .fin();
    let target = TargetConfig {
        response_len: RESPONSE,
        ..TargetConfig::default()
    };
    let mut world = world(SessionConfig::default(), target);
    world.play(&client);
    world.run_for(ms(3));
    world.net_config.latency = ms(50);
    run_to_end(&mut world);

    let target_isn = TargetConfig::default().isn;
    let (_, fin, _) = world
        .sent
        .iter()
        .find(|(_, seg, _)| seg.flags.fin())
        .expect("the client's FIN was replayed");
    assert!(
        fin.ack.0.wrapping_sub(target_isn) > RESPONSE,
        "FIN sent when only {} response bytes had arrived",
        fin.ack.0.wrapping_sub(target_isn + 1)
    );
    assert_eq!(world.count(Event::ResponseTimeout), 0);
    assert_stream_delivered(&world, &client);
}

#[test]
fn target_reset_mid_session_rebuilds_it() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack();
    for path in ["/1", "/2", "/3"] {
        client.send(format!("GET {path}\n").as_bytes()).receive(300);
    }
    client.fin();
    let target = TargetConfig {
        reset_on_request: Some(1),
        ..TargetConfig::default()
    };
    let mut world = world(SessionConfig::default(), target);
    world.play(&client);
    run_to_end(&mut world);

    assert_eq!(world.count(Event::ResetByTarget), 1);
    assert_eq!(world.count(Event::SessionRebuilt), 1);
    assert_eq!(world.target.connections, 2);
    assert_stream_delivered(&world, &client);
    assert_eq!(world.target.requests, 3);
    assert_ends_with_rst(&world);
}

#[test]
fn loss_toward_the_target_is_repaired_exactly_once_in_order() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack();
    for i in 0..6 {
        let mut request = format!("POST /{i} ").into_bytes();
        request.extend(std::iter::repeat_n(b'a' + i as u8, 20_000));
        request.push(b'\n');
        client.send(&request).receive(300);
    }
    client.fin();
    for seed in 1..=4 {
        let net = NetConfig {
            loss_to_target: 15,
            reorder_to_target: 10,
            seed,
            ..NetConfig::default()
        };
        let mut world = World::new(SessionConfig::default(), TargetConfig::default(), net);
        world.play(&client);
        world.run_for(Duration::from_secs(60));
        assert_stream_delivered(&world, &client);
        assert_eq!(world.target.requests, 6, "seed {seed}");
        assert!(
            world.count(Event::Retransmitted) + world.count(Event::FastRetransmit) > 0,
            "seed {seed}"
        );
        assert_eq!(world.count(Event::RetransmitLimit), 0);
    }
}

/// Reply headers lost on the target → assistant link, reordered, and late (a slow
/// intercept): the engine sees the target's retransmissions instead, and the target still
/// reads every request once, in order; nothing stays open on it.
#[test]
fn lost_delayed_and_reordered_replies_are_repaired_exactly_once() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack();
    for i in 0..6 {
        let mut request = format!("POST /{i} ").into_bytes();
        request.extend(std::iter::repeat_n(b'a' + i as u8, 8_000));
        request.push(b'\n');
        client.send(&request).receive(20_000);
    }
    client.fin();
    for seed in 1..=6 {
        let net = NetConfig {
            loss_to_engine: 10,
            reorder_to_engine: 10,
            reply_delay: ms(30),
            seed,
            ..NetConfig::default()
        };
        let target = TargetConfig {
            response_len: 20_000,
            ..TargetConfig::default()
        };
        let mut world = World::new(SessionConfig::default(), target, net);
        world.play(&client);
        run_to_end(&mut world);
        assert!(world.replies_lost > 0, "seed {seed}: no reply was lost");
        assert_stream_delivered(&world, &client);
        assert_eq!(world.target.requests, 6, "seed {seed}");
        assert_eq!(world.requests_sent(), 6, "seed {seed}");
        assert_eq!(
            world.count(Event::Closed),
            1,
            "seed {seed}: {:?}",
            world.events
        );
        assert!(!world.target.has_connection(), "seed {seed}");
    }
}

#[test]
fn client_retransmissions_are_not_sent_twice() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack().send(b"GET /first\n");
    let first = client.items.len() - 1;
    client.repeat(first).repeat(first).receive(300).fin();
    let mut world = world(SessionConfig::default(), TargetConfig::default());
    world.play(&client);
    run_to_end(&mut world);

    let data_bytes: usize = world.sent.iter().map(|(_, _, p)| p.len()).sum();
    assert_eq!(data_bytes, client.stream.len());
    assert_eq!(world.count(Event::ClientRetransmitDropped { bytes: 11 }), 2);
    assert_stream_delivered(&world, &client);
}

#[test]
fn out_of_order_client_data_is_delivered_in_order() {
    let mut client = ClientScript::new(CLIENT_ISN);
    let mut body = b"POST /".to_vec();
    body.extend((0..5000).map(|i| b'a' + (i % 26) as u8));
    body.push(b'\n');
    client.syn().ack().send(&body).receive(300).fin();
    // The capture saw the body's second and third segments before the first.
    let (t2, t3) = (client.items[3].0, client.items[4].0);
    client.items[3].0 = client.items[2].0;
    client.items[4].0 = client.items[2].0;
    client.items[2].0 = t3;
    let _ = t2;
    client.items.sort_by_key(|(at, _, _)| *at);
    let mut world = world(SessionConfig::default(), TargetConfig::default());
    world.play(&client);
    run_to_end(&mut world);

    assert!(world.count(Event::OutOfOrderBuffered) >= 1);
    assert_stream_delivered(&world, &client);
    assert_eq!(world.target.duplicate_bytes, 0);
}

#[test]
fn a_new_syn_on_the_same_port_starts_a_new_session() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack().send(b"GET /old\n").receive(300);
    let mut reused = ClientScript::new(CLIENT_ISN + 5_000_000);
    reused.syn().ack().send(b"GET /new\n").receive(300).fin();
    let mut world = world(SessionConfig::default(), TargetConfig::default());
    world.play(&client);
    world.run_for(ms(100));
    world.play(&reused);
    run_to_end(&mut world);

    assert_eq!(world.count(Event::PortReused), 1);
    assert_eq!(world.count(Event::Opened { syn_seen: true }), 2);
    assert_eq!(world.target.connections, 2);
    assert_eq!(world.target.resets_received, 2);
    assert_eq!(world.target.stream, b"GET /old\nGET /new\n");
    assert_ends_with_rst(&world);
}

#[test]
fn a_sequence_jump_means_the_port_was_reused() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack().send(b"GET /old\n").receive(300);
    let mut jumped = client.clone();
    jumped.items.clear();
    jumped.seq += 100_000_000u32;
    jumped.send(b"GET /new\n").receive(300).fin();
    let mut world = world(SessionConfig::default(), TargetConfig::default());
    world.play(&client);
    world.run_for(ms(100));
    world.play(&jumped);
    run_to_end(&mut world);

    assert_eq!(world.count(Event::PortReused), 1);
    assert_eq!(world.count(Event::FakeHandshake), 1);
    assert_eq!(world.target.connections, 2);
    assert_eq!(world.target.stream, b"GET /old\nGET /new\n");
}

#[test]
fn an_unanswered_syn_times_out() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack().send(b"GET /\n");
    let target = TargetConfig {
        answers_syn: false,
        ..TargetConfig::default()
    };
    let mut world = world(SessionConfig::default(), target);
    world.play(&client);
    run_to_end(&mut world);

    assert_eq!(world.count(Event::HandshakeTimeout), 1);
    assert!(world.count(Event::Retransmitted) >= 2);
    assert_eq!(world.count(Event::UnsentDataDiscarded { bytes: 6 }), 1);
    let syns = world.sent_with(TcpFlags::SYN);
    assert_eq!(syns, world.count(Event::Retransmitted) + 1);
    assert_ends_with_rst(&world);
}

#[test]
fn a_silent_session_times_out() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack().send(b"GET /\n").receive(300);
    let config = SessionConfig {
        idle_timeout: Duration::from_secs(10),
        ..SessionConfig::default()
    };
    let mut world = world(config, TargetConfig::default());
    world.play(&client);
    world.run_for(Duration::from_secs(9));
    assert!(!world.session.is_finished());
    run_to_end(&mut world);

    assert_eq!(world.count(Event::IdleTimeout), 1);
    assert_eq!(world.target.resets_received, 1);
    assert_ends_with_rst(&world);
}

#[test]
fn a_gap_that_never_fills_ends_with_the_idle_timeout() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack().send(b"GET /\n");
    client.seq += 100u32;
    client.send(b"lost before\n");
    let config = SessionConfig {
        idle_timeout: Duration::from_secs(5),
        ..SessionConfig::default()
    };
    let mut world = world(config, TargetConfig::default());
    world.play(&client);
    run_to_end(&mut world);

    assert_eq!(world.count(Event::IdleTimeout), 1);
    assert_eq!(world.count(Event::UnsentDataDiscarded { bytes: 12 }), 1);
    assert_eq!(world.target.stream, b"GET /\n");
}

#[test]
fn the_buffer_cap_resets_the_session() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack().send(&[b'y'; 20_000]);
    let config = SessionConfig {
        max_buffered_bytes: 10_000,
        ..SessionConfig::default()
    };
    let target = TargetConfig {
        answers_syn: false,
        ..TargetConfig::default()
    };
    let mut world = world(config, target);
    world.play(&client);
    run_to_end(&mut world);

    let overflow = world
        .events
        .iter()
        .find(|e| matches!(e, Event::BufferOverflow { .. }));
    assert_eq!(overflow, Some(&Event::BufferOverflow { bytes: 1448 }));
    assert_eq!(world.count(Event::HandshakeTimeout), 0);
    assert_ends_with_rst(&world);
}

#[test]
fn late_target_packets_are_answered_with_rst() {
    let client = keep_alive_script(1);
    let mut world = world(SessionConfig::default(), TargetConfig::default());
    world.play(&client);
    world.run_for(Duration::from_secs(1));
    assert!(!world.session.is_finished(), "still in time-wait");
    let late = Segment {
        src: target_addr(),
        dst: client_addr(),
        seq: SeqNum(1),
        ack: SeqNum(12345),
        flags: TcpFlags::ACK,
        window: 100,
        options: Default::default(),
        ip_id: 0,
        ttl: 64,
        payload_len: 0,
    };
    let mut out = RecordingOutput::default();
    world.session.on_reply(world.now, &late, &mut out);
    assert_eq!(out.events, vec![Event::LateTargetPacketReset]);
    let (rst, _) = &out.transmits[0];
    assert_eq!(rst.flags, TcpFlags::RST);
    assert_eq!(rst.seq, SeqNum(12345));
}

#[test]
fn sequence_numbers_wrap_around() {
    let mut client = ClientScript::new(u32::MAX - 3000);
    client.server_seq = SeqNum(u32::MAX - 100);
    client.syn().ack();
    client.send(&[b'w'; 10_000]).send(b"\n").receive(300_000);
    client.send(b"GET /after-wrap\n").receive(10).fin();
    let target = TargetConfig {
        isn: u32::MAX - 200,
        response_len: 300_000,
        ..TargetConfig::default()
    };
    let mut world = world(SessionConfig::default(), target);
    world.play(&client);
    run_to_end(&mut world);

    assert_stream_delivered(&world, &client);
    assert_eq!(world.target.requests, 2);
    assert_eq!(world.count(Event::Closed), 1);
}

#[test]
fn target_fin_with_client_data_left_rebuilds_the_session() {
    let client = two_requests();
    let target = TargetConfig {
        close_after_request: Some(1),
        ..TargetConfig::default()
    };
    let mut world = world(SessionConfig::default(), target);
    world.play(&client);
    run_to_end(&mut world);

    assert!(world.count(Event::FinByTarget) >= 1);
    assert_eq!(world.count(Event::SessionRebuilt), 1, "{:?}", world.events);
    assert_eq!(world.target.connections, 2);
    assert_stream_delivered(&world, &client);
    assert_eq!(world.target.requests, 2);
    assert_eq!(world.count(Event::Closed), 1);
    assert_ends_with_rst(&world);
}

#[test]
fn a_client_close_after_a_target_reset_ends_the_session() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client
        .syn()
        .ack()
        .send(b"GET /1\n")
        .wait(ms(5))
        .receive(300)
        .fin();
    let target = TargetConfig {
        reset_on_request: Some(1),
        ..TargetConfig::default()
    };
    let mut world = world(SessionConfig::default(), target);
    world.play(&client);
    run_to_end(&mut world);

    assert_eq!(world.count(Event::ResetByTarget), 1);
    assert_eq!(world.count(Event::SessionRebuilt), 0);
    assert_eq!(world.count(Event::Closed), 1);
    assert_eq!(world.target.connections, 1);
    assert_stream_delivered(&world, &client);
}

#[test]
fn a_target_that_stops_acknowledging_is_given_up_on() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client
        .syn()
        .ack()
        .send(b"GET /1\n")
        .receive(300)
        .wait(ms(100))
        .send(b"GET /2\n");
    let mut world = world(SessionConfig::default(), TargetConfig::default());
    world.play(&client);
    world.run_for(ms(50));
    assert_eq!(world.target.requests, 1);
    world.net_config.loss_to_target = 100;
    run_to_end(&mut world);

    let config = SessionConfig::default();
    assert_eq!(
        world.count(Event::Retransmitted),
        config.max_retransmits as usize
    );
    assert_eq!(world.count(Event::RetransmitLimit), 1);
    assert_eq!(world.count(Event::UnsentDataDiscarded { bytes: 7 }), 1);
    assert_ends_with_rst(&world);
}

#[test]
fn requests_the_target_never_answers_are_released_after_the_response_timeout() {
    let client = two_requests();
    let target = TargetConfig {
        response_len: 0,
        ..TargetConfig::default()
    };
    let mut world = world(SessionConfig::default(), target);
    world.play(&client);
    run_to_end(&mut world);

    let first = world.target.times_of(|log| *log == TargetLog::Request(1))[0];
    let second = world.target.times_of(|log| *log == TargetLog::Request(2))[0];
    assert!(second - first >= SessionConfig::default().response_timeout);
    // Once for the second request, once for the FIN behind it.
    assert_eq!(world.count(Event::ResponseTimeout), 2);
    assert_eq!(world.target.requests, 2);
    assert_stream_delivered(&world, &client);
}

/// A reply header from the target at `seq`, acknowledging `ack`, without options.
fn target_segment(seq: u32, ack: u32, flags: TcpFlags, window: u16) -> Segment {
    Segment {
        src: target_addr(),
        dst: client_addr(),
        seq: SeqNum(seq),
        ack: SeqNum(ack),
        flags,
        window,
        options: TcpOptions::default(),
        ip_id: 0,
        ttl: 64,
        payload_len: 0,
    }
}

#[test]
fn a_zero_window_is_probed_and_data_waits_for_it_to_open() {
    let t0 = Instant::now();
    let mut session = Session::new(Arc::default(), t0, client_addr(), target_addr());
    let mut out = RecordingOutput::default();
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack().send(b"GET /\n");
    for (_, segment, payload) in &client.items {
        session.on_client(t0, segment, payload, &mut out);
    }
    let syn_ack = target_segment(9000, CLIENT_ISN + 1, TcpFlags::SYN | TcpFlags::ACK, 0);
    session.on_reply(t0 + ms(1), &syn_ack, &mut out);
    assert!(out.transmits.iter().all(|(_, payload)| payload.is_empty()));
    assert_eq!(out.count(Event::Established), 1);

    let probe_at = session.poll_timeout().expect("the persist timer runs");
    out.clear();
    session.on_timeout(probe_at, &mut out);
    assert_eq!(out.events, vec![Event::ZeroWindowProbe]);
    let (probe, payload) = &out.transmits[0];
    assert!(payload.is_empty());
    assert_eq!(probe.seq, SeqNum(CLIENT_ISN));
    assert_eq!(probe.ack, SeqNum(9001));

    out.clear();
    let update = target_segment(9001, CLIENT_ISN + 1, TcpFlags::ACK, 1000);
    session.on_reply(probe_at + ms(1), &update, &mut out);
    let (data, payload) = &out.transmits[0];
    assert_eq!(payload.as_slice(), b"GET /\n");
    assert_eq!(data.seq, SeqNum(CLIENT_ISN + 1));
    assert!(data.flags.psh());
}

#[test]
fn client_pure_acks_are_not_forwarded_once_established() {
    let t0 = Instant::now();
    let mut session = Session::new(Arc::default(), t0, client_addr(), target_addr());
    let mut out = RecordingOutput::default();
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack();
    for (_, segment, payload) in &client.items {
        session.on_client(t0, segment, payload, &mut out);
    }
    let syn_ack = target_segment(9000, CLIENT_ISN + 1, TcpFlags::SYN | TcpFlags::ACK, 1000);
    session.on_reply(t0 + ms(1), &syn_ack, &mut out);
    out.clear();
    client.receive(100).receive(100);
    for (_, segment, payload) in &client.items[2..] {
        session.on_client(t0 + ms(2), segment, payload, &mut out);
    }
    assert!(out.transmits.is_empty());
    assert!(out.events.is_empty());
}

#[test]
fn a_target_that_streams_without_pause_does_not_hold_requests_forever() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack().send(b"SUBSCRIBE\n").receive(100);
    for i in 0..3 {
        client.send(format!("PING {i}\n").as_bytes()).receive(100);
    }
    // The target answers the first request with a stream longer than the test.
    let target = TargetConfig {
        response_len: 200_000_000,
        ..TargetConfig::default()
    };
    let net = NetConfig {
        latency: ms(10),
        ..NetConfig::default()
    };
    // Window-limited bursts come one RTT apart: a quiet time above that never ends the
    // response.
    let config = SessionConfig {
        min_response_quiet: ms(50),
        ..SessionConfig::default()
    };
    let mut world = World::new(config, target, net);
    world.play(&client);
    world.run_for(Duration::from_secs(17));

    assert_eq!(world.target.requests, 4, "{:?}", world.events);
    assert_eq!(world.count(Event::ResponseTimeout), 3);
    assert_eq!(world.target.stream, client.stream);
}

#[test]
fn three_duplicate_acks_trigger_one_fast_retransmit() {
    let mut body = vec![b'f'; 100_000];
    body.push(b'\n');
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack().send(&body).receive(300).fin();
    // Transmissions 0 and 1 are the SYN and the third ACK; 12 is a data segment mid-window.
    let net = NetConfig {
        drop_to_target: vec![12],
        ..NetConfig::default()
    };
    let mut world = World::new(SessionConfig::default(), TargetConfig::default(), net);
    world.play(&client);
    run_to_end(&mut world);

    assert_eq!(world.count(Event::FastRetransmit), 1);
    assert_eq!(world.count(Event::Retransmitted), 0);
    let (_, lost, _) = &world.sent[12];
    let resent = world
        .sent
        .iter()
        .skip(13)
        .filter(|(_, seg, _)| seg.seq == lost.seq && seg.payload_len > 0)
        .count();
    assert_eq!(resent, 1);
    assert_stream_delivered(&world, &client);
}

mod random_sessions {
    use super::*;
    use proptest::prelude::*;

    prop_compose! {
        fn request_sizes()(sizes in proptest::collection::vec(1usize..30_000, 1..7)) -> Vec<usize> {
            sizes
        }
    }

    /// What the path back from the target does to its reply headers: percent lost (a lossy
    /// target → assistant link), percent reordered, and a delay added to every one (a slow
    /// intercept).
    #[derive(Debug, Clone, Copy)]
    struct ReplyPath {
        loss: u64,
        reorder: u64,
        delay: Duration,
    }

    prop_compose! {
        fn reply_path()(loss in 0u64..15, reorder in 0u64..15, delay_ms in 0u64..40) -> ReplyPath {
            ReplyPath { loss, reorder, delay: ms(delay_ms) }
        }
    }

    /// Whether `read` is `sent` with at most one range read twice: `sent[..p]` then
    /// `sent[i..]` for some `i <= p` (every byte in order, one rewind at most).
    fn is_stream_with_one_rewind(read: &[u8], sent: &[u8]) -> bool {
        let prefix = read.iter().zip(sent).take_while(|(a, b)| a == b).count();
        let rest = &read[prefix..];
        read.len() >= sent.len() && sent.ends_with(rest)
    }

    #[test]
    fn one_rewind_is_told_from_loss_and_disorder() {
        assert!(is_stream_with_one_rewind(b"abcdef", b"abcdef"));
        assert!(is_stream_with_one_rewind(b"abcdcdef", b"abcdef"));
        assert!(!is_stream_with_one_rewind(b"abcef", b"abcdef"));
        assert!(!is_stream_with_one_rewind(b"abdcef", b"abcdef"));
        assert!(!is_stream_with_one_rewind(b"abcbcdbcdef", b"abcdef"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the loss and reordering both ways, the delay of the replies, client
        /// retransmissions and early closes by the target, the target reads the client's
        /// stream exactly, never beyond its window, and every session and request is
        /// accounted for once.
        #[test]
        fn the_target_reads_the_client_stream_exactly(
            sizes in request_sizes(),
            response_len in 1u32..20_000,
            loss in 0u64..15,
            reorder in 0u64..15,
            seed in 1u64..1000,
            pacing: bool,
            full: bool,
            client_noise in proptest::collection::vec((0usize..64, any::<bool>()), 0..6),
            isn: u32,
            reset_on_request in proptest::option::of(1usize..7),
            close_after_request in proptest::option::of(2usize..7),
            replies in reply_path(),
        ) {
            let mut client = ClientScript::new(isn);
            if full {
                client.syn().ack();
            }
            for (i, size) in sizes.iter().enumerate() {
                let mut request = vec![b'a' + (i % 26) as u8; *size];
                request.push(b'\n');
                client.send(&request).receive(response_len);
            }
            client.fin();
            // Client retransmissions (repeat) and capture reordering (swap two payloads). A
            // mid-stream capture starts at its first segment, so that one stays first.
            let first_data = if full { 2 } else { 1 };
            for (pick, repeat) in client_noise {
                let data: Vec<usize> = (first_data..client.items.len())
                    .filter(|&i| !client.items[i].2.is_empty())
                    .collect();
                if data.is_empty() {
                    break;
                }
                let a = data[pick % data.len()];
                if repeat {
                    client.repeat(a);
                } else if let Some(&b) = data.get(pick % data.len() + 1) {
                    let (ta, tb) = (client.items[a].0, client.items[b].0);
                    client.items[a].0 = tb;
                    client.items[b].0 = ta;
                    client.items.sort_by_key(|(at, _, _)| *at);
                }
            }
            let config = SessionConfig {
                wait_for_response: pacing,
                // Loss both ways fails a handshake attempt up to 27 % of the time here: 3 s
                // hold four attempts (a 0.5 % chance that all fail), 10 s eight.
                handshake_timeout: Duration::from_secs(10),
                ..SessionConfig::default()
            };
            let target = TargetConfig {
                response_len,
                reset_on_request,
                close_after_request,
                ..TargetConfig::default()
            };
            let net = NetConfig {
                loss_to_target: loss,
                reorder_to_target: reorder,
                loss_to_engine: replies.loss,
                reorder_to_engine: replies.reorder,
                reply_delay: replies.delay,
                seed,
                ..NetConfig::default()
            };
            let mut world = World::new(config, target, net);
            world.play(&client);
            world.run_for(Duration::from_secs(60));

            prop_assert!(world.session.is_finished(), "events {:?}", world.events);
            assert_each_opened_session_ended_once(&world);
            assert_each_captured_request_sent_or_discarded(&world);
            if reset_on_request.is_some() && (replies.loss > 0 || replies.reorder > 0) {
                // The target's reset, and its last ACK before it, may both be lost or come
                // late: the target forgets the connection and answers what follows with a RST
                // that carries no ACK, so nobody can tell which bytes it read before
                // resetting. Those (and only those) come again on the rebuilt connection.
                prop_assert!(
                    is_stream_with_one_rewind(&world.target.stream, &client.stream),
                    "events {:?}", world.events
                );
                prop_assert!(world.target.requests >= sizes.len());
            } else {
                prop_assert!(world.target.stream == client.stream, "events {:?}", world.events);
                prop_assert_eq!(world.target.requests, sizes.len());
            }
            prop_assert_eq!(world.target.window_violations, 0);
            // Nothing stays open on the target: we reset it, or it reset itself.
            prop_assert!(!world.target.has_connection());
            let ended_with_rst = world.sent.last().is_some_and(|(_, seg, _)| seg.flags.rst());
            prop_assert!(ended_with_rst || world.count(Event::ResetByTarget) > 0);
        }
    }
}

#[test]
fn a_target_holding_our_4_tuple_gets_the_session_moved_not_reset() {
    let t0 = Instant::now();
    let mut session = Session::new(Arc::default(), t0, client_addr(), target_addr());
    let mut out = RecordingOutput::default();
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn();
    session.on_client(t0, &client.items[0].1, &[], &mut out);
    // The target answers with an ACK of another connection on the same 4-tuple (its
    // TIME-WAIT, or another copy's session): it is never reset.
    let stale = target_segment(777, 4242, TcpFlags::ACK, 1000);
    out.clear();
    session.on_reply(t0 + ms(1), &stale, &mut out);
    session.on_reply(t0 + ms(2), &stale, &mut out);
    assert!(out.transmits.is_empty());
    assert_eq!(out.events, vec![Event::PortInUse], "reported once");
    assert!(session.port_in_use());
    // Reopened from another port: the same SYN, from there.
    let moved: std::net::SocketAddr = "203.0.113.9:50123".parse().unwrap();
    session.reopen_from(t0 + ms(3), moved, &mut out);
    assert!(!session.port_in_use());
    let (syn, _) = &out.transmits[0];
    assert_eq!(
        (syn.src, syn.flags, syn.seq),
        (moved, TcpFlags::SYN, SeqNum(CLIENT_ISN))
    );
    client.ack();
    session.on_client(t0 + ms(3), &client.items[1].1, &[], &mut out);
    let mut syn_ack = target_segment(9000, CLIENT_ISN + 1, TcpFlags::SYN | TcpFlags::ACK, 1000);
    syn_ack.dst = moved;
    out.clear();
    session.on_reply(t0 + ms(4), &syn_ack, &mut out);
    assert_eq!(out.events, vec![Event::Established]);
}

#[test]
fn a_syn_no_client_follows_never_opens_a_connection_on_the_target() {
    let t0 = Instant::now();
    let config = Arc::new(SessionConfig::default());
    let mut session = Session::new(Arc::clone(&config), t0, client_addr(), target_addr());
    let mut out = RecordingOutput::default();
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn();
    session.on_client(t0, &client.items[0].1, &[], &mut out);
    out.clear();
    let syn_ack = target_segment(9000, CLIENT_ISN + 1, TcpFlags::SYN | TcpFlags::ACK, 1000);
    session.on_reply(t0 + ms(1), &syn_ack, &mut out);
    session.on_reply(t0 + ms(1000), &syn_ack, &mut out);
    assert!(
        out.transmits.is_empty(),
        "no ACK for a client that sent only its SYN"
    );
    assert!(out.events.is_empty());
    session.on_timeout(t0 + config.handshake_timeout, &mut out);
    let (reset, _) = &out.transmits[0];
    assert!(
        reset.flags.rst(),
        "the target's half-open connection is freed"
    );
    assert_eq!(reset.seq, SeqNum(CLIENT_ISN + 1));
    assert!(out.events.contains(&Event::ClientNeverAcknowledged));
    assert_eq!(
        out.events.iter().filter(|e| e.ends_session()).count(),
        1,
        "{:?}",
        out.events
    );
}

#[test]
fn the_clients_ack_after_the_targets_syn_ack_completes_the_handshake() {
    let t0 = Instant::now();
    let mut session = Session::new(Arc::default(), t0, client_addr(), target_addr());
    let mut out = RecordingOutput::default();
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack().send(b"GET /\n");
    session.on_client(t0, &client.items[0].1, &[], &mut out);
    let syn_ack = target_segment(9000, CLIENT_ISN + 1, TcpFlags::SYN | TcpFlags::ACK, 1000);
    session.on_reply(t0 + ms(1), &syn_ack, &mut out);
    out.clear();
    session.on_client(t0 + ms(2), &client.items[1].1, &[], &mut out);
    assert_eq!(out.events, vec![Event::Established]);
    let (ack, _) = &out.transmits[0];
    assert_eq!((ack.flags, ack.ack), (TcpFlags::ACK, SeqNum(9001)));
    let (_, segment, payload) = &client.items[2];
    session.on_client(t0 + ms(3), segment, payload, &mut out);
    let (data, sent) = out.transmits.last().unwrap();
    assert_eq!(sent.as_slice(), b"GET /\n");
    assert_eq!(data.seq, SeqNum(CLIENT_ISN + 1));
}

#[test]
fn only_full_sessions_still_replays_sessions_whose_syn_was_seen() {
    let config = SessionConfig {
        only_full_sessions: true,
        ..SessionConfig::default()
    };
    let client = keep_alive_script(2);
    let mut world = world(config, TargetConfig::default());
    world.play(&client);
    run_to_end(&mut world);
    assert_stream_delivered(&world, &client);
    assert_eq!(world.count(Event::NotFullSessionSkipped), 0);
}

#[test]
fn ipv6_without_an_mss_option_uses_the_ipv6_default() {
    let client: std::net::SocketAddr = "[2001:db8::7]:40000".parse().unwrap();
    let target: std::net::SocketAddr = "[2001:db8::10]:80".parse().unwrap();
    let t0 = Instant::now();
    let mut session = Session::new(Arc::default(), t0, client, target);
    let mut out = RecordingOutput::default();
    let mut script = ClientScript::new(CLIENT_ISN);
    script.timestamps = false;
    script.syn().ack().send(&[b'6'; 3000]);
    for (_, segment, payload) in &script.items {
        let mut segment = segment.clone();
        segment.src = client;
        segment.dst = target;
        session.on_client(t0, &segment, payload, &mut out);
    }
    let mut syn_ack = target_segment(1, CLIENT_ISN + 1, TcpFlags::SYN | TcpFlags::ACK, 65535);
    syn_ack.src = target;
    syn_ack.dst = client;
    out.clear();
    session.on_reply(t0 + ms(1), &syn_ack, &mut out);
    let sizes: Vec<usize> = out
        .transmits
        .iter()
        .map(|(seg, _)| seg.payload_len)
        .collect();
    assert_eq!(sizes, vec![0, 1220, 1220, 560]);
    assert!(
        out.transmits
            .iter()
            .all(|(seg, _)| seg.src == client && seg.dst == target)
    );
    // Neither side offered timestamps: none are sent.
    assert!(
        out.transmits
            .iter()
            .all(|(seg, _)| seg.options.timestamps.is_none())
    );
}

#[test]
fn a_target_that_never_closes_is_reset_after_the_fin_wait() {
    let t0 = Instant::now();
    let mut session = Session::new(Arc::default(), t0, client_addr(), target_addr());
    let mut out = RecordingOutput::default();
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack().fin();
    for (_, segment, payload) in &client.items {
        session.on_client(t0, segment, payload, &mut out);
    }
    let syn_ack = target_segment(9000, CLIENT_ISN + 1, TcpFlags::SYN | TcpFlags::ACK, 1000);
    session.on_reply(t0 + ms(1), &syn_ack, &mut out);
    let (fin, _) = out.transmits.last().expect("the FIN went out");
    assert!(fin.flags.fin());
    let fin_ack = target_segment(9001, CLIENT_ISN + 2, TcpFlags::ACK, 1000);
    out.clear();
    session.on_reply(t0 + ms(2), &fin_ack, &mut out);
    assert!(out.transmits.is_empty());
    let deadline = session.poll_timeout().expect("the FIN-wait timer runs");
    assert_eq!(
        deadline,
        t0 + ms(2) + SessionConfig::default().fin_wait_timeout
    );
    session.on_timeout(deadline, &mut out);
    assert_eq!(out.events, vec![Event::Closed]);
    let (rst, _) = &out.transmits[0];
    assert!(rst.flags.rst());
    assert_eq!(rst.seq, SeqNum(CLIENT_ISN + 2));
    let end = session.poll_timeout().expect("time-wait runs");
    session.on_timeout(end, &mut out);
    assert!(session.is_finished());
}

#[test]
fn client_data_after_the_end_is_counted_not_replayed() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack().send(b"GET /\n").receive(300).rst();
    let mut late = client.clone();
    late.items.clear();
    late.send(b"late\n");
    let mut world = world(SessionConfig::default(), TargetConfig::default());
    world.play(&client);
    world.run_for(ms(100));
    world.play(&late);
    run_to_end(&mut world);

    assert_eq!(world.count(Event::LateClientDataDropped { bytes: 5 }), 1);
    assert_eq!(world.target.stream, b"GET /\n");
    assert_ends_with_rst(&world);
}

#[test]
fn abort_resets_an_open_session_and_finishes_it() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack().send(b"GET / HTTP/1.1\n");
    let mut world = world(SessionConfig::default(), TargetConfig::default());
    world.play(&client);
    world.run_for(ms(500));
    assert!(!world.session.is_finished());

    let mut out = RecordingOutput::default();
    assert!(world.session.abort(world.now, &mut out), "it was open");
    assert!(world.session.is_finished());
    assert_eq!(world.session.poll_timeout(), None);
    let (reset, _) = out.transmits.last().expect("an RST");
    assert!(reset.flags.rst(), "{reset}");

    assert_eq!(out.count(Event::Aborted), 1, "{:?}", out.events);
    world.events.extend(out.events);
    assert_each_opened_session_ended_once(&world);

    // Aborting again sends nothing more.
    let mut again = RecordingOutput::default();
    assert!(!world.session.abort(world.now, &mut again));
    assert!(again.transmits.is_empty() && again.events.is_empty());
}

#[test]
fn aborting_an_ended_session_ends_nothing_more() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack().send(b"GET /\n").receive(300).fin();
    let mut world = world(SessionConfig::default(), TargetConfig::default());
    world.play(&client);
    world.run_for(ms(500));
    assert_eq!(
        world.count(Event::Closed),
        1,
        "in TIME-WAIT: {:?}",
        world.events
    );
    let mut out = RecordingOutput::default();
    assert!(!world.session.abort(world.now, &mut out));
    assert_eq!(
        out.count(Event::Aborted),
        0,
        "it had ended: {:?}",
        out.events
    );
}

#[test]
fn a_new_syn_after_the_session_ended_is_no_port_reuse() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client.syn().ack().send(b"GET /old\n").receive(300).fin();
    let mut next = ClientScript::new(CLIENT_ISN + 5_000_000);
    next.syn().ack().send(b"GET /new\n").receive(300).fin();
    let mut world = world(SessionConfig::default(), TargetConfig::default());
    world.play(&client);
    world.run_for(ms(500));
    world.play(&next);
    run_to_end(&mut world);

    assert_eq!(
        world.count(Event::PortReused),
        0,
        "the old session had closed"
    );
    assert_eq!(world.count(Event::Opened { syn_seen: true }), 2);
    assert_eq!(world.count(Event::Closed), 2);
    assert_eq!(world.target.stream, b"GET /old\nGET /new\n");
}

#[test]
fn a_session_that_never_opens_is_skipped_when_idle() {
    let mut client = ClientScript::new(CLIENT_ISN);
    client.ack();
    let config = SessionConfig {
        idle_timeout: Duration::from_secs(5),
        ..SessionConfig::default()
    };
    let mut world = world(config, TargetConfig::default());
    world.play(&client);
    run_to_end(&mut world);

    assert_eq!(
        world.events,
        [Event::EmptySessionSkipped],
        "nothing was replayed"
    );
}

#[test]
fn a_syn_answered_by_rst_is_a_refused_handshake() {
    let config = Arc::new(SessionConfig::default());
    let start = Instant::now();
    let mut session = Session::new(config, start, client_addr(), target_addr());
    let mut out = RecordingOutput::default();
    let syn = Segment {
        src: client_addr(),
        dst: target_addr(),
        seq: SeqNum(CLIENT_ISN),
        ack: SeqNum(0),
        flags: TcpFlags::SYN,
        window: 65535,
        options: TcpOptions::default(),
        ip_id: 1,
        ttl: 64,
        payload_len: 0,
    };
    session.on_client(start, &syn, &[], &mut out);
    let refusal = Segment {
        src: target_addr(),
        dst: client_addr(),
        seq: SeqNum(0),
        ack: SeqNum(CLIENT_ISN + 1),
        flags: TcpFlags::RST | TcpFlags::ACK,
        window: 0,
        ..syn
    };
    session.on_reply(start + ms(1), &refusal, &mut out);
    assert_eq!(out.count(Event::HandshakeRefused), 1);
    assert_eq!(out.count(Event::ResetByTarget), 0);
    assert_eq!(
        out.transmits.len(),
        1,
        "nothing after the SYN: the target holds nothing"
    );
    session.on_timeout(start + Duration::from_secs(60), &mut out);
    assert!(session.is_finished());
}

mod keep_alive;

/// Found by the random sessions with lost replies: the target read a request whole and reset
/// the connection, and the ACK it sent before its RST was lost. Rebuilt from the last byte
/// acknowledged before, the session sent the request's tail again, and the target read a
/// second request. The RST's own ACK says what the target received.
#[test]
fn a_target_reset_acknowledges_what_the_target_read() {
    let mut client = ClientScript::new(0);
    let mut request = vec![b'a'; 17_520];
    request.push(b'\n');
    client.send(&request).receive(1).fin();
    let target = TargetConfig {
        response_len: 1,
        reset_on_request: Some(1),
        ..TargetConfig::default()
    };
    let net = NetConfig {
        loss_to_target: 2,
        reorder_to_target: 3,
        loss_to_engine: 8,
        seed: 390,
        ..NetConfig::default()
    };
    let mut world = World::new(SessionConfig::default(), target, net);
    world.play(&client);
    run_to_end(&mut world);
    assert_eq!(world.count(Event::ResetByTarget), 1, "{:?}", world.events);
    assert_stream_delivered(&world, &client);
    assert_eq!(world.target.requests, 1, "{:?}", world.events);
    // The client's FIN, held for the answer the target never sent, goes with the session:
    // no response timeout after it ended, only the account of its unanswered request.
    let after_end: Vec<&Event> = world
        .events
        .iter()
        .skip_while(|event| **event != Event::Closed)
        .skip(1)
        .collect();
    assert_eq!(
        after_end,
        [&Event::RequestUnanswered],
        "after the session ended: {:?}",
        world.events
    );
}

/// Found by the random sessions with lost and reordered replies: the target's RST with ACK
/// comes late, after a RST without ACK made the session rebuild, and acknowledges the rebuilt
/// connection's SYN (same 4-tuple, same byte numbers). Taken as a refusal, it ended the
/// session and discarded every request left.
#[test]
fn a_late_reset_of_the_old_connection_does_not_refuse_the_rebuilt_one() {
    let sizes = [2_920usize, 18_980, 7_300, 13_140, 18_980];
    let mut client = ClientScript::new(0);
    for (i, size) in sizes.iter().enumerate() {
        let mut request = vec![b'a' + i as u8; *size];
        request.push(b'\n');
        client.send(&request).receive(1);
    }
    client.fin();
    let config = SessionConfig {
        wait_for_response: false,
        ..SessionConfig::default()
    };
    let target = TargetConfig {
        response_len: 1,
        reset_on_request: Some(1),
        ..TargetConfig::default()
    };
    let net = NetConfig {
        loss_to_target: 12,
        loss_to_engine: 9,
        reorder_to_engine: 4,
        reply_delay: ms(1),
        seed: 108,
        ..NetConfig::default()
    };
    let mut world = World::new(config, target, net);
    world.play(&client);
    run_to_end(&mut world);
    assert_eq!(
        world.count(Event::HandshakeRefused),
        0,
        "{:?}",
        world.events
    );
    assert_eq!(world.count(Event::Closed), 1, "{:?}", world.events);
    assert!(world.target.requests >= sizes.len());
}

/// Found by the random sessions with reordered replies: the target resets the connection, its
/// RST with ACK and the ACK before it arrive late, behind RSTs without ACK, so the session
/// rebuilds from an older byte. The late ACK then arrives on the rebuilt connection, with the
/// old connection's sequence number: taken as news, it acknowledged a byte the new connection
/// never received, which was then never sent, and the session gave up (retransmit limit).
#[test]
fn a_late_ack_of_the_connection_a_rebuild_replaced_acknowledges_nothing() {
    let sizes = [11_680usize, 17_520, 16_060, 17_520];
    let mut client = ClientScript::new(0);
    for (i, size) in sizes.iter().enumerate() {
        let mut request = vec![b'a' + i as u8; *size];
        request.push(b'\n');
        client.send(&request).receive(1);
    }
    client.fin();
    let config = SessionConfig {
        wait_for_response: false,
        ..SessionConfig::default()
    };
    let target = TargetConfig {
        response_len: 1,
        reset_on_request: Some(1),
        ..TargetConfig::default()
    };
    let net = NetConfig {
        loss_to_target: 3,
        reorder_to_engine: 8,
        seed: 274,
        ..NetConfig::default()
    };
    let mut world = World::new(config, target, net);
    world.play(&client);
    run_to_end(&mut world);
    assert_eq!(world.count(Event::SessionRebuilt), 1, "{:?}", world.events);
    assert_eq!(world.count(Event::RetransmitLimit), 0, "{:?}", world.events);
    assert_eq!(world.count(Event::Closed), 1, "{:?}", world.events);
    assert_eq!(
        world.target.requests,
        sizes.len() + 1,
        "the request the target reset on came again"
    );
}

/// A copy killed mid-session leaves the target's connection open, expecting the client's next
/// byte. The next copy's session (mid-stream, its own SYN just before that byte) gets a
/// challenge ACK for it: it resets that connection at exactly its RCV.NXT and opens again on
/// the same 4-tuple; a second such answer moves it to another port.
#[test]
fn a_stale_replay_of_the_same_connection_is_reset_once() {
    let start = Instant::now();
    let mut session = Session::new(Arc::default(), start, client_addr(), target_addr());
    let mut out = RecordingOutput::default();
    let mut client = ClientScript::new(CLIENT_ISN);
    client.send(b"GET /next\n");
    let (_, data, payload) = &client.items[0];
    session.on_client(start, data, payload, &mut out);
    let (syn, _) = out.transmits[0].clone();
    assert!(
        syn.flags.syn() && syn.seq == SeqNum(CLIENT_ISN - 1),
        "{syn}"
    );
    let challenge = target_segment(0x7000_0000, CLIENT_ISN, TcpFlags::ACK, 502);
    out.clear();
    session.on_reply(start + ms(1), &challenge, &mut out);
    assert_eq!(out.count(Event::StaleConnectionReset), 1);
    let sent: Vec<_> = out
        .transmits
        .iter()
        .map(|(segment, _)| segment.clone())
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent[0].flags.rst() && sent[0].seq == SeqNum(CLIENT_ISN),
        "{}",
        sent[0]
    );
    assert!(
        sent[1].flags.syn() && sent[1].seq == SeqNum(CLIENT_ISN - 1),
        "{}",
        sent[1]
    );
    out.clear();
    session.on_reply(start + ms(2), &challenge, &mut out);
    assert_eq!(out.count(Event::StaleConnectionReset), 0);
    assert_eq!(out.count(Event::PortInUse), 1);
    assert!(session.port_in_use());
}
