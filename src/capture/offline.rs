//! Reading frames from a pcap file (`copy --offline FILE`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pcap::{Capture, Offline};

use super::{Frame, Next, PacketSource, SourceStats};

/// A pcap file read from start to end.
pub struct FileCapture {
    capture: Capture<Offline>,
    name: String,
}

impl FileCapture {
    /// Opens `path`; `filter`, when given, is applied as a BPF filter while reading.
    pub fn open(path: &Path, filter: Option<&str>) -> Result<FileCapture> {
        let mut capture = Capture::from_file(path)
            .with_context(|| format!("cannot read pcap file {}", path.display()))?;
        if let Some(filter) = filter {
            capture
                .filter(filter, true)
                .with_context(|| format!("bad capture filter: {filter}"))?;
        }
        Ok(FileCapture {
            capture,
            name: PathBuf::from(path).display().to_string(),
        })
    }
}

impl PacketSource for FileCapture {
    fn datalink(&self) -> i32 {
        self.capture.get_datalink().0
    }

    fn next_frame(&mut self) -> Result<Next<'_>> {
        let name = &self.name;
        match self.capture.next_packet() {
            Ok(packet) => Ok(Next::Frame(Frame::from_pcap(packet))),
            Err(pcap::Error::NoMorePackets) => Ok(Next::End),
            Err(err) => Err(err).with_context(|| format!("reading {name} failed")),
        }
    }

    fn stats(&mut self) -> SourceStats {
        SourceStats::default()
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn poll_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }

    /// libpcap's largest snap length (MAXIMUM_SNAPLEN): a file's records are no longer.
    fn max_frame_len(&self) -> usize {
        262_144
    }
}
