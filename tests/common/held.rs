//! A keep-alive HTTP connection held open across the phases of a test (e.g. across a fault),
//! so requests before and after share one TCP connection, as a long-lived client's do.

use std::io::BufReader;
use std::net::{SocketAddrV4, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result};

use super::client::{self, Connections, LoadReport};
use super::host::Host;
use super::lab::Lab;

/// Per-operation socket timeout of the held connection.
const TIMEOUT: Duration = Duration::from_secs(2);

/// One open keep-alive HTTP connection. A socket stays in the network namespace it was made
/// in, so it is used from any thread once opened inside its host.
#[derive(Debug)]
pub struct HeldHttp {
    addr: SocketAddrV4,
    stream: Option<BufReader<TcpStream>>,
}

impl HeldHttp {
    /// Sends `requests` GETs on this connection, one after the other. After a failure the
    /// connection is gone and every later request fails too: a held connection is never
    /// silently replaced by a new one.
    pub fn get(&mut self, requests: usize) -> LoadReport {
        let mut report = LoadReport::default();
        for _ in 0..requests {
            let outcome = match self.stream.take() {
                Some(stream) => client::http_get(stream, self.addr.into(), Connections::KeepAlive)
                    .map(|stream| self.stream = Some(stream)),
                None => Err(anyhow::anyhow!(
                    "the held connection to {} is gone",
                    self.addr
                )),
            };
            report.record(outcome);
        }
        report
    }
}

impl Lab {
    /// Opens a keep-alive HTTP connection from `from` to `to` and keeps it for [`HeldHttp::get`].
    pub fn hold_http(&self, from: Host, to: SocketAddrV4) -> Result<HeldHttp> {
        let stream = self
            .in_host(from, || client::connect(to.into(), TIMEOUT))
            .with_context(|| format!("holding a connection from {from} to {to}"))?;
        Ok(HeldHttp {
            addr: to,
            stream: Some(BufReader::new(stream)),
        })
    }
}
