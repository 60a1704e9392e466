//! Reading frames from one capture file (`copy --offline FILE`), pcap or pcapng: libpcap
//! tells the two apart by their magic number and reads both (a pcapng file whose interfaces
//! all have one link type; libpcap refuses one that mixes link types).
//!
//! A record cut short at the end of the file, which is what a tcpdump killed mid-write
//! leaves, ends the file with a warning instead of failing the replay.

use std::fs::File;
use std::io::Seek;
use std::os::fd::IntoRawFd;
use std::path::Path;

use anyhow::{Context, Result};
use pcap::{Capture, Offline};

use super::Frame;

/// A capture file read from start to end.
pub struct FileCapture {
    capture: Capture<Offline>,
    /// A duplicate of the descriptor libpcap reads, sharing its file offset: how far the
    /// file has been read (ahead by libpcap's read buffer).
    offset: File,
    size: u64,
    name: String,
    ended: bool,
}

impl FileCapture {
    /// Opens `path`; `filter`, when given, is applied as a BPF filter while reading.
    pub fn open(path: &Path, filter: Option<&str>) -> Result<FileCapture> {
        let name = path.display().to_string();
        let file = File::open(path).with_context(|| format!("cannot read capture file {name}"))?;
        let size = file
            .metadata()
            .with_context(|| format!("cannot read the size of {name}"))?
            .len();
        let offset = file
            .try_clone()
            .with_context(|| format!("cannot duplicate the descriptor of {name}"))?;
        // SAFETY: the descriptor is ours and handed over: libpcap owns and closes it.
        let capture = unsafe { Capture::from_raw_fd(file.into_raw_fd()) }
            .with_context(|| format!("cannot read {name} as a pcap or pcapng file"))?;
        let mut capture = FileCapture {
            capture,
            offset,
            size,
            name,
            ended: false,
        };
        if let Some(filter) = filter {
            capture
                .capture
                .filter(filter, true)
                .with_context(|| format!("bad capture filter: {filter}"))?;
        }
        Ok(capture)
    }

    /// The pcap data link type (DLT) of every frame of the file.
    pub fn datalink(&self) -> i32 {
        self.capture.get_datalink().0
    }

    /// The next frame, or `None` at the end of the file (or at a record cut short there).
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>> {
        if self.ended {
            return Ok(None);
        }
        match self.capture.next_packet() {
            Ok(packet) => Ok(Some(Frame::from_pcap(packet))),
            Err(pcap::Error::NoMorePackets) => {
                self.ended = true;
                Ok(None)
            }
            Err(pcap::Error::PcapError(message)) if is_truncation(&message) => {
                log::warn!(
                    "{}: the last record is cut short ({message}); the file ends there",
                    self.name
                );
                self.ended = true;
                Ok(None)
            }
            Err(err) => Err(err).with_context(|| format!("reading {} failed", self.name)),
        }
    }

    /// Bytes of the file read so far (all of it once it has ended).
    pub fn bytes_read(&self) -> u64 {
        if self.ended {
            return self.size;
        }
        (&self.offset)
            .stream_position()
            .map_or(0, |at| at.min(self.size))
    }

    /// The size of the file in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The file's name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Whether a libpcap read error says the file ended inside a record: "truncated dump file;
/// tried to read N captured bytes, only got M" (pcap), "truncated pcapng dump file; ..."
/// (pcapng).
fn is_truncation(message: &str) -> bool {
    message.starts_with("truncated ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::testing::{TempFile, pcap_bytes, pcapng_bytes};

    const DLT_RAW: u32 = 101;

    fn frames(capture: &mut FileCapture) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(frame) = capture.next_frame().unwrap() {
            out.push((frame.timestamp.as_micros() as u64, frame.data.to_vec()));
        }
        out
    }

    #[test]
    fn reads_pcap_and_pcapng_alike() {
        let records = [(1_000_000, vec![0x45; 40]), (1_500_000, vec![0x45; 60])];
        for (kind, bytes) in [
            ("pcap", pcap_bytes(DLT_RAW, &records)),
            ("pcapng", pcapng_bytes(DLT_RAW, &records)),
        ] {
            let file = TempFile::with_bytes(&format!("read.{kind}"), &bytes);
            let mut capture = FileCapture::open(file.path(), None).unwrap();
            assert_eq!(capture.datalink(), 12, "{kind}: DLT_RAW");
            assert_eq!(frames(&mut capture), records, "{kind}");
            assert_eq!(capture.bytes_read(), bytes.len() as u64);
            assert!(capture.next_frame().unwrap().is_none());
        }
    }

    #[test]
    fn a_record_cut_short_ends_the_file() {
        let records = [(1_000_000, vec![0x45; 40]), (2_000_000, vec![0x45; 40])];
        for (kind, bytes) in [
            ("pcap", pcap_bytes(DLT_RAW, &records)),
            ("pcapng", pcapng_bytes(DLT_RAW, &records)),
        ] {
            for cut in [1, 10, 30] {
                let file =
                    TempFile::with_bytes(&format!("cut{cut}.{kind}"), &bytes[..bytes.len() - cut]);
                let mut capture = FileCapture::open(file.path(), None).unwrap();
                assert_eq!(frames(&mut capture), records[..1], "{kind} cut by {cut}");
            }
        }
    }

    #[test]
    fn errors_name_the_file() {
        let err = FileCapture::open(Path::new("/nonexistent/x.pcap"), None)
            .err()
            .unwrap();
        assert!(
            format!("{err:#}").contains("/nonexistent/x.pcap"),
            "{err:#}"
        );
        let file = TempFile::with_bytes("garbage.pcap", b"not a capture file at all");
        let err = FileCapture::open(file.path(), None).err().unwrap();
        assert!(
            format!("{err:#}").contains("garbage.pcap") && format!("{err:#}").contains("pcapng"),
            "{err:#}"
        );
    }
}
