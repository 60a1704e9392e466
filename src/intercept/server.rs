//! The control server: accepts copy connections, learns their flows, and streams the reply
//! headers the hub routes to them.
//!
//! Each connection has a reader (hello, then registrations) and a writer (batches replies into
//! frames of the negotiated version). A slow connection only loses its own replies.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::hub::{Hub, PAYLOAD_PREFIX, Reply};
use crate::proto::{self, CopyMessage, CopyStreamDecoder, ReplyBatch, V6Layout, Version};

/// How often blocked threads look at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);
/// How long a new connection has to send its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts copy connections on `listener` until `stop`.
pub fn serve(listener: TcpListener, hub: Arc<Hub>, stop: Arc<AtomicBool>) -> Result<()> {
    listener
        .set_nonblocking(true)
        .context("cannot make the control listener non-blocking")?;
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
                let (hub, stop) = (Arc::clone(&hub), Arc::clone(&stop));
                thread::Builder::new()
                    .name(format!("copy-{peer}").chars().take(15).collect())
                    .spawn(move || match handle_connection(stream, peer, &hub, &stop) {
                        Ok(()) => log::info!("copy {peer} disconnected"),
                        Err(err) => log::warn!("copy {peer}: {err:#}"),
                    })
                    .context("cannot start a connection thread")?;
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => thread::sleep(STOP_CHECK / 4),
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => {
                log::warn!("accepting a copy connection failed: {err}");
                thread::sleep(STOP_CHECK);
            }
        }
    }
    Ok(())
}

fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    hub: &Hub,
    stop: &AtomicBool,
) -> Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    let mut decoder = CopyStreamDecoder::new(Version::LATEST);
    let mut reader = &stream;
    let version = read_hello(&mut reader, &mut decoder, stop)?;
    log::info!(
        "copy {peer} connected, protocol version {}",
        version.number()
    );
    let (conn, replies) = hub.connect();
    let done = AtomicBool::new(false);
    let result = thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let result = write_replies(&stream, version, &replies, stop, &done);
            // The hub may have closed this connection's queue (a stuck peer): end the reader too.
            let _ = stream.shutdown(std::net::Shutdown::Both);
            result
        });
        let read_result = read_registrations(&mut reader, &mut decoder, conn, hub, stop);
        done.store(true, Ordering::Relaxed);
        let write_result = writer
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("writer panicked")));
        read_result.and(write_result)
    });
    hub.disconnect(conn);
    result
}

fn read_hello(
    reader: &mut &TcpStream,
    decoder: &mut CopyStreamDecoder,
    stop: &AtomicBool,
) -> Result<Version> {
    reader.set_read_timeout(Some(HELLO_TIMEOUT))?;
    let mut buffer = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        if let Some(message) = decoder.next_message().context("bad hello")? {
            return match message {
                CopyMessage::Hello { version, .. } => Ok(version),
                other => Err(anyhow::anyhow!("expected a hello, got {other:?}")),
            };
        }
        let n = reader.read(&mut buffer).context("no hello")?;
        if n == 0 {
            anyhow::bail!("closed before its hello");
        }
        decoder.feed(&buffer[..n]);
    }
    anyhow::bail!("stopping")
}

fn read_registrations(
    reader: &mut &TcpStream,
    decoder: &mut CopyStreamDecoder,
    conn: super::router::ConnId,
    hub: &Hub,
    stop: &AtomicBool,
) -> Result<()> {
    reader.set_read_timeout(Some(STOP_CHECK))?;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        while let Some(message) = decoder.next_message().context("bad data from copy")? {
            match message {
                CopyMessage::Registration(registration) => match registration.kind {
                    proto::RegKind::Add => {
                        hub.register(conn, registration.client, registration.target)
                    }
                    proto::RegKind::Del => hub.unregister(registration.client, registration.target),
                },
                CopyMessage::Hello { .. } => log::debug!("ignoring a repeated hello"),
                CopyMessage::Unknown { frame_type, .. } => {
                    log::debug!("skipping a frame of unknown type {frame_type}");
                }
            }
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        match reader.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => decoder.feed(&buffer[..n]),
            Err(err)
                if matches!(
                    err.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(err) => return Err(err).context("reading from copy failed"),
        }
    }
}

/// Replies per write, at most (a v6 combined frame carries up to 16: several frames then).
const BATCH: usize = 256;

