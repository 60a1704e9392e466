//! `-P/--pid-file`: the process id in a file, for init scripts and monitoring, removed when
//! the process exits cleanly.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A written pid file; dropping it removes the file.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's id to `path`, replacing what was there.
    pub fn create(path: &Path) -> Result<PidFile> {
        fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write the pid file {}", path.display()))?;
        Ok(PidFile {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Err(err) = fs::remove_file(&self.path) {
            log::warn!("cannot remove the pid file {}: {err}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_pid_while_alive() {
        let path = std::env::temp_dir().join(format!("tcpcopy-pid-test-{}", std::process::id()));
        let pid_file = PidFile::create(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        drop(pid_file);
        assert!(!path.exists());
        assert!(PidFile::create(Path::new("/nonexistent-dir/x.pid")).is_err());
    }
}
