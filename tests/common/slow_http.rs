//! A deliberately slow HTTP/1.1 server for comparison tests: it listens on a lab host's
//! address and answers every request with `200 ok` after sleeping a fixed delay, over
//! keep-alive connections. The listener is made inside the host's namespace (a socket
//! stays in the namespace it was made in) and served from the test process; it stops
//! when dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{Context, Result};

use super::host::Host;
use super::lab::Lab;

/// How long a connection may stay idle before the server drops it.
const IDLE: Duration = Duration::from_secs(10);
/// How often the accept loop looks at its stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(20);
/// The whole response.
const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n";

/// The running server.
pub struct SlowHttp {
    served: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl SlowHttp {
    /// Requests answered so far.
    pub fn served(&self) -> usize {
        self.served.load(Ordering::Relaxed)
    }
}

impl Lab {
    /// Starts a [`SlowHttp`] on `host`:`port` that sleeps `delay` before each answer.
    pub fn start_slow_http(&self, host: Host, port: u16, delay: Duration) -> Result<SlowHttp> {
        let addr = host.socket(port);
        let listener = self.in_host(host, || {
            TcpListener::bind(addr).with_context(|| format!("binding {addr}"))
        })?;
        listener.set_nonblocking(true)?;
        let served = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (accept_served, accept_stop) = (Arc::clone(&served), Arc::clone(&stop));
        let accept = thread::spawn(move || {
            while !accept_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (served, stop) = (Arc::clone(&accept_served), Arc::clone(&accept_stop));
                        thread::spawn(move || serve(stream, delay, &served, &stop));
                    }
                    Err(_) => thread::sleep(ACCEPT_POLL),
                }
            }
        });
        eprintln!("e2e: slow HTTP server on {addr}, {delay:?} per answer");
        Ok(SlowHttp {
            served,
            stop,
            accept: Some(accept),
        })
    }
}

/// Answers the requests of one connection until it closes, idles or the server stops.
fn serve(stream: TcpStream, delay: Duration, served: &AtomicUsize, stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(IDLE));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        // The request line and headers, up to the blank line (GETs: no body).
        let mut head_lines = 0;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" || line == "\n" => break,
                Ok(_) => head_lines += 1,
            }
        }
        if head_lines == 0 {
            continue;
        }
        thread::sleep(delay);
        if writer.write_all(RESPONSE).is_err() {
            return;
        }
        served.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for SlowHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}
