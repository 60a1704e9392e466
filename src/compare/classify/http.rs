//! HTTP/1.x replies: the status code of the final response (interim 1xx responses are
//! skipped, 101 is final), framed by `Content-Length`, `Transfer-Encoding: chunked`, or
//! nothing for HEAD requests and 1xx/204/304; a body without either ends with the
//! connection, so its framing is unknown (RFC 9112 §6.3).

use super::{Classified, Parse, Reply, decimal, line_at};

/// The methods a request may start with.
const METHODS: &[&[u8]] = &[
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE",
];

/// Whether `request` starts like an HTTP/1.x request: a method, a space, and an
/// `HTTP/1.` version on its first line.
pub fn is_request(request: &[u8]) -> bool {
    let line = super::super::protocol::first_line(request);
    let Some(space) = line.iter().position(|&b| b == b' ') else {
        return false;
    };
    METHODS.contains(&&line[..space]) && line.windows(7).any(|w| w == b"HTTP/1.")
}

/// The class (status code) and framing of `reply` to `request`.
pub fn classify(request: &[u8], reply: Reply<'_>) -> Classified {
    let head_request = request.starts_with(b"HEAD ");
    let mut from = 0;
    loop {
        let Some(status) = status_at(reply.known, from) else {
            return Classified::unrecognized();
        };
        let class = status.map_or_else(|| super::UNRECOGNIZED.to_owned(), |s| s.to_string());
        let head = match headers_at(reply.known, from) {
            Ok(head) => head,
            Err(parse) => return Classified::new(class, reply.framing(parse)),
        };
        let Some(status) = status else {
            return Classified::new(class, reply.framing(Parse::Bad));
        };
        if (100..200).contains(&status) && status != 101 {
            from = head.end;
            continue;
        }
        let no_body =
            head_request || (100..200).contains(&status) || status == 204 || status == 304;
        let parse = if no_body {
            Parse::Ends(head.end as u64)
        } else if head.chunked {
            chunks_end(reply.known, head.end)
        } else if let Some(length) = head.content_length {
            Parse::Ends(head.end as u64 + length)
        } else {
            Parse::Bad
        };
        return Classified::new(class, reply.framing(parse));
    }
}

/// The status code of the status line at `from`: `None` when the bytes cannot start one;
/// `Some(None)` when they may, but the code is not there yet.
fn status_at(bytes: &[u8], from: usize) -> Option<Option<u16>> {
    let rest = bytes.get(from..).unwrap_or_default();
    const VERSION: &[u8] = b"HTTP/1.";
    let prefix = rest.len().min(VERSION.len());
    if rest[..prefix] != VERSION[..prefix] {
        return None;
    }
    // "HTTP/1.1 200"
    let Some(code) = rest.get(9..12) else {
        return Some(None);
    };
    if rest.get(8) != Some(&b' ') {
        return None;
    }
    let code = decimal(code)?;
    Some(u16::try_from(code).ok().filter(|c| (100..600).contains(c)))
}

/// What a response's header block says about its body.
struct Head {
    /// Where the body starts.
    end: usize,
    content_length: Option<u64>,
    chunked: bool,
}

