//! The executable's contract with scripts: exit codes and the `tcpcopy: ...` error form.

use std::process::Command;

fn tcpcopy(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tcpcopy"))
        .args(args)
        .output()
        .expect("run tcpcopy");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_bad_flag_value_names_the_flag_and_exits_2() {
    let (code, _, stderr) = tcpcopy(&["copy", "-i", "eth0", "-x", "80", "-s", "198.51.100.40"]);
    assert_eq!(code, Some(2));
    assert!(stderr.starts_with("tcpcopy: "), "{stderr}");
    assert!(
        stderr.contains("--map") && stderr.contains("`80`"),
        "{stderr}"
    );
}

#[test]
fn a_missing_mode_is_a_usage_error() {
    let (code, _, stderr) = tcpcopy(&["intercept"]);
    assert_eq!(code, Some(2));
    assert!(stderr.starts_with("tcpcopy: "), "{stderr}");
}

#[test]
fn a_runtime_error_is_reported_the_same_way() {
    let missing = std::env::temp_dir().join("tcpcopy-no-such-file.pcap");
    let (code, _, stderr) = tcpcopy(&[
        "copy",
        "--offline",
        missing.to_str().unwrap(),
        "-x",
        "80-198.51.100.30:80",
        "-s",
        "198.51.100.40",
        "--output",
        "/dev/null",
    ]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("tcpcopy: cannot read capture file"),
        "{stderr}"
    );
}

#[test]
fn version_and_help_go_to_stdout_and_succeed() {
    let (code, stdout, _) = tcpcopy(&["--version"]);
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("tcpcopy "), "{stdout}");
    let (code, stdout, _) = tcpcopy(&["copy", "--help"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("--intercept"), "{stdout}");
}

/// Writes `lines` requests at 11:08:00..11:08:59 (+0800) to a log named `name` in a scratch
/// directory, and returns its path.
fn access_log(name: &str, lines: usize) -> String {
    let dir = std::env::temp_dir().join(format!("tcpcopy-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let text: String = (0..lines)
        .map(|i| {
            let second = i * 59 / (lines - 1);
            format!(
                "198.51.100.10 - - [10/Oct/2026:11:08:{second:02} +0800] \"GET /{i} HTTP/1.1\" 200 3\n"
            )
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing a log");
    path.to_string_lossy().into_owned()
}

#[test]
fn stats_logs_exits_1_above_max_loss_and_2_on_bad_input() {
    let online = access_log("online.log", 1_000);
    let target = access_log("target.log", 990);
    let logs = |extra: &[&str]| {
        tcpcopy(
            &[
                &["stats", "logs", "--online", &online, "--target", &target],
                extra,
            ]
            .concat(),
        )
    };
    let (code, stdout, _) = logs(&["--max-loss", "1%"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        stdout.lines().last(),
        Some("total online=1000 target=990 loss=0.0100")
    );
    let (code, _, stderr) = logs(&["--max-loss", "0.005"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("tcpcopy: total loss 0.0100 is above --max-loss 0.0050"),
        "{stderr}"
    );
    let (code, _, stderr) = logs(&["--time-format", "%H:%M"]);
    assert_eq!(code, Some(2));
    assert!(stderr.starts_with("tcpcopy: --time-format"), "{stderr}");
    let (code, _, stderr) = tcpcopy(&[
        "stats",
        "logs",
        "--online",
        &online,
        "--target",
        "/nonexistent.log",
    ]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("/nonexistent.log"), "{stderr}");
}

#[test]
fn stats_logs_refuses_a_span_of_too_many_windows_and_says_how_to_narrow_it() {
    // A host that logged one request before its clock was set.
    let online = access_log("online-1970.log", 100);
    let mut text = std::fs::read_to_string(&online).expect("reading the log");
    text.push_str("198.51.100.10 - - [01/Jan/1970:00:00:07 +0000] \"GET / HTTP/1.1\" 200 3\n");
    std::fs::write(&online, text).expect("writing the log");
    let target = access_log("target-1970.log", 100);
    let logs = |extra: &[&str]| {
        tcpcopy(
            &[
                &["stats", "logs", "--online", &online, "--target", &target],
                extra,
            ]
            .concat(),
        )
    };
    let (code, stdout, stderr) = logs(&[]);
    assert_eq!(code, Some(2), "{stdout}");
    assert!(
        stderr.starts_with("tcpcopy: the requests counted span")
            && stderr.contains("1970-01-01T00:00:00Z")
            && stderr.contains("--from and --to")
            && stderr.contains("--window"),
        "{stderr}"
    );
    let (code, stdout, stderr) = logs(&["--from", "2026-10-10T00:00:00Z"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout.lines().last(),
        Some("total online=100 target=100 loss=0.0000")
    );
}

/// Runs `stats logs` on `online` and `target` with `extra` flags.
fn stats_logs(online: &str, target: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    tcpcopy(
        &[
            &["stats", "logs", "--online", online, "--target", target],
            extra,
        ]
        .concat(),
    )
}

#[test]
fn stats_logs_counts_and_names_the_lines_it_cannot_read() {
    let online = access_log("online-malformed.log", 100);
    let mut text = std::fs::read_to_string(&online).expect("reading the log");
    text.push_str(
        "not a log line\n198.51.100.10 - - [10/Foo/2026:11:08:30 +0800] \"GET /\" 200 3\n",
    );
    std::fs::write(&online, text).expect("writing the log");
    let target = access_log("target-malformed.log", 99);
    let (code, stdout, stderr) = stats_logs(&online, &target, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout.lines().last(),
        Some("total online=100 target=99 loss=0.0100")
    );
    assert!(
        stderr.contains("online-malformed.log (online): 2 of 102 lines have no time")
            && stderr.contains("(first: line 101: "),
        "{stderr}"
    );
    let (code, stdout, _) = stats_logs(&online, &target, &["--json"]);
    assert_eq!(code, Some(0));
    let total: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a total record")).expect("JSON");
    assert_eq!(total["type"], "total");
    assert_eq!(total["data"]["online"], 100);
    assert_eq!(total["data"]["target"], 99);
    assert_eq!(total["data"]["unparsed"], 2);
}

#[test]
fn stats_logs_refuses_a_file_with_no_readable_line() {
    let online = access_log("online-readable.log", 100);
    let dir = std::path::Path::new(&online)
        .parent()
        .expect("scratch directory");
    let unreadable = dir.join("target-unreadable.log");
    std::fs::write(&unreadable, "GET / 200\nGET /a 200\n").expect("writing a log");
    let (code, stdout, stderr) =
        stats_logs(&online, unreadable.to_str().expect("a UTF-8 path"), &[]);
    assert_eq!(code, Some(2), "{stdout}");
    assert!(
        stderr.starts_with("tcpcopy: no line of ")
            && stderr.contains("target-unreadable.log (target)")
            && stderr.contains("--time-field and --time-format"),
        "{stderr}"
    );
}

#[test]
fn stats_logs_max_loss_needs_a_counted_window() {
    // Both logs cover 11:08:10..11:08:50 only: the one minute window is an edge.
    let online = access_log("online-edge.log", 100);
    let text: String = std::fs::read_to_string(&online)
        .expect("reading the log")
        .lines()
        .filter(|line| (10..=50).any(|s| line.contains(&format!("11:08:{s:02} "))))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&online, &text).expect("writing the log");
    let (code, _, stderr) = stats_logs(&online, &online, &["--max-loss", "1%"]);
    assert_eq!(code, Some(2));
    // After the note on the edge window, the error.
    assert!(
        stderr.lines().last().is_some_and(|error| error
            .starts_with("tcpcopy: --max-loss cannot be checked")
            && error.contains("only edge windows: see --edges")),
        "{stderr}"
    );
    let (code, stdout, stderr) = stats_logs(&online, &online, &["--max-loss", "1%", "--edges"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.ends_with("loss=0.0000\n"), "{stdout}");
}
