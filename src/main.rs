//! The `tcpcopy` executable: parse the command line, set up logging, run the subcommand,
//! map errors to exit codes (0 ok, 1 a threshold failed, 2 usage or runtime error).

use std::process::ExitCode;

use clap::Parser;
use tcpcopy::cli::{Cli, Command};
use tcpcopy::stats::Verdict;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if err.use_stderr() => {
            // Usage errors in the same `tcpcopy: ...` form as every other error.
            let rendered = err.render().to_string();
            eprint!(
                "tcpcopy: {}",
                rendered.strip_prefix("error: ").unwrap_or(&rendered)
            );
            return ExitCode::from(2);
        }
        Err(help_or_version) => {
            let _ = help_or_version.print();
            return ExitCode::SUCCESS;
        }
    };
    init_logging(cli.verbose, cli.quiet);
    let result = match cli.command {
        Command::Copy(args) => tcpcopy::replay::run(&args).map(|()| Verdict::Passed),
        Command::Intercept(args) => tcpcopy::intercept::run(&args).map(|()| Verdict::Passed),
        Command::Stats(args) => tcpcopy::stats::run(&args),
    };
    match result {
        Ok(Verdict::Passed) => ExitCode::SUCCESS,
        Ok(Verdict::Failed(why)) => {
            eprintln!("tcpcopy: {why}");
            ExitCode::from(1)
        }
        Err(err) => {
            eprintln!("tcpcopy: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr as `tcpcopy[LEVEL] message`; `RUST_LOG` still overrides the flags.
fn init_logging(verbose: u8, quiet: u8) {
    let level = match (verbose, quiet) {
        (0, 0) => log::LevelFilter::Info,
        (1, _) => log::LevelFilter::Debug,
        (_, 0) => log::LevelFilter::Trace,
        (_, 1) => log::LevelFilter::Warn,
        _ => log::LevelFilter::Error,
    };
    env_logger::Builder::new()
        .filter_level(level)
        .parse_env("RUST_LOG")
        .format_target(false)
        .format_timestamp_millis()
        .init();
}
