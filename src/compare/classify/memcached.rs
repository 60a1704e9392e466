//! memcached text-protocol replies: the first word is the class (`VALUE` for a hit, `END`
//! for a miss, `STORED`, `NOT_FOUND`, `ERROR`, `CLIENT_ERROR`, a number for incr/decr,
//! ...); `VALUE` blocks are framed by their byte counts up to `END`, `STAT` lines by `END`,
//! everything else is one line. Meta commands' replies (`HD`, `VA`, `EN`, ...) likewise.

use super::{Classified, Parse, Reply, decimal, line_at};

/// The commands a request may start with (text and meta).
const COMMANDS: &[&[u8]] = &[
    b"get",
    b"gets",
    b"gat",
    b"gats",
    b"set",
    b"add",
    b"replace",
    b"append",
    b"prepend",
    b"cas",
    b"delete",
    b"incr",
    b"decr",
    b"touch",
    b"stats",
    b"version",
    b"flush_all",
    b"verbosity",
    b"quit",
    b"mg",
    b"ms",
    b"md",
    b"ma",
    b"mn",
];

/// Replies of one line.
const ONE_LINE: &[&[u8]] = &[
    b"END",
    b"STORED",
    b"NOT_STORED",
    b"EXISTS",
    b"NOT_FOUND",
    b"DELETED",
    b"TOUCHED",
    b"OK",
    b"ERROR",
    b"CLIENT_ERROR",
    b"SERVER_ERROR",
    b"VERSION",
    b"RESET",
    b"HD",
    b"EN",
    b"NF",
    b"NS",
    b"EX",
    b"MN",
];

/// Whether `request` starts with a memcached command word followed by a space or CRLF.
pub fn is_request(request: &[u8]) -> bool {
    let word_end = request
        .iter()
        .position(|&b| b == b' ' || b == b'\r')
        .unwrap_or(request.len());
    word_end < request.len() && COMMANDS.contains(&&request[..word_end])
}

/// The class and framing of `reply`.
pub fn classify(reply: Reply<'_>) -> Classified {
    let bytes = reply.known;
    let Some((line, next)) = line_at(bytes, 0) else {
        let word = first_word(bytes);
        let class = if bytes.len() > word.len() || is_word(word) {
            word_class(word)
        } else {
            None
        };
        return match class {
            Some(class) => Classified::new(class, reply.framing(Parse::NeedMore)),
            None if bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'_') =>
            {
                // A word still arriving.
                Classified::new(super::UNRECOGNIZED, reply.framing(Parse::NeedMore))
            }
            None => Classified::unrecognized(),
        };
    };
    let word = first_word(line);
    let Some(class) = word_class(word) else {
        return Classified::unrecognized();
    };
    let parse = match word {
        b"VALUE" | b"VA" => blocks_end(bytes, 0),
        b"STAT" => stats_end(bytes, next),
        _ => Parse::Ends(next as u64),
    };
    Classified::new(class, reply.framing(parse))
}

fn first_word(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .position(|&b| b == b' ' || b == b'\r')
        .unwrap_or(line.len());
    &line[..end]
}

fn is_word(word: &[u8]) -> bool {
    ONE_LINE.contains(&word) || matches!(word, b"VALUE" | b"VA" | b"STAT")
}

/// The class a reply starting with `word` gets.
fn word_class(word: &[u8]) -> Option<String> {
    if is_word(word) {
        return Some(String::from_utf8_lossy(word).into_owned());
    }
    decimal(word).map(|_| "number".to_owned())
}

/// Where a run of `VALUE key flags bytes [cas]` blocks (or one meta `VA bytes ...` block)
/// starting at `from` ends: after its `END` line (the meta block after its data).
fn blocks_end(bytes: &[u8], mut from: usize) -> Parse {
    loop {
        let Some((line, data)) = line_at(bytes, from) else {
            return Parse::NeedMore;
        };
        let mut fields = line.split(|&b| b == b' ');
        let size_field = match fields.next() {
            Some(b"VALUE") => fields.nth(2),
            Some(b"VA") => fields.next(),
            Some(b"END") => return Parse::Ends(data as u64),
            _ => return Parse::Bad,
        };
        let Some(size) = size_field.and_then(decimal) else {
            return Parse::Bad;
        };
        let after = data as u64 + size;
        let Ok(after) = usize::try_from(after) else {
            return Parse::Bad;
        };
        if line.starts_with(b"VA ") {
            return Parse::Ends(after as u64 + 2);
        }
        match bytes.get(after..after + 2) {
            Some(b"\r\n") => from = after + 2,
            Some(_) => return Parse::Bad,
            // The data runs past the known bytes: only a single value can be framed.
            None => return Parse::NeedMore,
        }
    }
}

