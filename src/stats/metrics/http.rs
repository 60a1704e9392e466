//! The one request the metrics endpoint answers, `GET /metrics`, as bytes: a request head
//! in, a whole HTTP/1.1 response out (every response closes its connection). Pure.

/// The most of a request head read before answering 431.
pub const MAX_HEAD: usize = 8 * 1024;

/// Whether `received` holds a whole request head (up to the blank line).
pub fn head_complete(received: &[u8]) -> bool {
    received.windows(4).any(|w| w == b"\r\n\r\n") || received.windows(2).any(|w| w == b"\n\n")
}

/// The response to the request head `head`; `metrics` renders the body of a scrape and is
/// called only for `GET /metrics`.
pub fn respond(head: &[u8], content_type: &str, metrics: impl FnOnce() -> String) -> Vec<u8> {
    if head.len() > MAX_HEAD {
        return response(
            "431 Request Header Fields Too Large",
            "text/plain",
            "request head too large\n",
        );
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = line.trim_ascii().split(|&b| b == b' ');
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    match (method, path) {
        (b"GET", b"/metrics") => response("200 OK", content_type, &metrics()),
        (b"GET", _) => response(
            "404 Not Found",
            "text/plain",
            "only /metrics is served here\n",
        ),
        _ => response(
            "405 Method Not Allowed",
            "text/plain",
            "only GET /metrics is served here\n",
        ),
    }
}

fn response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(head: &str) -> String {
        String::from_utf8(respond(
            head.as_bytes(),
            "text/plain; version=0.0.4",
            || "tcpcopy_requests_sent_total 1\n".to_owned(),
        ))
        .unwrap()
    }

    #[test]
    fn serves_the_metrics() {
        let response = answer("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        assert_eq!(
            response,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: 30\r\n\
             Connection: close\r\n\r\ntcpcopy_requests_sent_total 1\n"
        );
        assert!(answer("GET /metrics?x=1 HTTP/1.0\n\n").starts_with("HTTP/1.1 200 OK"));
    }

    #[test]
    fn nothing_else() {
        assert!(answer("GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(answer("POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(answer("").starts_with("HTTP/1.1 405"));
        let huge = format!(
            "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD)
        );
        assert!(answer(&huge).starts_with("HTTP/1.1 431"));
    }

    #[test]
    fn a_head_ends_at_its_blank_line() {
        assert!(!head_complete(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"));
        assert!(head_complete(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(head_complete(b"GET /metrics HTTP/1.0\n\n"));
    }
}
