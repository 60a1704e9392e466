//! Every command line shipped as an example parses with today's flags, and none is refused
//! at start (`tcpcopy::usage`): the examples after each
//! `--help`, the blocks of docs/quick-reference.md (but those of planned features), the
//! translations of docs/migrating.md, and the
//! environment files of packaging/examples/ read the way the systemd units read them. Parsing
//! only: nothing runs, no root needed.

use std::path::Path;
use std::process::Command;

use clap::CommandFactory;
use tcpcopy::cli::Cli;

/// The words of one shell command line: blanks split, quotes group, and the command ends at a
/// redirection, pipe, `&&`, `;` or comment.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else { break };
        if matches!(first, '>' | '<' | '|' | '&' | ';' | '#') {
            break;
        }
        let mut word = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
            match c {
                '\'' | '"' => word.extend(chars.by_ref().take_while(|&q| q != c)),
                _ => word.push(c),
            }
        }
        words.push(word);
    }
    words
}

/// Lines that run tcpcopy, with `\` continuations joined.
fn tcpcopy_lines(text: &str) -> Vec<String> {
    text.replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("tcpcopy "))
        .map(str::to_owned)
        .collect()
}

fn assert_parses(words: &[String], origin: &str) {
    if let Err(err) = tcpcopy::usage::parse(words) {
        panic!("{origin}: {words:?} does not parse:\n{err}");
    }
}

#[test]
fn the_word_splitter_reads_shell_quoting() {
    assert_eq!(
        shell_words(r#"tcpcopy intercept -F 'tcp and port 80' -l "a b" > out # c"#),
        ["tcpcopy", "intercept", "-F", "tcp and port 80", "-l", "a b"]
    );
    assert_eq!(
        shell_words("tcpcopy man d && man x"),
        ["tcpcopy", "man", "d"]
    );
}

#[test]
fn the_help_examples_parse() {
    let mut root = Cli::command();
    root.build();
    let mut checked = 0;
    let mut commands = vec![root];
    while let Some(command) = commands.pop() {
        let examples = command
            .get_after_help()
            .map(ToString::to_string)
            .unwrap_or_default();
        for line in tcpcopy_lines(&examples) {
            assert_parses(
                &shell_words(&line),
                &format!("{} --help", command.get_name()),
            );
            checked += 1;
        }
        commands.extend(command.get_subcommands().cloned());
    }
    assert!(checked >= 10, "only {checked} examples found");
}

#[test]
fn the_quick_reference_parses_but_for_planned_features() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/quick-reference.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let (mut heading, mut block, mut in_block) = ("", String::new(), false);
    let mut checked = 0;
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            heading = title;
        } else if line.starts_with("```") {
            if in_block && !heading.contains("(planned") {
                for command in tcpcopy_lines(&block) {
                    assert_parses(
                        &shell_words(&command),
                        &format!("quick reference, {heading}"),
                    );
                    checked += 1;
                }
            }
            block.clear();
            in_block = !in_block;
        } else if in_block {
            block.push_str(line);
            block.push('\n');
        }
    }
    assert!(checked >= 8, "only {checked} commands found in {path:?}");
}

#[test]
fn the_migration_guide_translations_parse() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/migrating.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines = tcpcopy_lines(&text);
    for line in &lines {
        assert_parses(&shell_words(line), "docs/migrating.md");
    }
    assert!(
        lines.len() >= 6,
        "only {} commands found in {path:?}",
        lines.len()
    );
}

/// TCPCOPY_ARGS of an environment file, split as the unit's `sh -c 'eval ...'` splits it.
fn unit_args(env_file: &Path) -> Vec<String> {
    let script = r#". "$1" && eval "set -- $TCPCOPY_ARGS" && printf '%s\0' "$@""#;
    let output = Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(env_file)
        .output()
        .expect("run sh");
    assert!(output.status.success(), "{env_file:?}: {output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .split_terminator('\0')
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_environment_file_examples_parse_as_the_units_read_them() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/examples");
    for role in ["copy", "intercept"] {
        let file = examples.join(format!("{role}.env"));
        let mut words = vec!["tcpcopy".to_owned(), role.to_owned()];
        words.extend(unit_args(&file));
        assert!(words.len() > 4, "{file:?}: {words:?}");
        assert_parses(&words, &file.display().to_string());
    }
    let intercept = unit_args(&examples.join("intercept.env"));
    assert!(
        intercept.iter().any(|word| word.contains(' ')),
        "the filter stays one argument: {intercept:?}"
    );
}
