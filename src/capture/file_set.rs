//! Several capture files read as one recording (`copy --offline A B ...`): their frames
//! merged in timestamp order, each tagged with the file it came from (files may differ in
//! link type). Frames with equal timestamps come in the order the files were given, so a
//! merge is always the same.
//!
//! Each file's next frame waits here, copied out of libpcap's buffer, until it is the
//! earliest; its buffer is reused for the frame after it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use super::FileCapture;

/// The earliest frame not taken yet of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Which file, by its position in the list the set was opened with.
    pub file: usize,
    /// Capture time, since the Unix epoch.
    pub timestamp: Duration,
    pub data: Vec<u8>,
}

/// Capture files merged by timestamp.
pub struct FileSet {
    files: Vec<FileCapture>,
    /// Each file's next frame; `None` once the file has ended.
    heads: Vec<Option<Recorded>>,
    /// The head with the earliest timestamp.
    earliest: Option<usize>,
}

impl FileSet {
    /// Opens every file of `paths` (with the BPF `filter`, if any) and reads its first frame.
    pub fn open(paths: &[PathBuf], filter: Option<&str>) -> Result<FileSet> {
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            files.push(FileCapture::open(path, filter)?);
        }
        let mut set = FileSet {
            heads: vec![None; files.len()],
            files,
            earliest: None,
        };
        for file in 0..set.files.len() {
            set.refill(file)?;
        }
        set.find_earliest();
        Ok(set)
    }

    /// The files, in the order they were given.
    pub fn files(&self) -> &[FileCapture] {
        &self.files
    }

    /// The earliest frame not taken yet, `None` once every file has ended.
    pub fn peek(&self) -> Option<&Recorded> {
        self.heads[self.earliest?].as_ref()
    }

    /// Takes the frame [`peek`](Self::peek) shows and reads the next one of its file.
    pub fn advance(&mut self) -> Result<()> {
        if let Some(file) = self.earliest {
            self.refill(file)?;
            self.find_earliest();
        }
        Ok(())
    }

    /// Bytes read from all the files so far.
    pub fn bytes_read(&self) -> u64 {
        self.files.iter().map(FileCapture::bytes_read).sum()
    }

    /// The size of all the files together, in bytes.
    pub fn size(&self) -> u64 {
        self.files.iter().map(FileCapture::size).sum()
    }

    /// Replaces the head of `file` with its next frame, reusing the buffer.
    fn refill(&mut self, file: usize) -> Result<()> {
        let Some(frame) = self.files[file].next_frame()? else {
            self.heads[file] = None;
            return Ok(());
        };
        let head = self.heads[file].get_or_insert_with(|| Recorded {
            file,
            timestamp: Duration::ZERO,
            data: Vec::new(),
        });
        head.timestamp = frame.timestamp;
        head.data.clear();
        head.data.extend_from_slice(frame.data);
        Ok(())
    }

    fn find_earliest(&mut self) {
        self.earliest = self
            .heads
            .iter()
            .enumerate()
            .filter_map(|(file, head)| Some((head.as_ref()?.timestamp, file)))
            .min()
            .map(|(_, file)| file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::testing::{TempFile, pcap_bytes, pcapng_bytes};

    fn frame(tag: u8) -> Vec<u8> {
        vec![tag; 20]
    }

    #[test]
    fn frames_of_several_files_come_in_timestamp_order() {
        let a = TempFile::with_bytes(
            "a.pcap",
            &pcap_bytes(1, &[(100, frame(1)), (300, frame(3)), (300, frame(4))]),
        );
        let b = TempFile::with_bytes(
            "b.pcapng",
            &pcapng_bytes(101, &[(200, frame(2)), (300, frame(5)), (900, frame(6))]),
        );
        let paths = [a.path().to_owned(), b.path().to_owned()];
        let mut set = FileSet::open(&paths, None).unwrap();
        assert_eq!(
            set.files()
                .iter()
                .map(FileCapture::datalink)
                .collect::<Vec<_>>(),
            [1, 12]
        );
        let mut merged = Vec::new();
        while let Some(head) = set.peek() {
            merged.push((head.file, head.timestamp.as_micros(), head.data[0]));
            set.advance().unwrap();
        }
        // Equal timestamps: the first file's frames first.
        assert_eq!(
            merged,
            [
                (0, 100, 1),
                (1, 200, 2),
                (0, 300, 3),
                (0, 300, 4),
                (1, 300, 5),
                (1, 900, 6)
            ]
        );
        assert_eq!(set.bytes_read(), set.size());
    }

    #[test]
    fn an_empty_file_ends_at_once() {
        let empty = TempFile::with_bytes("empty.pcap", &pcap_bytes(1, &[]));
        let set = FileSet::open(&[empty.path().to_owned()], None).unwrap();
        assert!(set.peek().is_none());
    }
}
