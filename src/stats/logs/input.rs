//! Reading access logs: plain or gzip-compressed (told apart by their first bytes, so a
//! rotation renamed without `.gz` reads as well), line by line, as bytes.
//!
//! The I/O edge of `stats logs`: it opens files and says which one failed; what a line
//! means is [`super::time_field`]'s job.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{Context, Result};
use flate2::read::MultiGzDecoder;

/// The first two bytes of every gzip member (RFC 1952, 2.3.1).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The lines of one log file, read one at a time.
pub struct LogReader {
    reader: Box<dyn BufRead>,
    line: Vec<u8>,
    number: u64,
}

impl LogReader {
    /// Opens `path`, decompressing it if it is gzip.
    pub fn open(path: &Path) -> Result<LogReader> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut reader = BufReader::new(file);
        let start = reader
            .fill_buf()
            .with_context(|| format!("reading {}", path.display()))?;
        let reader: Box<dyn BufRead> = if start.starts_with(&GZIP_MAGIC) {
            Box::new(BufReader::new(MultiGzDecoder::new(reader)))
        } else {
            Box::new(reader)
        };
        Ok(LogReader {
            reader,
            line: Vec::new(),
            number: 0,
        })
    }

    /// The next line (its 1-based number, its bytes without the line end), or `None` at
    /// the end of the file. Errors say after which line; the caller names the file.
    pub fn next_line(&mut self) -> Result<Option<(u64, &[u8])>> {
        self.line.clear();
        let read = self
            .reader
            .read_until(b'\n', &mut self.line)
            .with_context(|| format!("after line {}", self.number))?;
        if read == 0 {
            return Ok(None);
        }
        self.number += 1;
        let text = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
        Ok(Some((
            self.number,
            text.strip_suffix(b"\r").unwrap_or(text),
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    /// Every line of `path`, the way [`LogReader`] reads them.
    fn lines_of(path: &Path) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut reader = LogReader::open(path)?;
        let mut lines = Vec::new();
        while let Some((number, line)) = reader.next_line()? {
            lines.push((number, line.to_vec()));
        }
        Ok(lines)
    }

    fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tcpcopy-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn gzip(text: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(text).unwrap();
        encoder.finish().unwrap()
    }

    fn texts(lines: Vec<(u64, Vec<u8>)>) -> Vec<(u64, String)> {
        lines
            .into_iter()
            .map(|(n, line)| (n, String::from_utf8(line).unwrap()))
            .collect()
    }

    #[test]
    fn reads_plain_lines_with_their_numbers() {
        let path = temp_file("plain.log", b"one\r\ntwo\n\nlast without newline");
        assert_eq!(
            texts(lines_of(&path).unwrap()),
            [(1, "one"), (2, "two"), (3, ""), (4, "last without newline")]
                .map(|(n, s)| (n, s.to_owned()))
        );
    }

    #[test]
    fn reads_gzip_whatever_the_name_and_every_member() {
        // logrotate's `delaycompress` and `cat a.gz b.gz > c.gz` both make files like this.
        let mut bytes = gzip(b"one\ntwo\n");
        bytes.extend(gzip(b"three\n"));
        let path = temp_file("rotated.1", &bytes);
        assert_eq!(
            texts(lines_of(&path).unwrap()),
            [(1, "one"), (2, "two"), (3, "three")].map(|(n, s)| (n, s.to_owned()))
        );
    }

    #[test]
    fn bad_files_are_named() {
        let missing = std::env::temp_dir().join("tcpcopy-no-such.log");
        let err = format!("{:#}", lines_of(&missing).unwrap_err());
        assert!(
            err.contains("opening") && err.contains("tcpcopy-no-such.log"),
            "{err}"
        );

        let mut cut = gzip(b"one\ntwo\nthree\n");
        cut.truncate(cut.len() - 6);
        let path = temp_file("cut.log.gz", &cut);
        let err = format!("{:#}", lines_of(&path).unwrap_err());
        assert!(err.contains("after line"), "{err}");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_kept() {
        let path = temp_file("latin1.log", b"caf\xe9\n");
        assert_eq!(lines_of(&path).unwrap(), [(1, b"caf\xe9".to_vec())]);
    }
}
