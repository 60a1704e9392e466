//! `--help`, the man pages and the shell completions mention every flag. The flags are read
//! from clap's definition, so a flag added later is covered without touching this file; the
//! texts are the executable's own output (`tcpcopy ... --help`, `tcpcopy man DIR`,
//! `tcpcopy completions SHELL`). No root needed.

#[path = "common/temp_dir.rs"]
mod temp_dir;

use std::process::Command;

use clap::{Arg, CommandFactory};
use tcpcopy::cli::Cli;
use temp_dir::TempDir;

/// Every visible command, the root first, with the words after `tcpcopy` that select it.
fn commands() -> Vec<(Vec<String>, clap::Command)> {
    fn walk(
        path: Vec<String>,
        command: &clap::Command,
        out: &mut Vec<(Vec<String>, clap::Command)>,
    ) {
        out.push((path.clone(), command.clone()));
        for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            let mut path = path.clone();
            path.push(sub.get_name().to_owned());
            walk(path, sub, out);
        }
    }
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build(); // propagates the global flags into every subcommand
    let mut out = Vec::new();
    walk(Vec::new(), &root, &mut out);
    out
}

fn visible_args(command: &clap::Command) -> impl Iterator<Item = &Arg> {
    command.get_arguments().filter(|arg| !arg.is_hide_set())
}

/// What a text must contain for `arg`: `--long` and `-s`, or a positional's value name, and
/// every possible value.
fn mentions(arg: &Arg) -> Vec<String> {
    let mut words: Vec<String> = arg
        .get_long()
        .map(|long| format!("--{long}"))
        .into_iter()
        .collect();
    words.extend(arg.get_short().map(|short| format!("-{short}")));
    if arg.is_positional() {
        words.extend(
            arg.get_value_names()
                .into_iter()
                .flatten()
                .map(ToString::to_string),
        );
    }
    words.extend(
        arg.get_possible_values()
            .iter()
            .filter(|value| !value.is_hide_set())
            .map(|value| value.get_name().to_owned()),
    );
    assert!(
        !words.is_empty(),
        "{} has nothing to look for",
        arg.get_id()
    );
    words
}

fn tcpcopy(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tcpcopy"))
        .args(args)
        .output()
        .expect("run tcpcopy");
    assert!(output.status.success(), "tcpcopy {args:?}: {output:?}");
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn missing(text: &str, command: &clap::Command) -> Vec<String> {
    visible_args(command)
        .flat_map(mentions)
        .filter(|word| !text.contains(word.as_str()))
        .collect()
}

#[test]
fn help_mentions_every_flag_and_shows_an_example() {
    for (path, command) in commands() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = tcpcopy(&args);
        assert_eq!(
            missing(&help, &command),
            Vec::<String>::new(),
            "tcpcopy {args:?}"
        );

        let examples = command
            .get_after_help()
            .unwrap_or_else(|| panic!("tcpcopy {path:?} has no examples (after_help)"))
            .to_string();
        assert!(examples.starts_with("Example"), "{examples}");
        assert!(
            examples.lines().any(|line| line.starts_with("  tcpcopy ")),
            "tcpcopy {path:?}: no command line in {examples}"
        );
        assert!(
            help.contains(&examples),
            "tcpcopy {args:?} hides its examples"
        );
    }
}

/// Roff source as a reader sees it: `\-` is a hyphen, `\f.` only changes the font.
fn roff_to_text(roff: &str) -> String {
    let mut text = roff.replace("\\-", "-").replace("\\(aq", "'");
    for font in ["\\fB", "\\fI", "\\fR", "\\fP"] {
        text = text.replace(font, "");
    }
    text
}

#[test]
fn man_pages_mention_every_flag_and_show_the_examples() {
    let dir = TempDir::new(&format!("tcpcopy-man-{}", std::process::id())).unwrap();
    let listed = tcpcopy(&["man", dir.path().to_str().unwrap()]);
    let commands = commands();
    assert_eq!(listed.lines().count(), commands.len(), "{listed}");
    for (path, command) in commands {
        let name = std::iter::once("tcpcopy".to_owned())
            .chain(path)
            .collect::<Vec<_>>()
            .join("-");
        let file = dir.path().join(format!("{name}.1"));
        assert!(
            listed.contains(file.to_str().unwrap()),
            "{file:?} not listed"
        );
        let page = std::fs::read_to_string(&file).unwrap_or_else(|err| panic!("{file:?}: {err}"));
        let title = format!(".TH {name} 1 ");
        assert!(
            page.lines().any(|line| line.starts_with(&title)),
            "{file:?}: no {title}"
        );
        let text = roff_to_text(&page);
        assert_eq!(missing(&text, &command), Vec::<String>::new(), "{file:?}");
        let examples = command
            .get_after_help()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let after_heading = text.split_once(".SH EXAMPLES\n").map(|(_, rest)| rest);
        let first_example = examples.lines().nth(1).expect("an example").trim();
        assert!(
            after_heading.is_some_and(|rest| rest.contains(first_example)),
            "{file:?} lacks its EXAMPLES section"
        );
    }
}

#[test]
fn completions_for_bash_zsh_and_fish_know_every_flag() {
    let commands = commands();
    for shell in ["bash", "zsh", "fish"] {
        let script = tcpcopy(&["completions", shell]);
        for (path, command) in &commands {
            if let Some(name) = path.last() {
                assert!(
                    script.contains(name.as_str()),
                    "{shell}: no subcommand {name}"
                );
            }
            for arg in visible_args(command).filter(|arg| !arg.is_positional()) {
                // fish writes `-l map` / `-s x`; bash and zsh write `--map` / `-x`.
                let words = match shell {
                    "fish" => [
                        arg.get_long().map(|l| format!("-l {l}")),
                        arg.get_short().map(|s| format!("-s {s}")),
                    ],
                    _ => [
                        arg.get_long().map(|l| format!("--{l}")),
                        arg.get_short().map(|s| format!("-{s}")),
                    ],
                };
                for word in words.into_iter().flatten() {
                    assert!(script.contains(&word), "{shell} {path:?}: no {word}");
                }
            }
        }
    }
    let bash = Command::new("bash")
        .args(["-n", "-c", &tcpcopy(&["completions", "bash"])])
        .output()
        .expect("run bash");
    assert!(bash.status.success(), "bash -n: {bash:?}");
}
