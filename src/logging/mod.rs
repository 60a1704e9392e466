//! Where log records go and in what form: the level from `-v`/`-q` (`RUST_LOG` overrides it,
//! in env_logger's syntax), text (`[TIME LEVEL ] message`) or JSON Lines ([`json`]), on stderr
//! or appended to a file that SIGHUP reopens ([`log_file`]).
//!
//! env_logger filters the records and hands each one, formatted whole, to the writer; this
//! module only chooses the format and the writer. It owns no other output: data goes to stdout
//! from the subcommands, and `main` prints the final error.

mod counter_line;
mod json;
mod log_file;
pub mod throttle;

use std::path::PathBuf;

use anyhow::{Context, Result};
use log::LevelFilter;

use log_file::LogFile;

use crate::cli::LogFormat;

/// How the process logs, from the global flags.
#[derive(Debug, Clone)]
pub struct Config {
    pub level: LevelFilter,
    pub format: LogFormat,
    /// Append here instead of writing to stderr.
    pub file: Option<PathBuf>,
}

/// The level `-v`/`-q` ask for: info by default, `-v` debug, `-vv` trace, `-q` warnings,
/// `-qq` errors only.
pub fn level(verbose: u8, quiet: u8) -> LevelFilter {
    match (verbose, quiet) {
        (0, 0) => LevelFilter::Info,
        (1, _) => LevelFilter::Debug,
        (_, 0) => LevelFilter::Trace,
        (_, 1) => LevelFilter::Warn,
        _ => LevelFilter::Error,
    }
}

/// Installs the process's logger. Fails if the log file cannot be opened, or a logger is
/// already installed.
pub fn init(config: &Config) -> Result<()> {
    let mut builder = env_logger::Builder::new();
    builder
        .filter_level(config.level)
        .parse_env("RUST_LOG")
        .format_target(false)
        .format_timestamp_millis();
    if config.format == LogFormat::Json {
        builder.format(|out, record| {
            let time = out.timestamp_millis();
            json::write_record(out, &time, record)
        });
    }
    match &config.file {
        Some(path) => builder.target(env_logger::Target::Pipe(Box::new(LogFile::open(path)?))),
        // Above the progress bar of an offline replay, when one is shown.
        None => builder.target(env_logger::Target::Pipe(Box::new(
            crate::progress::LogWriter,
        ))),
    };
    builder.try_init().context("cannot set up logging")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_maps_to_levels() {
        assert_eq!(level(0, 0), LevelFilter::Info);
        assert_eq!(level(1, 0), LevelFilter::Debug);
        assert_eq!(level(2, 0), LevelFilter::Trace);
        assert_eq!(level(3, 0), LevelFilter::Trace);
        assert_eq!(level(0, 1), LevelFilter::Warn);
        assert_eq!(level(0, 2), LevelFilter::Error);
    }
}
