//! Fetching one `/metrics` endpoint: the `URL` syntax `stats live` takes ([`Endpoint`],
//! pure) and a bounded HTTP/1.1 GET (I/O).

use std::fmt;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// How long connecting, sending and reading may each take.
const TIMEOUT: Duration = Duration::from_secs(2);
/// The largest scrape read.
const MAX_RESPONSE: u64 = 4 << 20;

/// A `/metrics` endpoint: `[http://]HOST:PORT[/PATH]` (the path is `/metrics` by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `HOST:PORT`, as given.
    authority: String,
    path: String,
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Endpoint, String> {
        if text.starts_with("https://") {
            return Err(format!("`{text}`: only http:// endpoints can be scraped"));
        }
        let rest = text.strip_prefix("http://").unwrap_or(text);
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, "/metrics"),
        };
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !has_port {
            return Err(format!("`{text}` is not [http://]HOST:PORT[/PATH]"));
        }
        Ok(Endpoint {
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority, self.path)
    }
}

impl Endpoint {
    /// The body of a `GET` of the endpoint; fails unless it answers 200.
    pub fn fetch(&self) -> Result<String> {
        let addr = self
            .authority
            .to_socket_addrs()
            .with_context(|| format!("resolving {}", self.authority))?
            .next()
            .with_context(|| format!("{} has no address", self.authority))?;
        let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
            .with_context(|| format!("connecting to {self}"))?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.path, self.authority
        );
        stream
            .write_all(request.as_bytes())
            .with_context(|| format!("sending to {self}"))?;
        let mut response = String::new();
        stream
            .take(MAX_RESPONSE)
            .read_to_string(&mut response)
            .with_context(|| format!("reading {self}"))?;
        let Some((head, body)) = response.split_once("\r\n\r\n") else {
            bail!("{self} sent no HTTP response");
        };
        let status = head.lines().next().unwrap_or_default();
        if status.split(' ').nth(1) != Some("200") {
            bail!("{self} answered `{status}`");
        }
        Ok(body.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_default_to_the_metrics_path() {
        let endpoint: Endpoint = "127.0.0.1:9361".parse().unwrap();
        assert_eq!(endpoint.to_string(), "http://127.0.0.1:9361/metrics");
        let endpoint: Endpoint = "http://[::1]:9361/other".parse().unwrap();
        assert_eq!(endpoint.to_string(), "http://[::1]:9361/other");
        let endpoint: Endpoint = "http://copy-13:9361".parse().unwrap();
        assert_eq!(endpoint.to_string(), "http://copy-13:9361/metrics");
        for bad in [
            "9361",
            "http://host",
            ":9361",
            "host:port",
            "https://host:9361",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }

    #[test]
    fn fetches_a_body_and_refuses_other_statuses() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for answer in ["200 OK", "404 Not Found"] {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = Vec::new();
                let mut byte = [0u8];
                while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
                    request.push(byte[0]);
                }
                write!(stream, "HTTP/1.1 {answer}\r\nContent-Length: 3\r\n\r\nm 1").unwrap();
            }
        });
        let endpoint: Endpoint = addr.to_string().parse().unwrap();
        assert_eq!(endpoint.fetch().unwrap(), "m 1");
        let err = format!("{:#}", endpoint.fetch().unwrap_err());
        assert!(
            err.contains("404 Not Found") && err.contains(&addr.to_string()),
            "{err}"
        );
        server.join().unwrap();
    }
}
