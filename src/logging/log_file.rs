//! The `-l FILE` log destination: appended to, created if missing (mode 0640), and reopened by
//! path after SIGHUP, so logrotate can move the file away and signal (`postrotate`) without
//! `copytruncate`. The reopen happens between records, never inside one.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

/// An open log file and the flag SIGHUP raises.
pub struct LogFile {
    path: PathBuf,
    file: File,
    reopen: Arc<AtomicBool>,
}

impl LogFile {
    /// Opens `path` for appending and makes SIGHUP reopen it.
    pub fn open(path: &Path) -> Result<LogFile> {
        let reopen = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reopen))
            .context("cannot install the SIGHUP handler")?;
        LogFile::with_flag(path, reopen)
    }

    /// Opens `path`; the file is reopened when `reopen` is set.
    fn with_flag(path: &Path, reopen: Arc<AtomicBool>) -> Result<LogFile> {
        let file =
            append(path).with_context(|| format!("cannot open log file {}", path.display()))?;
        Ok(LogFile {
            path: path.to_owned(),
            file,
            reopen,
        })
    }

    /// Swaps in a fresh handle on the path if SIGHUP came. If the path cannot be opened, the
    /// old file is kept (losing no record) and the failure is said on stderr.
    fn reopen_if_asked(&mut self) {
        if !self.reopen.swap(false, Ordering::Relaxed) {
            return;
        }
        match append(&self.path) {
            Ok(file) => self.file = file,
            Err(err) => eprintln!(
                "tcpcopy: cannot reopen log file {}: {err}; logging on to the old one",
                self.path.display()
            ),
        }
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    /// env_logger hands each formatted record over in one `write_all`: the place to reopen.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.reopen_if_asked();
        self.file.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tcpcopy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn records_after_a_reopen_go_to_a_new_file_at_the_path() {
        let dir = temp_dir("log-reopen");
        let path = dir.join("tcpcopy.log");
        let rotated = dir.join("tcpcopy.log.1");
        std::fs::write(&path, "earlier\n").unwrap();
        let reopen = Arc::new(AtomicBool::new(false));
        let mut log = LogFile::with_flag(&path, Arc::clone(&reopen)).unwrap();

        log.write_all(b"one\n").unwrap();
        std::fs::rename(&path, &rotated).unwrap();
        log.write_all(b"two\n").unwrap();
        reopen.store(true, Ordering::Relaxed);
        log.write_all(b"three\n").unwrap();
        log.flush().unwrap();

        assert_eq!(
            std::fs::read_to_string(&rotated).unwrap(),
            "earlier\none\ntwo\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
        assert!(!reopen.load(Ordering::Relaxed), "the request is consumed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_reopen_keeps_the_old_file() {
        let dir = temp_dir("log-reopen-fails");
        let path = dir.join("tcpcopy.log");
        let reopen = Arc::new(AtomicBool::new(false));
        let mut log = LogFile::with_flag(&path, Arc::clone(&reopen)).unwrap();
        let kept = dir.join("kept.log");
        std::fs::rename(&path, &kept).unwrap();
        std::fs::create_dir(&path).unwrap(); // the path is now a folder: opening it fails
        reopen.store(true, Ordering::Relaxed);
        log.write_all(b"still here\n").unwrap();
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "still here\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unopenable_path_names_the_file() {
        let err = LogFile::with_flag(
            Path::new("/nonexistent-dir/tcpcopy.log"),
            Arc::new(AtomicBool::new(false)),
        )
        .err()
        .expect("no such folder");
        assert!(
            format!("{err:#}").starts_with("cannot open log file /nonexistent-dir/tcpcopy.log: "),
            "{err:#}"
        );
    }
}
