//! A scratch directory for one lab: configs, logs, captures. Removed on drop, except when the
//! test is panicking, so what went wrong can still be read.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A directory under the system temp dir that lives as long as this value.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates an empty `$TMPDIR/NAME`, replacing what a crashed run left there.
    pub fn new(name: &str) -> Result<TempDir> {
        let path = std::env::temp_dir().join(name);
        if path.exists() {
            fs::remove_dir_all(&path)
                .with_context(|| format!("removing stale {}", path.display()))?;
        }
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("e2e: keeping {} for inspection", self.path.display());
        } else if let Err(err) = fs::remove_dir_all(&self.path) {
            eprintln!("e2e: cannot remove {}: {err}", self.path.display());
        }
    }
}
