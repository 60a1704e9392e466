//! redis RESP replies (RESP2 and RESP3): the class is the type and, for simple strings and
//! errors, their first word: `+OK`, `-ERR`, `-WRONGTYPE`, `:integer`, `$bulk`, `$nil`,
//! `*array`, `*empty`, `*nil`, ...; framed by parsing the value, nested aggregates included.

use super::{Classified, Parse, Reply, decimal, line_at};

/// Aggregates nested deeper than this are not parsed (their framing is unknown).
const MAX_DEPTH: usize = 32;
/// At most this many characters of a simple string or error's first word make its class.
const MAX_WORD: usize = 24;

/// Whether `request` starts like a RESP command: an array of bulk strings.
pub fn is_request(request: &[u8]) -> bool {
    request.len() >= 2 && request[0] == b'*' && request[1].is_ascii_digit()
}

/// The first `n` words of a RESP command (an array of bulk strings) as text, as far as
/// `bytes` hold them; `None` when they do not start one.
pub fn command_words(bytes: &[u8], n: usize) -> Option<Vec<String>> {
    let (line, mut at) = line_at(bytes, 0)?;
    let count = decimal(line.strip_prefix(b"*")?)?;
    let mut words = Vec::new();
    for _ in 0..count.min(n as u64) {
        let (line, data) = line_at(bytes, at)?;
        let len = usize::try_from(decimal(line.strip_prefix(b"$")?)?).ok()?;
        let word = bytes.get(data..data + len)?;
        words.push(String::from_utf8_lossy(word).into_owned());
        at = data + len + 2;
    }
    if let Some(first) = words.first_mut() {
        *first = first.to_ascii_uppercase();
    }
    Some(words)
}

/// The class and framing of `reply`.
pub fn classify(reply: Reply<'_>) -> Classified {
    let bytes = reply.known;
    let Some(&kind) = bytes.first() else {
        return Classified::new(super::UNRECOGNIZED, reply.framing(Parse::NeedMore));
    };
    let Some(class) = class_of(kind, bytes) else {
        return Classified::unrecognized();
    };
    Classified::new(class, reply.framing(value_end(bytes, 0, 0)))
}

/// The class of a reply of type `kind` whose bytes start `bytes`.
fn class_of(kind: u8, bytes: &[u8]) -> Option<String> {
    let line = line_at(bytes, 0).map(|(line, _)| line);
    let length = || line.and_then(|line| line.get(1..)).map(|n| n == b"-1");
    let class = match kind {
        b'+' | b'-' => {
            let text = line.unwrap_or(bytes).get(1..).unwrap_or_default();
            let word = text.split(|&b| b == b' ').next().unwrap_or_default();
            let word = &word[..word.len().min(MAX_WORD)];
            if !word.iter().all(|b| b.is_ascii_graphic()) {
                return None;
            }
            format!("{}{}", char::from(kind), String::from_utf8_lossy(word))
        }
        b':' => ":integer".to_owned(),
        b'$' => match length() {
            Some(true) => "$nil".to_owned(),
            _ => "$bulk".to_owned(),
        },
        b'*' => match (length(), line) {
            (Some(true), _) => "*nil".to_owned(),
            (_, Some(b"*0")) => "*empty".to_owned(),
            _ => "*array".to_owned(),
        },
        b'_' => "_null".to_owned(),
        b'#' => "#boolean".to_owned(),
        b',' => ",double".to_owned(),
        b'(' => "(bignumber".to_owned(),
        b'!' => "!error".to_owned(),
        b'=' => "=verbatim".to_owned(),
        b'%' => "%map".to_owned(),
        b'~' => "~set".to_owned(),
        b'>' => ">push".to_owned(),
        b'|' => "|attribute".to_owned(),
        _ => return None,
    };
    Some(class)
}

