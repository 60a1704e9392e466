//! The command-line definition rendered for other programs: shell completion scripts
//! (clap_complete) and man pages (clap_mangen). Both are made from [`Cli`]'s clap definition, so
//! they always list the flags `--help` lists. Writes only to the output it is given.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;
use roff::{Roff, roman};

use crate::cli::Cli;

/// The completion script for `shell`.
fn completion_script(shell: Shell) -> Vec<u8> {
    let mut command = Cli::command();
    let name = command.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut script);
    script
}

/// `tcpcopy completions SHELL`: the script on stdout.
pub fn print_completions(shell: Shell) -> Result<()> {
    io::stdout()
        .lock()
        .write_all(&completion_script(shell))
        .context("cannot write the completion script to stdout")
}

/// Every man page, as (file name, roff source): `tcpcopy.1` and one per subcommand
/// (`tcpcopy-copy.1`, ...), hidden subcommands left out.
fn man_pages() -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let source = format!(
        "{} {}",
        root.get_name(),
        root.get_version().unwrap_or_default()
    );
    let mut pages = Vec::new();
    collect_pages(&root, &source, &mut pages)?;
    Ok(pages)
}

fn collect_pages(
    command: &clap::Command,
    source: &str,
    pages: &mut Vec<(String, Vec<u8>)>,
) -> io::Result<()> {
    let man = Man::new(command.clone()).source(source);
    pages.push((man.get_filename(), render_page(&man, command)?));
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        collect_pages(sub, source, pages)?;
    }
    Ok(())
}

/// clap_mangen's sections, except that the examples (`after_help`, whose first line is a
/// heading such as `Examples:`) go in an EXAMPLES section kept line for line, where
/// clap_mangen would fill them into one paragraph under EXTRA.
fn render_page(man: &Man, command: &clap::Command) -> io::Result<Vec<u8>> {
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    if command.get_arguments().any(|arg| !arg.is_hide_set()) {
        man.render_options_section(&mut page)?;
    }
    if command.get_subcommands().any(|sub| !sub.is_hide_set()) {
        man.render_subcommands_section(&mut page)?;
    }
    if let Some(examples) = command.get_after_help() {
        let mut roff = Roff::new();
        roff.control("SH", ["EXAMPLES"]).control("nf", []);
        for line in examples.to_string().lines().skip(1) {
            roff.text([roman(line)]);
        }
        roff.control("fi", []).to_writer(&mut page)?;
    }
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// `tcpcopy man DIR`: writes every page into `dir` (created if missing) and prints the paths.
pub fn write_man_pages(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut stdout = io::stdout().lock();
    let pages = man_pages().context("cannot render the man pages")?;
    for (name, page) in pages {
        let path = dir.join(name);
        fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
        writeln!(stdout, "{}", path.display()).context("cannot write to stdout")?;
    }
    Ok(())
}