/// Where `STAT` lines starting at `from` end: after their `END` line.
fn stats_end(bytes: &[u8], mut from: usize) -> Parse {
    loop {
        let Some((line, next)) = line_at(bytes, from) else {
            return Parse::NeedMore;
        };
        if line == b"END" {
            return Parse::Ends(next as u64);
        }
        if !line.starts_with(b"STAT ") {
            return Parse::Bad;
        }
        from = next;
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Framing, UNRECOGNIZED};
    use super::*;

    const HIT: &[u8] = b"VALUE user:1 0 5\r\nhello\r\nVALUE user:2 3 2 99\r\nab\r\nEND\r\n";

    fn class(reply: Reply<'_>) -> (String, Framing) {
        let classified = classify(reply);
        (classified.class, classified.framing)
    }

    #[test]
    fn complete_replies_have_their_word() {
        assert_eq!(
            class(Reply::whole(HIT)),
            ("VALUE".into(), Framing::Complete)
        );
        for (reply, word) in [
            (&b"END\r\n"[..], "END"),
            (b"STORED\r\n", "STORED"),
            (b"NOT_FOUND\r\n", "NOT_FOUND"),
            (b"ERROR\r\n", "ERROR"),
            (b"CLIENT_ERROR bad data chunk\r\n", "CLIENT_ERROR"),
            (b"SERVER_ERROR out of memory\r\n", "SERVER_ERROR"),
            (b"42\r\n", "number"),
            (b"STAT pid 1\r\nSTAT uptime 2\r\nEND\r\n", "STAT"),
            (b"VA 2 f1\r\nhi\r\n", "VA"),
            (b"HD\r\n", "HD"),
        ] {
            assert_eq!(
                class(Reply::whole(reply)),
                (word.into(), Framing::Complete),
                "{reply:?}"
            );
        }
    }

    #[test]
    fn a_reply_split_anywhere_keeps_its_class() {
        for known in 5..HIT.len() {
            let split = Reply {
                known: &HIT[..known],
                total: HIT.len() as u64,
            };
            let (class, framing) = class(split);
            assert_eq!(class, "VALUE", "{known}");
            assert!(
                matches!(framing, Framing::Unknown | Framing::Complete),
                "{known}: {framing:?}"
            );
        }
        let end = Reply {
            known: b"EN",
            total: 5,
        };
        assert_eq!(class(end).1, Framing::Unknown, "a word still arriving");
    }

    #[test]
    fn a_truncated_reply_is_short() {
        for cut in 6..HIT.len() {
            assert_eq!(
                class(Reply::whole(&HIT[..cut])),
                ("VALUE".into(), Framing::Short),
                "{cut}"
            );
        }
        assert_eq!(
            class(Reply::whole(b"STORED")),
            ("STORED".into(), Framing::Short)
        );
    }

    #[test]
    fn two_replies_are_excess() {
        assert_eq!(
            class(Reply::whole(b"STORED\r\nSTORED\r\n")),
            ("STORED".into(), Framing::Excess)
        );
        let two = [HIT, b"END\r\n"].concat();
        assert_eq!(class(Reply::whole(&two)).1, Framing::Excess);
    }

    #[test]
    fn garbage_is_unrecognized() {
        for garbage in [
            &b"HTTP/1.1 200 OK\r\n"[..],
            b"\x80\x01\x00",
            b"+OK\r\n",
            b"VALUE k 0 x\r\n",
        ] {
            let (class, framing) = class(Reply::whole(garbage));
            assert!(
                class == UNRECOGNIZED || framing == Framing::Unknown,
                "{garbage:?}: {class} {framing:?}"
            );
        }
        assert_eq!(class(Reply::whole(b"\x80\x01\x00")).0, UNRECOGNIZED);
        assert_eq!(class(Reply::whole(b"HTTP/1.1 200 OK\r\n")).0, UNRECOGNIZED);
    }

    #[test]
    fn requests_start_with_a_command() {
        assert!(is_request(b"get k\r\n"));
        assert!(is_request(b"stats\r\n"));
        assert!(is_request(b"mg k v\r\n"));
        assert!(!is_request(b"GET / HTTP/1.1\r\n"));
        assert!(!is_request(b"getter k\r\n"));
        assert!(!is_request(b"get"), "no separator yet");
    }
}
