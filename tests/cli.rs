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
