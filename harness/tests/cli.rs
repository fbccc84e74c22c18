//! The `wisp-conformance` CLI, run as a child process: the client suite (its table, the
//! JSON and JUnit reports the server suite writes too, exit codes) and `server` (help
//! text, exit codes, reports and the baseline gate, against servers in this test).

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use tokio::net::TcpListener;
use wisp_cases::client::{ServerOptions, ServerStep};
use wisp_mock_server::replay::{Script, serve};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wisp-conformance"))
        .args(args)
        .output()
        .expect("the CLI runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn help_lists_the_report_flags() {
    let out = cli(&["--help"]);
    assert!(out.status.success());
    let help = text(&out);
    for flag in [
        "--json",
        "--junit",
        "--filter",
        "--include-ignored",
        "--jobs",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn passing_run_writes_the_table_json_and_junit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("client.json");
    let junit = dir.path().join("client.xml");
    let out = cli(&[
        "--filter",
        "handshake.draft6",
        "--json",
        path(&json),
        "--junit",
        path(&junit),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let table = text(&out);
    assert!(table.contains("handshake.draft6.basic"), "{table}");
    assert!(table.contains("gate passed"), "{table}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("valid JSON");
    assert_eq!(report["role"], "client");
    assert_eq!(report["gate"]["exit_code"], 0);
    let cases = report["cases"].as_array().expect("cases");
    assert!(cases.len() >= 3, "{cases:?}");
    let basic = cases
        .iter()
        .find(|c| c["id"] == "handshake.draft6.basic")
        .expect("the basic case");
    assert_eq!(basic["verdict"], "OK");
    assert_eq!(basic["expected"], "OK");
    assert!(basic["virtual_ms"].is_u64(), "{basic}");
    assert!(
        basic["trace"]
            .as_array()
            .is_some_and(|t| t.iter().any(|l| l == "== verdict ==")),
        "{basic}"
    );
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(
        xml.contains(r#"<testcase name="handshake.draft6.basic" classname="handshake""#),
        "{xml}"
    );
    assert!(xml.contains(r#"failures="0""#), "{xml}");
}

const FAILING: &str = "\
title: a client that reads the wrong text
spec: s
level: must
description: the script sends `world`; the case expects `planet`
client:
  version: v1
  actions:
    - open: {stream: s1}
    - read: {stream: s1, until: end}
server:
  - send: {type: CONTINUE, stream: 0, credit: 8}
  - expect: {type: CONNECT, stream: s1}
  - send: {type: DATA, stream: s1, text: world}
  - send: {type: CLOSE, stream: s1, reason: 0x02}
expect:
  handshake: ok
  streams:
    s1: {data_text: planet}
";

#[test]
fn failing_case_exits_1_with_a_junit_failure_and_a_bad_file_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = dir.path().join("selftest");
    std::fs::create_dir_all(&topic).expect("topic dir");
    std::fs::write(topic.join("wrong-text.yaml"), FAILING).expect("case written");
    let junit = dir.path().join("out.xml");
    let out = cli(&["--cases", path(dir.path()), "-v", "--junit", path(&junit)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let table = text(&out);
    assert!(table.contains("selftest.wrong-text"), "{table}");
    assert!(table.contains("expected OK"), "{table}");
    assert!(table.contains("    | == wire (mock server) =="), "{table}");
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(
        xml.contains(r#"<failure message="stream s1: read"#),
        "{xml}"
    );
    assert!(xml.contains(r#"type="FAILED""#), "{xml}");

    std::fs::write(topic.join("broken.yaml"), "title: [\n").expect("bad case written");
    let out = cli(&["--cases", path(dir.path())]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("broken.yaml"), "{}", text(&out));
}

async fn refused_url() -> String {
    format!("ws://{}/", wisp_testkit::refused_port().await)
}

/// A v1 server that sends CONTINUE(0) and then nothing, for every connection (and does
/// not echo an offered subprotocol).
async fn continue_then_silence() -> (String, tokio::task::JoinHandle<()>) {
    let steps: Vec<ServerStep> =
        serde_saphyr::from_str("- send: {type: CONTINUE, stream: 0, credit: 128}\n- pause: 120s\n")
            .expect("script");
    let script = Arc::new(Script {
        steps,
        options: ServerOptions {
            echo_subprotocol: false,
            ..ServerOptions::default()
        },
        keys: Vec::new(),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let script = script.clone();
            tokio::spawn(async move {
                let _ = serve(tcp, &script, Arc::default(), tokio::time::Instant::now()).await;
            });
        }
    });
    (url, task)
}

#[test]
fn help_explains_every_flag() {
    let out = cli(&["server", "--help"]);
    assert!(out.status.success());
    let help = text(&out);
    for flag in [
        "--v1",
        "--v2",
        "--password",
        "--key",
        "--blocked",
        "--only",
        "--skip",
        "--strict",
        "--timeout",
        "--json",
        "--junit",
        "--expect",
        "--write-baseline",
        "--list",
        "Exit codes",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn list_shows_the_server_cases() {
    let out = cli(&[
        "server",
        "ws://127.0.0.1:9/",
        "--list",
        "--only",
        "server.close",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let listing = text(&out);
    assert!(listing.contains("server.close.refused"), "{listing}");
    assert!(!listing.contains("server.tcp.echo"), "{listing}");
}

#[test]
fn bad_selection_and_urls_exit_2() {
    let out = cli(&[
        "server",
        "ws://127.0.0.1:9/",
        "--only",
        "server.no-such-family",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("matches no case"), "{}", text(&out));
    let out = cli(&["server", "http://127.0.0.1:9/", "--only", "server.tcp.echo"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("URL scheme must be ws or wss"),
        "{}",
        text(&out)
    );
    let out = cli(&["server", "ws://127.0.0.1:9/", "--password", "no-colon"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_exits_2_and_still_writes_reports() {
    let url = refused_url().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("report.json");
    let junit = dir.path().join("report.xml");
    let out = cli(&[
        "server",
        &url,
        "--v1",
        "--only",
        "server.tcp.echo",
        "--only",
        "server.close.refused",
        "--timeout",
        "1",
        "--json",
        json.to_str().expect("utf-8 path"),
        "--junit",
        junit.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("valid JSON");
    assert_eq!(report["gate"]["exit_code"], 2);
    let cases = report["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 2);
    assert!(cases.iter().all(|c| c["verdict"] == "ERROR"), "{cases:?}");
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(xml.contains(r#"errors="2""#), "{xml}");
    assert!(
        xml.contains("<error ") && xml.contains(r#"type="ERROR""#),
        "{xml}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_gate_catches_unexpected_passes_and_fails() {
    let (url, task) = continue_then_silence().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let baseline = dir.path().join("baseline.yaml");
    let run = move |expected_first: &str, expected_echo: &str| {
        std::fs::write(
            &baseline,
            format!(
                "server: silence\nmode: v1\ncases:\n  server.handshake.v1.continue-first: {expected_first}  # x\n  server.tcp.echo: {expected_echo}  # x\n"
            ),
        )
        .expect("write baseline");
        cli(&[
            "server",
            &url,
            "--v1",
            "--only",
            "server.handshake.v1.continue-first",
            "--only",
            "server.tcp.echo",
            "--timeout",
            "0.5",
            "-q",
            "--expect",
            baseline.to_str().expect("utf-8 path"),
        ])
    };
    // The silent server sends CONTINUE(0) (OK) and never echoes (FAILED).
    let out = tokio::task::spawn_blocking(move || {
        let matching = run("OK", "FAILED");
        let unexpected_pass = run("FAILED", "FAILED");
        let unexpected_fail = run("OK", "OK");
        (matching, unexpected_pass, unexpected_fail)
    })
    .await
    .expect("runs");
    task.abort();
    let (matching, unexpected_pass, unexpected_fail) = out;
    assert_eq!(matching.status.code(), Some(0), "{}", text(&matching));
    assert_eq!(
        unexpected_pass.status.code(),
        Some(1),
        "{}",
        text(&unexpected_pass)
    );
    assert!(
        text(&unexpected_pass).contains("expected FAILED, got OK"),
        "{}",
        text(&unexpected_pass)
    );
    assert_eq!(
        unexpected_fail.status.code(),
        Some(1),
        "{}",
        text(&unexpected_fail)
    );
    assert!(
        text(&unexpected_fail).contains("expected OK, got FAILED"),
        "{}",
        text(&unexpected_fail)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_turns_non_strict_into_a_gate_failure() {
    let (url, task) = continue_then_silence().await;
    // The silent server never echoes the subprotocol: a SHOULD, NON-STRICT.
    let args = move |strict: bool| {
        let mut a = vec![
            "server".to_owned(),
            url.clone(),
            "--v1".to_owned(),
            "--only".to_owned(),
            "server.handshake.subprotocol-echoed".to_owned(),
            "-q".to_owned(),
        ];
        if strict {
            a.push("--strict".to_owned());
        }
        a
    };
    let (lenient, strict) = tokio::task::spawn_blocking(move || {
        let run = |a: Vec<String>| {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            cli(&a)
        };
        (run(args(false)), run(args(true)))
    })
    .await
    .expect("runs");
    task.abort();
    assert_eq!(lenient.status.code(), Some(0), "{}", text(&lenient));
    assert!(text(&lenient).contains("NON-STRICT"), "{}", text(&lenient));
    assert_eq!(strict.status.code(), Some(1), "{}", text(&strict));
}

/// Runs the CLI with its stdout connected to a pipe whose reader is already closed (what
/// `| head -2` becomes after two lines, or `| grep -q` after a match), and stderr captured.
fn cli_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_wisp-conformance"))
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("the CLI runs")
}

#[test]
fn piping_into_a_closed_reader_exits_quietly() {
    for args in [
        &["list"][..],
        &["--help"],
        &["server", "--help"],
        &["server", "ws://127.0.0.1:1/", "--list"],
        &["--filter", "handshake.draft6"],
    ] {
        let out = cli_closed_stdout(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

/// `--password-file` and `WISP_PASSWORD` give the credentials (the valid-password case runs
/// and passes; without them it is UNSUPPORTED), and the password is never printed.
#[test]
fn credentials_come_from_a_file_or_the_environment() {
    use wisp_testkit::faulty::{FaultConfig, FaultyServer};
    const SECRET: &str = "s3cret-from-file";
    let server = FaultyServer::start(FaultConfig {
        password: Some(("wisp".to_owned(), SECRET.to_owned())),
        ..FaultConfig::default()
    })
    .expect("the faulty server starts");
    let url = server.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("credentials");
    std::fs::write(&file, format!("wisp:{SECRET}\n")).expect("write the file");
    let base = [
        "server",
        url.as_str(),
        "--only",
        "server.auth.password.valid",
        "-q",
        "-v",
    ];
    let run = |extra: &[&str], env: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wisp-conformance"));
        cmd.args(base).args(extra).env_remove("WISP_PASSWORD");
        if let Some(v) = env {
            cmd.env("WISP_PASSWORD", v);
        }
        cmd.output().expect("the CLI runs")
    };
    for (how, out) in [
        (
            "--password-file",
            run(&["--password-file", path(&file)], None),
        ),
        ("WISP_PASSWORD", run(&[], Some(&format!("wisp:{SECRET}")))),
    ] {
        let t = text(&out);
        assert_eq!(out.status.code(), Some(0), "{how}: {t}");
        assert!(
            t.contains("server.auth.password.valid") && t.contains(" OK "),
            "{how}: {t}"
        );
        assert!(!t.contains(SECRET), "{how} leaks the password: {t}");
    }
    let without = text(&run(&[], None));
    assert!(without.contains("UNSUPPORTED"), "{without}");
}
