//! Test fixtures: the byte sequences recorded between TCPCopy 1.3 and intercept 1.0, a
//! hand-built SYN-ACK, and a small builder of TCP/IP packets for property tests.
//! docs/protocol.md quotes the same hex.

use std::net::{IpAddr, SocketAddr};

use crate::packet::checksum::internet as internet_checksum;

/// The 1.x hello: zeros, type 6.
pub(crate) const HELLO_V6: [u8; 14] = [0, 0, 0, 0, 0, 0, 0x00, 0x06, 0, 0, 0, 0, 0, 0];

/// CLIENT_ADD for client 10.77.9.1:52302 → target 10.77.1.3:8080.
pub(crate) const CLIENT_ADD: [u8; 14] = [
    0x0a, 0x4d, 0x09, 0x01, 0xcc, 0x4e, 0x00, 0x01, 0x0a, 0x4d, 0x01, 0x03, 0x1f, 0x90,
];

/// The target's SYN-ACK to that client as captured: IPv4 (DF, TTL 64, real checksum 0x1c1f),
/// TCP seq 0x7a3c91e5 ack 0x3b2f1c09 window 65160 (checksum 0xee30) with Linux's options:
/// MSS 1460, SACK permitted, timestamps 0x5d1c3a07/0x0a2b4c11, NOP, window scale 7.
pub(crate) const SYN_ACK: [u8; 60] = [
    // IPv4 header
    0x45, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x1c, 0x1f, 0x0a, 0x4d, 0x01, 0x03,
    0x0a, 0x4d, 0x09, 0x01, //
    // TCP header
    0x1f, 0x90, 0xcc, 0x4e, 0x7a, 0x3c, 0x91, 0xe5, 0x3b, 0x2f, 0x1c, 0x09, 0xa0, 0x12, 0xfe, 0x88,
    0xee, 0x30, 0x00, 0x00, //
    // options
    0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x5d, 0x1c, 0x3a, 0x07, 0x0a, 0x2b, 0x4c, 0x11,
    0x01, 0x03, 0x03, 0x07,
];

/// A combined frame carrying the SYN-ACK: count 1, the 60 header bytes, 4 bytes of padding.
pub(crate) fn combined_syn_ack() -> Vec<u8> {
    let mut frame = vec![0x00, 0x01];
    frame.extend_from_slice(&SYN_ACK);
    frame.extend_from_slice(&[0; 4]);
    frame
}

pub(crate) fn client() -> SocketAddr {
    "10.77.9.1:52302".parse().unwrap()
}

pub(crate) fn target() -> SocketAddr {
    "10.77.1.3:8080".parse().unwrap()
}

/// A TCP/IP packet from `source` to `destination` (same family) with ACK|PSH set, `options`
/// zero-padded to a 4-byte boundary, and `payload`; IPv4 gets a valid header checksum.
pub(crate) fn tcp_packet(
    source: SocketAddr,
    destination: SocketAddr,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let options_len = options.len().next_multiple_of(4);
    let tcp_len = 20 + options_len;
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&source.port().to_be_bytes());
    tcp.extend_from_slice(&destination.port().to_be_bytes());
    tcp.extend_from_slice(&0x1122_3344u32.to_be_bytes());
    tcp.extend_from_slice(&0x5566_7788u32.to_be_bytes());
    tcp.extend_from_slice(&[
        ((tcp_len / 4) as u8) << 4,
        0x18,
        0xff,
        0xff,
        0xab,
        0xcd,
        0,
        0,
    ]);
    tcp.extend_from_slice(options);
    tcp.resize(tcp_len, 0);
    tcp.extend_from_slice(payload);

    let mut packet = Vec::new();
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let total = (20 + tcp.len()) as u16;
            packet.extend_from_slice(&[0x45, 0]);
            packet.extend_from_slice(&total.to_be_bytes());
            packet.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, 6, 0, 0]);
            packet.extend_from_slice(&src.octets());
            packet.extend_from_slice(&dst.octets());
            let checksum = internet_checksum(&packet);
            packet[10..12].copy_from_slice(&checksum.to_be_bytes());
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            packet.extend_from_slice(&[0x60, 0, 0, 0]);
            packet.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
            packet.extend_from_slice(&[6, 64]);
            packet.extend_from_slice(&src.octets());
            packet.extend_from_slice(&dst.octets());
        }
        _ => panic!("test packet with mixed address families"),
    }
    packet.extend_from_slice(&tcp);
    packet
}
