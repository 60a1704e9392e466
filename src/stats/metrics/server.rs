//! [`MetricsServer`]: a thread that answers scrapes on one listening socket, one connection
//! at a time (scrapes are rare and small), until dropped.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{Context, Result};
use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
use prometheus_client::registry::Registry;

use super::{Exposition, http, render};

/// How often the idle listener looks at the stop flag.
const IDLE_POLL: Duration = Duration::from_millis(50);
/// How long a scraper may take to send its request and read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves `GET /metrics` until dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Listens on `addr` (`--metrics`) and serves `exposition` from a thread of its own.
    pub fn start(addr: SocketAddr, exposition: Exposition) -> Result<MetricsServer> {
        let listener = TcpListener::bind(addr)
            .with_context(|| format!("cannot listen on --metrics {addr}"))?;
        listener
            .set_nonblocking(true)
            .context("cannot make the metrics listener non-blocking")?;
        let addr = listener
            .local_addr()
            .context("reading the metrics address")?;
        let registry = exposition.into_registry();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serve(&listener, &registry, &stopped))
            .context("cannot start the metrics thread")?;
        log::info!("serving metrics on http://{addr}/metrics");
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on (the port chosen if `--metrics` gave 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: &TcpListener, registry: &Registry, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(err) = answer(stream, registry) {
                    log::debug!("metrics: scrape from {peer}: {err:#}");
                }
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => thread::sleep(IDLE_POLL),
            Err(err) => {
                log::warn!("metrics: accept failed: {err}");
                thread::sleep(IDLE_POLL);
            }
        }
    }
}

/// Reads one request head from `stream` and answers it.
fn answer(mut stream: TcpStream, registry: &Registry) -> Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !http::head_complete(&head) && head.len() <= http::MAX_HEAD {
        let read = stream.read(&mut chunk).context("reading the request")?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..read]);
    }
    let response = http::respond(&head, CONTENT_TYPE, || render(registry));
    stream.write_all(&response).context("writing the response")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Counter, Counters};

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    #[test]
    fn serves_scrapes_on_loopback_until_dropped() {
        let counters = Arc::new(Counters::default());
        counters.add(Counter::RepliesRouted, 3);
        let exposition = Exposition::new(
            "intercept",
            Arc::clone(&counters),
            &[Counter::RepliesRouted],
            Box::new(Vec::new),
        );
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), exposition).unwrap();
        let addr = server.addr();
        let scrape = get(addr, "/metrics");
        assert!(scrape.starts_with("HTTP/1.1 200 OK\r\n"), "{scrape}");
        assert!(
            scrape.contains(&format!("Content-Type: {CONTENT_TYPE}\r\n")),
            "{scrape}"
        );
        assert!(
            scrape.contains("tcpcopy_replies_routed_total{role=\"intercept\"} 3\n"),
            "{scrape}"
        );
        counters.add(Counter::RepliesRouted, 1);
        assert!(
            get(addr, "/metrics").contains("tcpcopy_replies_routed_total{role=\"intercept\"} 4\n")
        );
        assert!(get(addr, "/").starts_with("HTTP/1.1 404"));
        drop(server);
        assert!(
            TcpStream::connect(addr).is_err(),
            "nothing listens after the drop"
        );
    }

    #[test]
    fn an_address_in_use_names_the_flag() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let exposition = Exposition::new("copy", Arc::default(), &[], Box::new(Vec::new));
        let err = format!("{:#}", MetricsServer::start(addr, exposition).unwrap_err());
        assert!(err.contains(&format!("--metrics {addr}")), "{err}");
    }
}
