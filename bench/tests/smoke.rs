//! Runs the benchmark's smoke mode (`wisp-bench --smoke`): every client, both series and
//! every payload size briefly, the loss and integrity checks, probes and the idle-stream
//! children. Fails on any lost, reordered or corrupted payload or failed run; timings are
//! not checked.

use std::process::Command;

#[test]
fn smoke_mode_finds_no_loss_and_no_failed_run() {
    let out = Command::new(env!("CARGO_BIN_EXE_wisp-bench"))
        .arg("--smoke")
        .output()
        .expect("run wisp-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "wisp-bench --smoke failed ({}):\n{stderr}",
        out.status
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("### Integrity"), "no report:\n{report}");
}
