//! The soak, shortened for CI: `scripts/soak.sh` with 50,000 short requests at 3,000/s in
//! its own lab. The script judges the run as a hot backup is judged (loss at most 1/100,000
//! by the access logs, copy's counters agreeing with the logs, copy's and intercept's RSS
//! flat once the session table is full) and exits 1 when a criterion fails; its report is
//! printed here either way. The full run (1,000,000 requests) is in docs/reliability.md.

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
    let output = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/soak.sh"))
        .args([
            "--requests",
            "50000",
            "--rate",
            "3000",
            "--prefix",
            "soakci",
        ])
        .output()
        .expect("scripts/soak.sh runs");
    let report = String::from_utf8_lossy(&output.stdout);
    eprintln!("{report}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the soak failed: {report}");
    assert!(report.contains("soak: passed"), "{report}");
}
