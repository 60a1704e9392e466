//! Live capture on a named device with libpcap.
//!
//! Immediate mode (the default buffered mode delays packets by 70–90 ms), inbound only,
//! non-blocking with `poll(2)` on the capture fd: libpcap's blocking mode never returns on
//! an idle interface, which would make shutdown hang.

use std::os::fd::AsRawFd;

use anyhow::{Context, Result};
use pcap::{Active, Capture, Direction};

use std::time::Duration;

use super::{Frame, Next, PacketSource, SourceStats};

/// Settings for a live capture.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub device: String,
    pub filter: String,
    /// Kernel capture buffer size in bytes.
    pub buffer_bytes: i32,
    pub snaplen: i32,
}

/// A live libpcap capture.
pub struct LiveCapture {
    capture: Capture<Active>,
    device: String,
}

impl LiveCapture {
    pub fn open(options: &LiveOptions) -> Result<LiveCapture> {
        let device = &options.device;
        let capture = Capture::from_device(device.as_str())
            .and_then(|c| {
                c.immediate_mode(true)
                    .promisc(false)
                    .snaplen(options.snaplen)
                    .buffer_size(options.buffer_bytes)
                    .open()
            })
            .map_err(pcap_error)
            .with_context(|| format!("cannot open capture on {device}"))?;
        let mut capture = capture
            .setnonblock()
            .with_context(|| format!("cannot make capture on {device} non-blocking"))?;
        capture
            .direction(Direction::In)
            .with_context(|| format!("cannot capture inbound packets only on {device}"))?;
        capture
            .filter(&options.filter, true)
            .with_context(|| format!("bad capture filter on {device}: {}", options.filter))?;
        log::info!("capturing on {device} with filter: {}", options.filter);
        Ok(LiveCapture {
            capture,
            device: device.clone(),
        })
    }
}

/// Waits until `fd` is readable or `timeout` passes.
fn wait_readable(fd: libc::c_int, timeout: Duration) -> std::io::Result<()> {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let timeout_ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, its count is 1.
    let ready = unsafe { libc::poll(&mut pollfd, 1, timeout_ms) };
    if ready < 0 {
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    Ok(())
}

/// Turns libpcap's permission message into one that names the missing capability.
fn pcap_error(err: pcap::Error) -> anyhow::Error {
    let text = err.to_string();
    if text.contains("ermission") || text.contains("not permitted") {
        anyhow::anyhow!("{text} (capture needs root or CAP_NET_RAW)")
    } else {
        anyhow::Error::new(err)
    }
}

impl PacketSource for LiveCapture {
    fn datalink(&self) -> i32 {
        self.capture.get_datalink().0
    }

    fn next_frame(&mut self) -> Result<Next<'_>> {
        let device = &self.device;
        match self.capture.next_packet() {
            Ok(packet) => Ok(Next::Frame(Frame::from_pcap(packet))),
            Err(pcap::Error::TimeoutExpired) => Ok(Next::Idle),
            Err(err) => Err(err).with_context(|| format!("capture on {device} failed")),
        }
    }

    fn wait(&mut self, timeout: Duration) -> Result<()> {
        wait_readable(self.capture.as_raw_fd(), timeout)
            .with_context(|| format!("poll on capture {}", self.device))
    }

    fn stats(&mut self) -> SourceStats {
        match self.capture.stats() {
            Ok(stat) => SourceStats {
                received: u64::from(stat.received),
                dropped: u64::from(stat.dropped) + u64::from(stat.if_dropped),
            },
            Err(_) => SourceStats::default(),
        }
    }

    fn name(&self) -> &str {
        &self.device
    }
}

impl AsRawFd for LiveCapture {
    /// The capture's descriptor, for callers that poll several sources in one loop.
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.capture.as_raw_fd()
    }
}
