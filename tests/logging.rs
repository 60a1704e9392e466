//! The logging flags seen from outside: `-l FILE` takes the logs off stderr, `--log-format json`
//! writes one JSON object per line with the counters as numbers, and SIGHUP makes copy reopen
//! the file (logrotate). copy replays an empty pcap file into a pcap output, so no root and no
//! network: its intercept address is a closed loopback port.

#[path = "common/temp_dir.rs"]
mod temp_dir;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use temp_dir::TempDir;

/// A pcap file with no packets: the global header only (little endian, raw IP).
const EMPTY_PCAP: [u8; 24] = [
    0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 101, 0, 0, 0,
];

/// A loopback address where nothing listens: copy's intercept link is refused at once.
fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// `tcpcopy GLOBAL... copy` over an empty capture, running for `drain` after its end.
fn copy_command(dir: &Path, global: &[&str], drain: &str, interval: &str) -> Command {
    let input = dir.join("empty.pcap");
    std::fs::write(&input, EMPTY_PCAP).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_tcpcopy"));
    command
        .args(global)
        .arg("copy")
        .arg("--offline")
        .arg(&input);
    command.args(["-x", "80-198.51.100.30:80", "-s", &closed_port()]);
    command.arg("--output").arg(dir.join("out.pcap"));
    command.args(["--drain", drain, "--stats-interval", interval]);
    command
}

fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("{path:?}: {err}"))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
        .collect()
}

fn label(line: &Value) -> Option<&str> {
    line["fields"]["label"].as_str()
}

#[test]
fn text_logs_go_to_the_file_instead_of_stderr() {
    let dir = TempDir::new(&format!("tcpcopy-log-text-{}", std::process::id())).unwrap();
    let log = dir.path().join("copy.log");
    let output = copy_command(dir.path(), &["-l", log.to_str().unwrap()], "0s", "0s")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    let text = std::fs::read_to_string(&log).unwrap();
    let totals = text.lines().find(|line| line.contains("] copy totals: "));
    assert!(
        totals.is_some_and(|line| line.starts_with('[') && line.contains(" INFO ")),
        "{text}"
    );
}

#[test]
fn json_lines_carry_counters_and_sighup_reopens_the_file() {
    let dir = TempDir::new(&format!("tcpcopy-log-json-{}", std::process::id())).unwrap();
    let log = dir.path().join("copy.log");
    let rotated = dir.path().join("copy.log.1");
    let global = ["--log-format", "json", "--log", log.to_str().unwrap()];
    let child = copy_command(dir.path(), &global, "3s", "100ms")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // The drain has begun (and the SIGHUP handler is in place): rotate as logrotate does.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log).is_ok_and(|text| text.contains("the files have ended")) {
        assert!(Instant::now() < deadline, "copy logged no start");
        thread::sleep(Duration::from_millis(20));
    }
    std::fs::rename(&log, &rotated).unwrap();
    // SAFETY: a signal to the child this test started and has not reaped.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGHUP) },
        0
    );
    let Output { status, stderr, .. } = child.wait_with_output().unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&stderr));

    let before = json_lines(&rotated);
    let after = json_lines(&log);
    for line in before.iter().chain(&after) {
        let keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            ["time", "level", "target", "message", "fields"],
            "{line}"
        );
    }
    assert!(before.iter().any(|line| {
        line["message"]
            .as_str()
            .unwrap()
            .contains("the files have ended")
    }));
    assert!(
        after.iter().any(|line| label(line) == Some("copy")),
        "no periodic line after the reopen"
    );
    let totals = after
        .iter()
        .find(|line| label(line) == Some("copy totals"))
        .expect("the totals went to the reopened file");
    assert_eq!(totals["level"], "INFO");
    let counters = totals["fields"]["counters"].as_object().unwrap();
    assert_eq!(counters["captured"], 0);
    assert_eq!(counters["sent"], 0);
    assert!(counters.len() > 10, "{counters:?}");
}

#[test]
fn a_log_file_that_cannot_be_opened_is_an_error() {
    let dir = TempDir::new(&format!("tcpcopy-log-bad-{}", std::process::id())).unwrap();
    let log = dir.path().join("no-such-dir").join("copy.log");
    let output = copy_command(dir.path(), &["-l", log.to_str().unwrap()], "0s", "0s")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(&format!(
            "tcpcopy: cannot open log file {}: ",
            log.display()
        )),
        "{stderr}"
    );
}
