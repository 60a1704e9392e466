//! Bounded TCP clients, run inside a lab host (through `Lab::http_load` and `Lab::line_exchange`): an
//! HTTP/1.1 load of a fixed number of GET requests, and a one-line request/response exchange
//! for memcached and redis. Every socket operation has a timeout, so a client always ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// How many failure messages a [`LoadReport`] keeps.
const KEPT_ERRORS: usize = 5;

/// How the requests of a load use connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connections {
    /// One connection per request (`Connection: close`).
    Short,
    /// Requests share one connection; a new one is opened only after a failure.
    KeepAlive,
}

/// The outcome of a load: deterministic counts, not rates.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Requests answered with status 200 and a complete body.
    pub ok: usize,
    /// Requests that failed (connect, I/O, timeout or a status other than 200).
    pub failed: usize,
    /// The first few failures, for the test's message.
    pub errors: Vec<String>,
}

impl LoadReport {
    /// Panics, naming `what` and the first failures, unless exactly `expected` requests
    /// succeeded and none failed.
    pub fn assert_all_ok(&self, expected: usize, what: &str) {
        assert_eq!(
            (self.ok, self.failed),
            (expected, 0),
            "{what}: {:?}",
            self.errors
        );
    }

    /// Counts one request's outcome.
    pub(super) fn record(&mut self, outcome: Result<()>) {
        match outcome {
            Ok(()) => self.ok += 1,
            Err(err) => {
                self.failed += 1;
                if self.errors.len() < KEPT_ERRORS {
                    self.errors.push(format!("{err:#}"));
                }
            }
        }
    }

    /// Adds `other`'s counts (and as many of its errors as are still kept) to this report.
    pub(super) fn absorb(&mut self, other: LoadReport) {
        self.ok += other.ok;
        self.failed += other.failed;
        let room = KEPT_ERRORS.saturating_sub(self.errors.len());
        self.errors.extend(other.errors.into_iter().take(room));
    }
}

/// Sends `requests` GET requests to `addr`, each bounded by `timeout` per socket operation.
pub fn http_load(
    addr: SocketAddr,
    requests: usize,
    connections: Connections,
    timeout: Duration,
) -> LoadReport {
    let mut report = LoadReport::default();
    let mut open: Option<BufReader<TcpStream>> = None;
    for _ in 0..requests {
        let outcome = (|| {
            let stream = match open.take() {
                Some(stream) => stream,
                None => BufReader::new(connect(addr, timeout)?),
            };
            let stream = http_get(stream, addr, connections)?;
            if connections == Connections::KeepAlive {
                open = Some(stream);
            }
            Ok(())
        })();
        report.record(outcome);
    }
    report
}

/// Connects to `addr`, sends `request` and returns the first line of the answer, without its
/// line ending.
pub fn line_exchange(addr: SocketAddr, request: &[u8], timeout: Duration) -> Result<String> {
    let mut stream = BufReader::new(connect(addr, timeout)?);
    stream
        .get_mut()
        .write_all(request)
        .with_context(|| format!("sending to {addr}"))?;
    let mut line = String::new();
    stream
        .read_line(&mut line)
        .with_context(|| format!("reading from {addr}"))?;
    Ok(line.trim_end().to_owned())
}

/// Connects to `addr`; `timeout` bounds the connect and every later read and write.
pub(super) fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

/// Sends one GET and reads the whole response (status line, headers, `Content-Length` body).
pub(super) fn http_get(
    mut stream: BufReader<TcpStream>,
    addr: SocketAddr,
    connections: Connections,
) -> Result<BufReader<TcpStream>> {
    let connection = match connections {
        Connections::Short => "close",
        Connections::KeepAlive => "keep-alive",
    };
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: {connection}\r\n\r\n");
    stream
        .get_mut()
        .write_all(request.as_bytes())
        .context("sending request")?;

    super::http::read_response(&mut stream)?;
    Ok(stream)
}
