//! The `tcpcopy` executable: parse the command line, set up logging, run the subcommand,
//! map errors to exit codes (0 ok, 1 a threshold failed, 2 usage or runtime error).

use std::process::ExitCode;

use tcpcopy::cli::{Cli, Command};
use tcpcopy::pid_file::PidFile;
use tcpcopy::stats::Verdict;
use tcpcopy::{cli_render, diagnosis, logging};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Err(message) = tcpcopy::compat::check_queue_length_flag(&args) {
        eprintln!("tcpcopy: {message}");
        return ExitCode::from(2);
    }
    let cli = match tcpcopy::usage::parse(&args) {
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
    match run(cli) {
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

/// Logging, the pid file (removed when this returns), then the subcommand.
fn run(cli: Cli) -> anyhow::Result<Verdict> {
    logging::init(&logging::Config {
        level: logging::level(cli.verbose, cli.quiet),
        format: cli.log_format,
        file: cli.log_file,
    })?;
    let _pid_file = cli.pid_file.as_deref().map(PidFile::create).transpose()?;
    let passed = |()| Verdict::Passed;
    match cli.command {
        Command::Copy(args) if args.check => diagnosis::check_copy(&args),
        Command::Copy(args) => tcpcopy::replay::run(&args).map(passed),
        Command::Intercept(args) if args.check => diagnosis::check_intercept(&args),
        Command::Intercept(args) => tcpcopy::intercept::run(&args).map(passed),
        Command::Stats(args) => tcpcopy::stats::run(&args),
        Command::Completions(args) => cli_render::print_completions(args.shell).map(passed),
        Command::Man(args) => cli_render::write_man_pages(&args.dir).map(passed),
    }
}
