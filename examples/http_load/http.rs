//! One HTTP/1.1 GET on a connection: send the request, read the status line, the headers and a
//! `Content-Length` body. Owns the wire format of the load and nothing about pacing or threads.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};

/// Why a request did not succeed.
#[derive(Debug)]
pub enum RequestError {
    /// Connecting, writing or reading failed (timeouts included).
    Io {
        during: &'static str,
        err: io::Error,
    },
    /// The server answered with a status other than 200.
    Status(String),
    /// The response ended or broke the grammar before the body was complete.
    Malformed(&'static str),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Io { during, err } => write!(f, "{during}: {err}"),
            RequestError::Status(line) => write!(f, "unexpected status line {line:?}"),
            RequestError::Malformed(what) => write!(f, "malformed response: {what}"),
        }
    }
}

impl std::error::Error for RequestError {}

fn io_error(during: &'static str) -> impl FnOnce(io::Error) -> RequestError {
    move |err| RequestError::Io { during, err }
}

/// The bytes of a GET for `/` to `host`, closing the connection after the answer or not.
pub fn request_bytes(host: &str, keep_alive: bool) -> Vec<u8> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: {connection}\r\n\r\n").into_bytes()
}

/// Sends `request` and reads one whole `200` response from `stream`; `line` is scratch space
/// reused across calls.
pub fn get<S: Read + Write>(
    stream: &mut BufReader<S>,
    request: &[u8],
    line: &mut Vec<u8>,
) -> Result<(), RequestError> {
    stream
        .get_mut()
        .write_all(request)
        .map_err(io_error("sending the request"))?;
    read_line(stream, line, "reading the status line")?;
    if !line.starts_with(b"HTTP/1.1 200 ") {
        return Err(RequestError::Status(
            String::from_utf8_lossy(line).trim_end().to_owned(),
        ));
    }
    let mut content_length = None;
    loop {
        read_line(stream, line, "reading the headers")?;
        let header = line.trim_ascii_end();
        if header.is_empty() {
            break;
        }
        if let Some(value) = header_value(header, b"content-length") {
            let length = std::str::from_utf8(value)
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
                .ok_or(RequestError::Malformed("bad content-length"))?;
            content_length = Some(length);
        }
    }
    let length = content_length.ok_or(RequestError::Malformed("no content-length"))?;
    let skipped = io::copy(&mut stream.take(length), &mut io::sink())
        .map_err(io_error("reading the body"))?;
    if skipped != length {
        return Err(RequestError::Malformed("body cut short"));
    }
    Ok(())
}

/// Reads until the peer closes, so the server, not the client, holds TIME-WAIT for short
/// connections (and the client's ports stay reusable at high connection rates).
pub fn wait_for_close<S: Read>(stream: &mut S) -> Result<(), RequestError> {
    let mut rest = [0u8; 64];
    loop {
        match stream.read(&mut rest) {
            Ok(0) => return Ok(()),
            Ok(_) => return Err(RequestError::Malformed("data after the response")),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(io_error("waiting for the close")(err)),
        }
    }
}

fn read_line<S: BufRead>(
    stream: &mut S,
    line: &mut Vec<u8>,
    during: &'static str,
) -> Result<(), RequestError> {
    line.clear();
    match stream.read_until(b'\n', line) {
        Ok(0) => Err(RequestError::Malformed("connection closed early")),
        Ok(_) => Ok(()),
        Err(err) => Err(io_error(during)(err)),
    }
}

/// The trimmed value of `header` if its name is `name` (ASCII case-insensitive).
fn header_value<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let colon = header.iter().position(|&b| b == b':')?;
    let (key, value) = header.split_at(colon);
    key.eq_ignore_ascii_case(name)
        .then(|| value.get(1..).unwrap_or_default().trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A connection whose reads replay `answer` and whose writes are recorded.
    struct Scripted {
        answer: Cursor<Vec<u8>>,
        written: Vec<u8>,
    }

    impl Scripted {
        fn new(answer: &[u8]) -> BufReader<Scripted> {
            BufReader::new(Scripted {
                answer: Cursor::new(answer.to_vec()),
                written: Vec::new(),
            })
        }
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.answer.read(buf)
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    const NGINX_OK: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 3\r\n\r\nok\n";

    #[test]
    fn a_whole_response_succeeds_and_the_request_is_sent() {
        let mut conn = Scripted::new(NGINX_OK);
        let request = request_bytes("198.51.100.20:80", false);
        get(&mut conn, &request, &mut Vec::new()).unwrap();
        assert_eq!(
            conn.get_ref().written,
            b"GET / HTTP/1.1\r\nHost: 198.51.100.20:80\r\nConnection: close\r\n\r\n"
        );
        assert!(wait_for_close(&mut conn).is_ok(), "EOF after the body");
    }

    #[test]
    fn keep_alive_reads_two_responses_back_to_back() {
        let mut conn = Scripted::new(&[NGINX_OK, NGINX_OK].concat());
        let request = request_bytes("h", true);
        let mut line = Vec::new();
        get(&mut conn, &request, &mut line).unwrap();
        get(&mut conn, &request, &mut line).unwrap();
        assert!(matches!(
            get(&mut conn, &request, &mut line),
            Err(RequestError::Malformed("connection closed early"))
        ));
    }

    #[test]
    fn a_non_200_status_fails() {
        let mut conn = Scripted::new(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n");
        let err = get(&mut conn, b"", &mut Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unexpected status line \"HTTP/1.1 503 Busy\""
        );
    }

    #[test]
    fn a_short_body_fails() {
        let mut conn = Scripted::new(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok\n");
        assert!(matches!(
            get(&mut conn, b"", &mut Vec::new()),
            Err(RequestError::Malformed("body cut short"))
        ));
    }

    #[test]
    fn a_response_without_length_fails() {
        let mut conn = Scripted::new(b"HTTP/1.1 200 OK\r\n\r\nok\n");
        assert!(matches!(
            get(&mut conn, b"", &mut Vec::new()),
            Err(RequestError::Malformed("no content-length"))
        ));
    }

    #[test]
    fn header_names_match_case_insensitively() {
        assert_eq!(
            header_value(b"CONTENT-length:  42", b"content-length"),
            Some(&b"42"[..])
        );
        assert_eq!(header_value(b"Server: nginx", b"content-length"), None);
        assert_eq!(header_value(b"no colon", b"content-length"), None);
    }
}
