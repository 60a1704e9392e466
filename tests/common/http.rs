//! An HTTP/1.1 client for the replication tests, run inside a lab host: connections a test
//! can hold open across the steps of a scenario, GET and POST with bodies of any size, every
//! response read whole and checked (status 200, `Content-Length` bytes of body); and the two
//! loads built on it (short connections, keep-alive connections taken in turn). Every socket
//! operation has a timeout, so a client always ends.
//!
//! The paths match the nginx that `scripts/lab.sh nginx` configures.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::client::LoadReport;

/// The static file nginx serves.
pub const BIG_FILE: &str = "/files/big.bin";
/// Its size in bytes (`NGINX_BIG_FILE_BYTES` in `scripts/lab.sh`).
pub const BIG_FILE_BYTES: u64 = 1_500_000;
/// The path where nginx reads (and logs the length of) the whole request body.
pub const UPLOAD: &str = "/upload";
/// Per-operation socket timeout: generous, as a 1 MB body may cross a busy two-core machine.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// One request the client sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpRequest {
    /// `GET path`.
    Get(&'static str),
    /// `POST path` with a body of `body_bytes` bytes.
    Post {
        /// The request target.
        path: &'static str,
        /// How many body bytes follow the headers.
        body_bytes: usize,
    },
}

impl HttpRequest {
    /// `GET /`: nginx answers `200 ok`.
    pub const ROOT: HttpRequest = HttpRequest::Get("/");

    /// The request line and headers, ending with the blank line.
    fn head(&self, server: SocketAddrV4, connection: &str) -> String {
        let (method, path, length) = match *self {
            HttpRequest::Get(path) => ("GET", path, String::new()),
            HttpRequest::Post { path, body_bytes } => (
                "POST",
                path,
                format!(
                    "Content-Type: application/octet-stream\r\nContent-Length: {body_bytes}\r\n"
                ),
            ),
        };
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {server}\r\nConnection: {connection}\r\n{length}\r\n"
        )
    }

    fn body_bytes(&self) -> usize {
        match *self {
            HttpRequest::Get(_) => 0,
            HttpRequest::Post { body_bytes, .. } => body_bytes,
        }
    }
}

/// An open HTTP/1.1 connection.
#[derive(Debug)]
pub struct HttpConnection {
    stream: BufReader<TcpStream>,
    server: SocketAddrV4,
    local: SocketAddrV4,
}

impl HttpConnection {
    /// Connects to `server` from the calling thread's network namespace.
    pub fn open(server: SocketAddrV4) -> Result<HttpConnection> {
        let stream = TcpStream::connect_timeout(&server.into(), HTTP_TIMEOUT)
            .with_context(|| format!("connecting to {server}"))?;
        stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
        stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
        let SocketAddr::V4(local) = stream.local_addr()? else {
            bail!("connection to {server} has a non-IPv4 local address");
        };
        Ok(HttpConnection {
            stream: BufReader::new(stream),
            server,
            local,
        })
    }

    /// The client's own address and port on this connection.
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.local
    }

    /// Sends `request` with `Connection: keep-alive` and reads the whole response; returns
    /// the length of its body.
    pub fn exchange(&mut self, request: &HttpRequest) -> Result<u64> {
        self.send(request, "keep-alive")
    }

    /// Sends `request` with `Connection: close`, reads the whole response and waits for the
    /// server to close (so the server, not the client, holds TIME-WAIT); returns the length
    /// of the body.
    pub fn exchange_and_close(mut self, request: &HttpRequest) -> Result<u64> {
        let body = self.send(request, "close")?;
        let mut rest = Vec::new();
        self.stream
            .read_to_end(&mut rest)
            .context("waiting for the server to close")?;
        if !rest.is_empty() {
            bail!("{} bytes after the response", rest.len());
        }
        Ok(body)
    }

    fn send(&mut self, request: &HttpRequest, connection: &str) -> Result<u64> {
        let stream = self.stream.get_mut();
        stream
            .write_all(request.head(self.server, connection).as_bytes())
            .context("sending request headers")?;
        io::copy(
            &mut io::repeat(b'x').take(request.body_bytes() as u64),
            stream,
        )
        .context("sending request body")?;
        read_response(&mut self.stream)
    }
}

/// Reads one response whose status must be 200: status line, headers, `Content-Length`
/// bytes of body (discarded). Returns the body length.
pub(super) fn read_response(stream: &mut BufReader<TcpStream>) -> Result<u64> {
    let mut status_line = String::new();
    stream
        .read_line(&mut status_line)
        .context("reading status line")?;
    if !status_line.starts_with("HTTP/1.1 200 ") {
        bail!("unexpected status line {:?}", status_line.trim_end());
    }
    let mut content_length = None;
    loop {
        let mut header = String::new();
        if stream.read_line(&mut header).context("reading headers")? == 0 {
            bail!("connection closed inside the headers");
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                content_length = Some(value.trim().parse::<u64>().context("bad content-length")?);
            }
        }
    }
    let Some(length) = content_length else {
        bail!("response without content-length");
    };
    let read = io::copy(&mut stream.take(length), &mut io::sink()).context("reading body")?;
    if read != length {
        bail!("body cut short: {read} of {length} bytes");
    }
    Ok(length)
}

/// Sends `requests` to `server` `rounds` times, each request on a new connection that the
/// server closes, one after another.
pub fn short_connections(
    server: SocketAddrV4,
    rounds: usize,
    requests: &[HttpRequest],
) -> LoadReport {
    let mut report = LoadReport::default();
    for request in (0..rounds).flat_map(|_| requests) {
        report.record(
            HttpConnection::open(server)
                .and_then(|connection| connection.exchange_and_close(request))
                .map(drop),
        );
    }
    report
}

/// Sends `requests` `rounds` times on every connection: each round takes the connections in
/// turn, so all stay open and in use together.
pub fn keep_alive_rounds(
    connections: &mut [HttpConnection],
    rounds: usize,
    requests: &[HttpRequest],
) -> LoadReport {
    let mut report = LoadReport::default();
    for _ in 0..rounds {
        for connection in connections.iter_mut() {
            for request in requests {
                report.record(connection.exchange(request).map(drop));
            }
        }
    }
    report
}

/// Opens `count` keep-alive connections to `server`.
pub fn open_connections(server: SocketAddrV4, count: usize) -> Result<Vec<HttpConnection>> {
    (0..count).map(|_| HttpConnection::open(server)).collect()
}