fn write_replies(
    mut stream: &TcpStream,
    version: Version,
    replies: &Receiver<Reply>,
    stop: &AtomicBool,
    done: &AtomicBool,
) -> Result<()> {
    let mut buffer = Vec::with_capacity(64 * 1024);
    let mut batch = match version {
        Version::V6 => ReplyBatch::v6(V6Layout::Headers),
        Version::V7 => {
            proto::encode_switch(&mut buffer);
            stream
                .write_all(&buffer)
                .context("sending the version switch failed")?;
            ReplyBatch::v7(PAYLOAD_PREFIX)
        }
    };
    while !stop.load(Ordering::Relaxed) && !done.load(Ordering::Relaxed) {
        let first = match replies.recv_timeout(STOP_CHECK) {
            Ok(reply) => reply,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        buffer.clear();
        for reply in std::iter::once(first).chain(replies.try_iter().take(BATCH - 1)) {
            if batch.is_full() {
                batch.flush_into(&mut buffer);
            }
            if let Err(err) = batch.push(&reply.packet, reply.timestamp_us) {
                log::debug!(
                    "cannot forward a reply in version {}: {err}",
                    version.number()
                );
            }
        }
        batch.flush_into(&mut buffer);
        stream
            .write_all(&buffer)
            .context("sending replies failed")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{self, Segment, SeqNum, TcpFlags, TcpOptions};
    use crate::stats::Counters;

    /// A SYN-ACK from the target 10.77.1.3:8080 to the copy's client 10.77.9.1:52302.
    fn syn_ack() -> (Vec<u8>, Segment) {
        let segment = Segment {
            src: "10.77.1.3:8080".parse().unwrap(),
            dst: "10.77.9.1:52302".parse().unwrap(),
            seq: SeqNum(0x1234),
            ack: SeqNum(0x5678),
            flags: TcpFlags::SYN | TcpFlags::ACK,
            window: 65160,
            options: TcpOptions {
                mss: Some(1460),
                ..TcpOptions::default()
            },
            ip_id: 0,
            ttl: 64,
            payload_len: 0,
        };
        let mut bytes = Vec::new();
        packet::emit_ip(&segment, &[], &mut bytes).unwrap();
        (bytes, segment)
    }

    fn start_server() -> (SocketAddr, Arc<Hub>, Arc<AtomicBool>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hub = Arc::new(Hub::new(Arc::new(Counters::default())));
        let stop = Arc::new(AtomicBool::new(false));
        let (server_hub, server_stop) = (Arc::clone(&hub), Arc::clone(&stop));
        thread::spawn(move || serve(listener, server_hub, server_stop));
        (addr, hub, stop)
    }

    fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
        let mut bytes = vec![0; len];
        stream.read_exact(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn a_tcpcopy_1x_client_gets_version_6_combined_frames() {
        let (addr, hub, stop) = start_server();
        let mut copy = TcpStream::connect(addr).unwrap();
        copy.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // The bytes TCPCopy 1.3 sends: the hello, then CLIENT_ADD for 10.77.9.1:52302 → 10.77.1.3:8080.
        copy.write_all(&[0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0])
            .unwrap();
        copy.write_all(&[
            0x0a, 0x4d, 0x09, 0x01, 0xcc, 0x4e, 0, 1, 0x0a, 0x4d, 0x01, 0x03, 0x1f, 0x90,
        ])
        .unwrap();
        let (bytes, segment) = syn_ack();
        // The SYN-ACK may arrive before the registration is read: it is parked, then sent.
        hub.on_reply(&bytes, &segment);

        let frame = read_exactly(&mut copy, 2 + 64);
        assert_eq!(&frame[..2], &[0, 1], "a combined frame of one message");
        assert_eq!(&frame[2..22], &bytes[..20], "the IPv4 header as captured");
        assert_eq!(
            &frame[22..22 + 24],
            &bytes[20..44],
            "the TCP header with its options"
        );
        assert!(
            frame[46..].iter().all(|&b| b == 0),
            "zero padding to 64 bytes"
        );
        stop.store(true, Ordering::Relaxed);
    }

    #[test]
    fn our_copy_is_answered_with_the_version_switch() {
        let (addr, _hub, stop) = start_server();
        let mut copy = TcpStream::connect(addr).unwrap();
        copy.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut hello = Vec::new();
        proto::encode_hello(Version::V7, &mut hello);
        copy.write_all(&hello).unwrap();
        let mut switch = Vec::new();
        proto::encode_switch(&mut switch);
        assert_eq!(read_exactly(&mut copy, switch.len()), switch);
        stop.store(true, Ordering::Relaxed);
    }
}