/// The header block of the response at `from`, or how far its parse got.
fn headers_at(bytes: &[u8], from: usize) -> Result<Head, Parse> {
    let (_, mut at) = line_at(bytes, from).ok_or(Parse::NeedMore)?;
    let mut head = Head {
        end: 0,
        content_length: None,
        chunked: false,
    };
    loop {
        let (line, next) = line_at(bytes, at).ok_or(Parse::NeedMore)?;
        if line.is_empty() {
            head.end = next;
            return Ok(head);
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(Parse::Bad);
        };
        let name = &line[..colon];
        let value = line[colon + 1..].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            head.content_length = Some(decimal(value).ok_or(Parse::Bad)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            head.chunked = value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
        at = next;
    }
}

/// Where a chunked body starting at `from` ends (RFC 9112 §7.1), as far as the bytes reach.
fn chunks_end(bytes: &[u8], mut from: usize) -> Parse {
    loop {
        let Some((line, data)) = line_at(bytes, from) else {
            return Parse::NeedMore;
        };
        let size = line
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        let Some(size) = std::str::from_utf8(size)
            .ok()
            .filter(|s| !s.is_empty() && s.len() <= 15)
            .and_then(|s| usize::from_str_radix(s, 16).ok())
        else {
            return Parse::Bad;
        };
        if size == 0 {
            // Trailer fields, then an empty line.
            let mut at = data;
            loop {
                let Some((line, next)) = line_at(bytes, at) else {
                    return Parse::NeedMore;
                };
                if line.is_empty() {
                    return Parse::Ends(next as u64);
                }
                at = next;
            }
        }
        let after = data + size;
        match bytes.get(after..after + 2) {
            Some(b"\r\n") => from = after + 2,
            Some(_) => return Parse::Bad,
            None => return Parse::NeedMore,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Framing, UNRECOGNIZED};
    use super::*;

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    const CHUNKED: &[u8] =
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\n\r\n";

    fn class(reply: Reply<'_>) -> (String, Framing) {
        let classified = classify(GET, reply);
        (classified.class, classified.framing)
    }

    #[test]
    fn a_complete_reply_has_its_status_and_fits_its_length() {
        assert_eq!(class(Reply::whole(OK)), ("200".into(), Framing::Complete));
        assert_eq!(
            class(Reply::whole(CHUNKED)),
            ("404".into(), Framing::Complete)
        );
        let empty = b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n";
        assert_eq!(
            class(Reply::whole(empty)),
            ("204".into(), Framing::Complete)
        );
        let head = classify(
            b"HEAD / HTTP/1.1\r\n\r\n",
            Reply::whole(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"),
        );
        assert_eq!(head.framing, Framing::Complete, "a HEAD reply has no body");
    }

    #[test]
    fn every_split_of_a_reply_keeps_its_class_and_framing() {
        for reply in [OK, CHUNKED] {
            // The known bytes end anywhere after the status line, the rest still counted.
            for known in 12..reply.len() {
                let split = Reply {
                    known: &reply[..known],
                    total: reply.len() as u64,
                };
                let (class, framing) = class(split);
                assert_eq!(class, String::from_utf8_lossy(&reply[9..12]), "{known}");
                assert!(
                    matches!(framing, Framing::Complete | Framing::Unknown),
                    "{known}: {framing:?}"
                );
            }
        }
        // A length in the known head is checked against the count beyond it.
        let split = Reply {
            known: &OK[..40],
            total: OK.len() as u64,
        };
        assert_eq!(class(split).1, Framing::Complete);
    }

    #[test]
    fn a_truncated_reply_is_short() {
        for cut in 12..OK.len() {
            assert_eq!(class(Reply::whole(&OK[..cut])).1, Framing::Short, "{cut}");
        }
        for cut in 12..CHUNKED.len() {
            assert_eq!(
                class(Reply::whole(&CHUNKED[..cut])).1,
                Framing::Short,
                "{cut}"
            );
        }
        // Known only in part, the length still says it is short.
        let partial = Reply {
            known: &OK[..40],
            total: OK.len() as u64 - 1,
        };
        assert_eq!(class(partial).1, Framing::Short);
    }

    #[test]
    fn two_replies_in_one_are_excess() {
        let two = [OK, OK].concat();
        assert_eq!(class(Reply::whole(&two)), ("200".into(), Framing::Excess));
    }

    #[test]
    fn interim_responses_are_skipped() {
        let reply = [&b"HTTP/1.1 100 Continue\r\n\r\n"[..], OK].concat();
        assert_eq!(
            class(Reply::whole(&reply)),
            ("200".into(), Framing::Complete)
        );
    }

    #[test]
    fn a_body_to_the_close_has_unknown_framing() {
        let reply = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nanything";
        assert_eq!(class(Reply::whole(reply)), ("200".into(), Framing::Unknown));
    }

    #[test]
    fn garbage_is_unrecognized() {
        for garbage in [
            &b"\x00\x01\x02"[..],
            b"SSH-2.0-OpenSSH\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 999 X\r\n\r\n",
        ] {
            assert_eq!(class(Reply::whole(garbage)).0, UNRECOGNIZED, "{garbage:?}");
        }
        let bad_length = b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n";
        assert_eq!(
            class(Reply::whole(bad_length)),
            ("200".into(), Framing::Unknown)
        );
    }

    #[test]
    fn requests_are_recognized_by_method_and_version() {
        assert!(is_request(GET));
        assert!(is_request(b"DELETE /x HTTP/1.0\r\n"));
        assert!(!is_request(b"get / HTTP/1.1\r\n"));
        assert!(!is_request(b"GET /"), "no version yet");
        assert!(!is_request(b"BREW /pot HTTP/1.1\r\n"));
    }
}
