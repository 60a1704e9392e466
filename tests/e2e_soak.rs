//! The soak, shortened for CI: `scripts/soak.sh` with 50,000 short requests at 3,000/s in
//! its own lab. The script judges the run as a hot backup is judged (loss at most 1/100,000
//! by the access logs, copy's counters agreeing with the logs, copy's and intercept's RSS
//! flat once the session table is full) and exits 1 when a criterion fails; its report is
//! printed here either way. Copy's exit totals, in the log the script keeps, must keep the
//! counters' identities ([`common::copy_exit_totals`]). The full run (1,000,000 requests) is
//! in docs/reliability.md.

mod common;

use std::process::Command;

#[test]
fn fifty_thousand_requests_replay_exactly_in_flat_memory() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "the soak builds network namespaces and needs root (CAP_NET_ADMIN, CAP_NET_RAW): run \
         the e2e tests as root"
    );
    let logs = common::TempDir::new(&format!("tcpcopy-soak-{}", std::process::id()))
        .unwrap_or_else(|err| panic!("{err:#}"));
    let output = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/soak.sh"))
        .args([
            "--requests",
            "50000",
            "--rate",
            "3000",
            "--prefix",
            "soakci",
        ])
        .arg("--logs")
        .arg(logs.path())
        .output()
        .expect("scripts/soak.sh runs");
    let report = String::from_utf8_lossy(&output.stdout);
    eprintln!("{report}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the soak failed: {report}");
    assert!(report.contains("soak: passed"), "{report}");
    let copy_log = std::fs::read_to_string(logs.path().join("copy.log"))
        .unwrap_or_else(|err| panic!("the soak's copy log: {err}"));
    common::copy_exit_totals(&copy_log, "the soak's copy").unwrap_or_else(|err| panic!("{err:#}"));
}
