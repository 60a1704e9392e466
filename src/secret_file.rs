//! `--secret-file FILE` (copy and intercept): the shared secret read once at start, with
//! every way the file can be wrong refused there, naming the flag and the fix.
//!
//! The secret is the file's bytes with surrounding whitespace trimmed (so
//! `head -c 32 /dev/urandom | base64 > FILE` works as written). The file must be a regular
//! file, neither readable nor writable by every user, and hold 16 to 4096 bytes.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::proto::{MIN_SECRET_LEN, Secret};

/// A larger file is surely not a secret (a certificate, a log...).
const MAX_FILE_LEN: u64 = 4096;
/// How to make a good one.
const HOW_TO_MAKE: &str = "make one with `head -c 32 /dev/urandom | base64 > FILE; chmod 600 FILE`";

/// Reads the secret of `--secret-file path`.
pub fn load(path: &Path) -> Result<Secret> {
    let shown = path.display();
    let metadata = fs::metadata(path).with_context(|| format!("--secret-file {shown}"))?;
    if !metadata.is_file() {
        bail!("--secret-file {shown} is not a regular file");
    }
    let mode = metadata.permissions().mode();
    if mode & 0o006 != 0 {
        bail!(
            "--secret-file {shown} is {} by every user (mode {:04o}): `chmod 600 {shown}`",
            if mode & 0o004 != 0 {
                "readable"
            } else {
                "writable"
            },
            mode & 0o7777
        );
    }
    if metadata.len() > MAX_FILE_LEN {
        bail!(
            "--secret-file {shown} holds {} bytes, more than a secret ({MAX_FILE_LEN} at most)",
            metadata.len()
        );
    }
    let bytes = fs::read(path).with_context(|| format!("--secret-file {shown}"))?;
    let secret = bytes.trim_ascii().to_vec();
    let len = secret.len();
    if len == 0 {
        bail!("--secret-file {shown} is empty: {HOW_TO_MAKE}");
    }
    Secret::new(secret).with_context(|| {
        format!(
            "--secret-file {shown} holds {len} bytes, fewer than {MIN_SECRET_LEN}: {HOW_TO_MAKE}"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A file in a fresh temporary directory, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, contents: &[u8], mode: u32) -> TempFile {
            let path = std::env::temp_dir()
                .join(format!("tcpcopy-secret-test-{}-{name}", std::process::id()));
            fs::write(&path, contents).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.0);
        }
    }

    fn error(file: &TempFile) -> String {
        format!("{:#}", load(&file.0).unwrap_err())
    }

    #[test]
    fn a_good_file_gives_its_trimmed_bytes() {
        let file = TempFile::new("good", b"  0123456789abcdef0123\n", 0o600);
        let expected = Secret::new(b"0123456789abcdef0123".to_vec()).unwrap();
        assert_eq!(load(&file.0).unwrap(), expected);
        let group = TempFile::new("group", b"0123456789abcdef", 0o640);
        assert!(load(&group.0).is_ok(), "a group may share it");
    }

    #[test]
    fn bad_files_are_refused_naming_the_flag_and_the_fix() {
        let missing = std::env::temp_dir().join("tcpcopy-secret-test-missing-file");
        let err = format!("{:#}", load(&missing).unwrap_err());
        assert!(
            err.starts_with("--secret-file ") && err.contains("No such file"),
            "{err}"
        );

        let empty = TempFile::new("empty", b" \n", 0o600);
        assert!(
            error(&empty).contains("is empty: make one with"),
            "{}",
            error(&empty)
        );
        let short = TempFile::new("short", b"too short", 0o600);
        assert!(
            error(&short).contains("holds 9 bytes, fewer than 16"),
            "{}",
            error(&short)
        );
        let public = TempFile::new("public", b"0123456789abcdef", 0o644);
        assert!(
            error(&public).contains("is readable by every user (mode 0644): `chmod 600"),
            "{}",
            error(&public)
        );
        let writable = TempFile::new("writable", b"0123456789abcdef", 0o602);
        assert!(
            error(&writable).contains("is writable by every user"),
            "{}",
            error(&writable)
        );
        let big = TempFile::new("big", &[b'x'; 5000], 0o600);
        assert!(
            error(&big).contains("holds 5000 bytes, more than a secret"),
            "{}",
            error(&big)
        );
        let dir = std::env::temp_dir();
        let err = format!("{:#}", load(&dir).unwrap_err());
        assert!(err.contains("is not a regular file"), "{err}");
    }
}
