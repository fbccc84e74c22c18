//! The sans-IO boundary, enforced by the build: no async runtime, socket or timer library is
//! among the normal dependencies of `wisp-proto`, with every feature on.

use std::process::Command;

#[test]
fn the_protocol_core_depends_on_no_runtime() {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--package",
            "wisp-proto",
            "--edges",
            "normal",
            "--all-features",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("bytes"),
        "unexpected cargo tree output: {stdout}"
    );
    let forbidden = ["tokio", "async-std", "smol", "mio", "futures", "socket2"];
    for line in stdout.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        assert!(
            !forbidden
                .iter()
                .any(|f| name == *f || name.starts_with(&format!("{f}-"))),
            "wisp-proto must stay sans-IO, but depends on {line}"
        );
    }
}