/// Where the value starting at `from` ends.
fn value_end(bytes: &[u8], from: usize, depth: usize) -> Parse {
    if depth > MAX_DEPTH {
        return Parse::Bad;
    }
    let Some((line, next)) = line_at(bytes, from) else {
        return Parse::NeedMore;
    };
    let Some((&kind, rest)) = line.split_first() else {
        return Parse::Bad;
    };
    let count = || -> Option<Option<u64>> {
        match rest {
            b"-1" => Some(None),
            digits => decimal(digits).map(Some),
        }
    };
    match kind {
        b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => Parse::Ends(next as u64),
        b'$' | b'!' | b'=' => match count() {
            Some(None) => Parse::Ends(next as u64),
            Some(Some(len)) => {
                let end = next as u64 + len;
                match usize::try_from(end)
                    .ok()
                    .and_then(|end| bytes.get(end..end + 2))
                {
                    Some(b"\r\n") => Parse::Ends(end + 2),
                    Some(_) => Parse::Bad,
                    // The string runs past the known bytes; its length frames it.
                    None => Parse::Ends(end + 2),
                }
            }
            None => Parse::Bad,
        },
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let Some(count) = count() else {
                return Parse::Bad;
            };
            let per_entry = if matches!(kind, b'%' | b'|') { 2 } else { 1 };
            let mut at = next as u64;
            for _ in 0..count.unwrap_or(0).saturating_mul(per_entry) {
                let Ok(from) = usize::try_from(at) else {
                    return Parse::Bad;
                };
                if from > bytes.len() {
                    // An element ran past the known bytes: what follows it is not known.
                    return Parse::NeedMore;
                }
                match value_end(bytes, from, depth + 1) {
                    Parse::Ends(end) => at = end,
                    other => return other,
                }
            }
            if kind == b'|' {
                // An attribute precedes the value it describes.
                return usize::try_from(at)
                    .map_or(Parse::Bad, |from| value_end(bytes, from, depth + 1));
            }
            Parse::Ends(at)
        }
        _ => Parse::Bad,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Framing, UNRECOGNIZED};
    use super::*;

    const ARRAY: &[u8] = b"*3\r\n$5\r\nhello\r\n:42\r\n*2\r\n+OK\r\n$-1\r\n";

    fn class(reply: Reply<'_>) -> (String, Framing) {
        let classified = classify(reply);
        (classified.class, classified.framing)
    }

    #[test]
    fn complete_replies_have_their_type() {
        for (reply, expected) in [
            (&b"+OK\r\n"[..], "+OK"),
            (b"+PONG\r\n", "+PONG"),
            (b"-ERR unknown command\r\n", "-ERR"),
            (b"-WRONGTYPE Operation against a key\r\n", "-WRONGTYPE"),
            (b":1000\r\n", ":integer"),
            (b"$5\r\nhello\r\n", "$bulk"),
            (b"$0\r\n\r\n", "$bulk"),
            (b"$-1\r\n", "$nil"),
            (b"*-1\r\n", "*nil"),
            (b"*0\r\n", "*empty"),
            (ARRAY, "*array"),
            (b"%1\r\n+a\r\n:1\r\n", "%map"),
            (b"_\r\n", "_null"),
        ] {
            assert_eq!(
                class(Reply::whole(reply)),
                (expected.into(), Framing::Complete),
                "{reply:?}"
            );
        }
    }

    #[test]
    fn a_reply_split_anywhere_keeps_its_class() {
        for known in 1..ARRAY.len() {
            let split = Reply {
                known: &ARRAY[..known],
                total: ARRAY.len() as u64,
            };
            let (class, framing) = class(split);
            assert_eq!(class, "*array", "{known}");
            assert!(
                matches!(framing, Framing::Unknown | Framing::Complete),
                "{known}: {framing:?}"
            );
        }
        // A bulk string's length frames it beyond the known bytes.
        let bulk = Reply {
            known: b"$1000\r\nabc",
            total: 1009,
        };
        assert_eq!(class(bulk), ("$bulk".into(), Framing::Complete));
    }

    #[test]
    fn a_truncated_reply_is_short() {
        for cut in 4..ARRAY.len() {
            assert_eq!(
                class(Reply::whole(&ARRAY[..cut])).1,
                Framing::Short,
                "{cut}"
            );
        }
        assert_eq!(
            class(Reply::whole(b"$5\r\nhel")),
            ("$bulk".into(), Framing::Short)
        );
    }

    #[test]
    fn two_replies_are_excess() {
        assert_eq!(
            class(Reply::whole(b"+OK\r\n+OK\r\n")),
            ("+OK".into(), Framing::Excess)
        );
    }

    #[test]
    fn garbage_is_unrecognized() {
        for garbage in [&b"HTTP/1.1 200 OK\r\n"[..], b"VALUE k 0 1\r\n", b"\x00\xff"] {
            assert_eq!(class(Reply::whole(garbage)).0, UNRECOGNIZED, "{garbage:?}");
        }
        assert_eq!(
            class(Reply::whole(b"$x\r\n")),
            ("$bulk".into(), Framing::Unknown)
        );
        assert_eq!(class(Reply::whole(b"$3\r\nabcd\r\n")).1, Framing::Unknown);
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let get = b"*2\r\n$3\r\nget\r\n$6\r\nuser:1\r\n";
        assert!(is_request(get));
        assert!(!is_request(b"GET k\r\n"));
        assert_eq!(
            command_words(get, 2),
            Some(vec!["GET".to_owned(), "user:1".to_owned()])
        );
        assert_eq!(command_words(get, 1), Some(vec!["GET".to_owned()]));
        assert_eq!(command_words(b"+OK\r\n", 2), None);
    }
}
