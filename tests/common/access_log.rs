//! nginx's access log as records: one [`AccessEntry`] per request, in the `replay` format
//! that `scripts/lab.sh nginx` configures (`ADDR:PORT METHOD URI STATUS REQUEST_LENGTH
//! BYTES_SENT`).

use std::fs;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result, bail};

use super::servers::Nginx;

/// One request as nginx logged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessEntry {
    /// The client address and port the request came from.
    pub client: SocketAddr,
    /// `GET`, `POST`, ...
    pub method: String,
    /// The normalized request path.
    pub uri: String,
    /// The response status.
    pub status: u16,
    /// Bytes of the request: request line, headers and body.
    pub request_length: u64,
    /// Bytes of the response: status line, headers and body.
    pub bytes_sent: u64,
}

impl AccessEntry {
    /// Parses one line of the `replay` log format.
    pub fn parse(line: &str) -> Result<AccessEntry> {
        let fields: Vec<&str> = line.split(' ').collect();
        let [client, method, uri, status, request_length, bytes_sent] = fields.as_slice() else {
            bail!("access log line {line:?} does not have 6 fields");
        };
        let context = || format!("access log line {line:?}");
        Ok(AccessEntry {
            client: parse_client(client).with_context(context)?,
            method: (*method).to_owned(),
            uri: (*uri).to_owned(),
            status: status.parse().with_context(context)?,
            request_length: request_length.parse().with_context(context)?,
            bytes_sent: bytes_sent.parse().with_context(context)?,
        })
    }
}

/// nginx's `$remote_addr:$remote_port`: an IPv6 address comes without brackets.
fn parse_client(text: &str) -> Result<SocketAddr> {
    let (ip, port) = text
        .rsplit_once(':')
        .with_context(|| format!("{text:?} is not ADDR:PORT"))?;
    let ip: IpAddr = ip.parse().with_context(|| format!("address in {text:?}"))?;
    Ok(SocketAddr::new(
        ip,
        port.parse().with_context(|| format!("port in {text:?}"))?,
    ))
}

impl Nginx {
    /// Every request nginx has logged so far, in log order.
    pub fn access_entries(&self) -> Result<Vec<AccessEntry>> {
        let path = self.access_log_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        };
        text.lines().map(AccessEntry::parse).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_replay_line() {
        let entry = AccessEntry::parse("203.0.113.7:40112 POST /upload 200 1048734 154").unwrap();
        assert_eq!(entry.client, "203.0.113.7:40112".parse().unwrap());
        assert_eq!(
            (entry.method.as_str(), entry.uri.as_str()),
            ("POST", "/upload")
        );
        assert_eq!(
            (entry.status, entry.request_length, entry.bytes_sent),
            (200, 1_048_734, 154)
        );
        assert!(AccessEntry::parse("198.51.100.10 - - [date] \"GET / HTTP/1.1\" 200 3").is_err());
    }
}
