//! The CLI works away from the checkout: the built binary, copied into an empty temporary
//! directory and run from there (with the temporary directory for its extracted cases
//! inside it too), still finds every case and test key, because they are built in.

use std::path::Path;
use std::process::{Command, Output};

fn run(bin: &Path, cwd: &Path, tmp: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .env("TMPDIR", tmp)
        .output()
        .expect("the copied binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_binary_runs_every_case_from_an_empty_directory() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).expect("its tmp");
    let bin = dir.path().join("wisp-conformance");
    std::fs::copy(env!("CARGO_BIN_EXE_wisp-conformance"), &bin).expect("copy the binary");

    let list = run(&bin, dir.path(), &tmp, &["list"]);
    assert_eq!(list.status.code(), Some(0), "{}", text(&list));
    let out = text(&list);
    let count: usize = out
        .lines()
        .last()
        .and_then(|l| l.strip_suffix(" cases"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count line: {out}"));
    assert!(count > 100, "{out}");

    let server = run(
        &bin,
        dir.path(),
        &tmp,
        &["server", "ws://127.0.0.1:1/", "--list"],
    );
    assert_eq!(server.status.code(), Some(0), "{}", text(&server));
    assert!(
        text(&server).contains("server.tcp.echo"),
        "{}",
        text(&server)
    );

    // Client cases that read the test keys (cert auth) run and pass.
    let auth = run(&bin, dir.path(), &tmp, &["--filter", "auth", "-j", "2"]);
    assert_eq!(auth.status.code(), Some(0), "{}", text(&auth));
    assert!(!text(&auth).contains("cannot read"), "{}", text(&auth));

    // The extracted copy is under the temporary directory given, not the checkout.
    let extracted: Vec<_> = std::fs::read_dir(&tmp)
        .expect("read tmp")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        extracted
            .iter()
            .any(|n| n.starts_with("wisp-conformance-cases-")),
        "{extracted:?}"
    );
}
