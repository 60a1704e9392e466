//! Capture files for tests, written byte by byte: classic pcap and pcapng (one section, one
//! interface, enhanced packet blocks), and a temporary file that removes itself.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A file under the temporary directory, removed on drop.
pub struct TempFile(PathBuf);

impl TempFile {
    /// A new file named after `name` (made unique per process and call) holding `bytes`.
    pub fn with_bytes(name: &str, bytes: &[u8]) -> TempFile {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("tcpcopy-test-{}-{n}-{name}", std::process::id()));
        std::fs::write(&path, bytes).expect("writing a test capture file");
        TempFile(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A little-endian classic pcap file (microsecond timestamps) of link type `linktype`
/// holding `records` as (timestamp in µs, frame).
pub fn pcap_bytes(linktype: u32, records: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]); // thiszone, sigfigs
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&linktype.to_le_bytes());
    for (micros, frame) in records {
        let len = frame.len() as u32;
        out.extend_from_slice(&((micros / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(frame);
    }
    out
}

/// A little-endian pcapng file: a section header, one interface of link type `linktype`
/// (default microsecond resolution) and one enhanced packet block per record.
pub fn pcapng_bytes(linktype: u32, records: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut section = Vec::new();
    section.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    section.extend_from_slice(&1u16.to_le_bytes());
    section.extend_from_slice(&0u16.to_le_bytes());
    section.extend_from_slice(&(-1i64).to_le_bytes()); // section length unknown
    block(&mut out, 0x0a0d_0d0a, &section);
    let mut interface = Vec::new();
    interface.extend_from_slice(&(linktype as u16).to_le_bytes());
    interface.extend_from_slice(&0u16.to_le_bytes());
    interface.extend_from_slice(&65_535u32.to_le_bytes());
    block(&mut out, 1, &interface);
    for (micros, frame) in records {
        let mut packet = Vec::new();
        packet.extend_from_slice(&0u32.to_le_bytes()); // interface 0
        packet.extend_from_slice(&((micros >> 32) as u32).to_le_bytes());
        packet.extend_from_slice(&(*micros as u32).to_le_bytes());
        packet.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        packet.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        packet.extend_from_slice(frame);
        packet.resize(packet.len().next_multiple_of(4), 0);
        block(&mut out, 6, &packet);
    }
    out
}

/// One pcapng block: type, total length, body, total length again.
fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let total = (body.len() + 12) as u32;
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&total.to_le_bytes());
}
