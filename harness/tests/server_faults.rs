//! The server suite against servers that misbehave at the transport level (unreachable,
//! dropping every connection, stalling after the first packet, dying mid-suite) and
//! against a small scripted v2 server with password and certificate authentication.
//!
//! What must hold: every selected case gets a report, a case that cannot connect is a
//! connection error (exit code 2) while the others are still judged, and the run ends
//! within its time bounds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{SigningKey, VerifyingKey};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_websockets::{Message, ServerBuilder};
use wisp_cases::client::{ServerOptions, ServerStep};
use wisp_client::proto::{
    CERT_ALGORITHM_ED25519, CertAuthClientRecord, CertAuthServerRecord, CloseReason, ExtensionId,
    InfoPacket, Packet, PacketBody, PasswordClientRecord, PasswordLayout, PasswordServerRecord,
    WispVersion,
};
use wisp_harness::server::{RunMode, ServerConfig};
use wisp_harness::{Case, Verdict, default_cases_dir};
use wisp_harness::{Gate, Subject, SuiteOptions, SuiteReport, run_suite};
use wisp_mock_server::replay::{Script, serve};

mod common;
use common::{by_id, server_cases};

fn config(url: String, mode: RunMode, step_ms: u64) -> ServerConfig {
    let mut c = ServerConfig::new(url, mode);
    c.step_timeout = Duration::from_millis(step_ms);
    c
}

/// Runs the cases against the server of `config`, 16 at a time.
async fn run(cases: &[Case], config: ServerConfig) -> SuiteReport {
    run_jobs(cases, config, 16).await
}

/// Runs the cases against the server of `config`, `jobs` at a time.
async fn run_jobs(cases: &[Case], config: ServerConfig, jobs: usize) -> SuiteReport {
    let options = SuiteOptions {
        jobs,
        ..SuiteOptions::default()
    };
    run_suite(
        cases,
        Subject::Server(Box::new(config)),
        &options,
        &mut |_, _, _| {},
    )
    .await
    .expect("the run starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_gives_connection_errors_and_exit_2() {
    let refused = wisp_testkit::refused_port().await;
    let cases = server_cases(&[]);
    let started = Instant::now();
    let report = run(
        &cases,
        config(format!("ws://{refused}/"), RunMode::V1, 1000),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(20));
    let server = report.server().expect("a server run");
    assert!(server.probe.error.is_some());
    let applicable = cases
        .iter()
        .filter_map(Case::as_server)
        .filter(|c| wisp_harness::server::applies(c, RunMode::V1))
        .count();
    assert_eq!(report.cases.len(), applicable, "every case is reported");
    for c in &report.cases {
        assert!(
            c.error.is_some() || c.verdict == Verdict::Unsupported,
            "{}: {} {:?}",
            c.id,
            c.label(),
            c.reasons
        );
    }
    let echo = by_id(&report, "server.tcp.echo");
    assert!(
        echo.error
            .as_deref()
            .is_some_and(|e| e.contains("connection error")),
        "{:?}",
        echo.error
    );
    assert_eq!(Gate::decide(&report, false, None, true).exit_code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_that_drops_every_connection_gives_connection_errors() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    let accepts = Arc::new(AtomicUsize::new(0));
    let counter = accepts.clone();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::Relaxed);
            drop(tcp);
        }
    });
    let cases = server_cases(&["server.tcp", "server.close.refused"]);
    let started = Instant::now();
    let report = run(&cases, config(url, RunMode::V1, 1000)).await;
    task.abort();
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(report.cases.len(), cases.len());
    assert!(report.cases.iter().all(|c| c.error.is_some()));
    assert!(
        accepts.load(Ordering::Relaxed) > cases.len(),
        "each case connected"
    );
    assert_eq!(Gate::decide(&report, false, None, true).exit_code, 2);
}

/// A server that completes the upgrade, sends CONTINUE(0) and then never says anything.
async fn stalling_server(max_connections: usize) -> (String, tokio::task::JoinHandle<()>) {
    let steps: Vec<ServerStep> =
        serde_saphyr::from_str("- send: {type: CONTINUE, stream: 0, credit: 128}\n- pause: 120s\n")
            .expect("script");
    let script = Arc::new(Script {
        steps,
        options: ServerOptions::default(),
        keys: Vec::new(),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let mut served = Vec::new();
        for _ in 0..max_connections {
            let Ok((tcp, _)) = listener.accept().await else {
                break;
            };
            let script = script.clone();
            served.push(tokio::spawn(async move {
                let trace = Arc::default();
                let _ = serve(tcp, &script, trace, tokio::time::Instant::now()).await;
            }));
        }
        // The listener closes here: later connections are refused. Served ones stall on.
        drop(listener);
        std::future::pending::<()>().await;
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalling_server_is_judged_case_by_case_within_bounds() {
    let (url, task) = stalling_server(usize::MAX).await;
    let cases = server_cases(&[
        "server.handshake",
        "server.tcp",
        "server.close",
        "server.robustness.truncated-connect",
    ]);
    let started = Instant::now();
    let report = run(&cases, config(url, RunMode::V1, 500)).await;
    task.abort();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(
        report.cases.iter().all(|c| c.error.is_none()),
        "the server accepts: no connection errors: {:?}",
        report
            .cases
            .iter()
            .filter_map(|c| Some((&c.id, c.error.as_ref()?)))
            .collect::<Vec<_>>()
    );
    // It does send CONTINUE(0) first: that case is OK.
    assert_eq!(
        by_id(&report, "server.handshake.v1.continue-first").verdict,
        Verdict::Ok
    );
    let echo = by_id(&report, "server.tcp.echo");
    assert_eq!(echo.verdict, Verdict::Failed);
    assert!(
        echo.reasons
            .iter()
            .any(|r| r.contains("timeout") || r.contains("within")),
        "{:?}",
        echo.reasons
    );
    let refused = by_id(&report, "server.close.refused");
    assert_eq!(refused.verdict, Verdict::Failed);
    let close = refused.close.as_ref().expect("a close column");
    assert_eq!(close.verdict, Verdict::Failed);
    assert!(close.note.contains("no CLOSE"), "{}", close.note);
    assert!(
        echo.transcript
            .lines()
            .any(|l| l.contains("CONTINUE 0 credit=128")),
        "{}",
        echo.transcript
    );
    assert_eq!(Gate::decide(&report, false, None, true).exit_code, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_that_dies_mid_suite_reports_every_case() {
    // The probe, the start's liveness check, the first cases and the liveness checks after
    // them get a (stalling) server; then it stops listening. It never echoes, but it
    // completes v1 handshakes (CONTINUE(0)): the checks after a case go that far, so the
    // case after which it stopped is named and the later ones are NOT RUN.
    let (url, task) = stalling_server(7).await;
    let cases = server_cases(&["server.handshake", "server.tcp", "server.close"]);
    let config = config(url, RunMode::V1, 500);
    let started = Instant::now();
    let report = run_jobs(&cases, config, 1).await;
    task.abort();
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
    let applicable = cases
        .iter()
        .filter_map(Case::as_server)
        .filter(|c| wisp_harness::server::applies(c, RunMode::V1))
        .count();
    // After the cases, the run-level check rows (the server sent packets).
    let rows: Vec<&wisp_harness::report::CaseReport> = report
        .cases
        .iter()
        .filter(|c| !c.id.starts_with(wisp_harness::server::checks::PREFIX))
        .collect();
    assert_eq!(rows.len(), applicable);
    let summary = common::rows_summary(rows.iter().copied());
    let at = rows
        .iter()
        .position(|c| {
            c.reasons.first().is_some_and(|r| {
                r.contains("the server crashed (connection refused after this case)")
            })
        })
        .unwrap_or_else(|| panic!("a case is named: {summary:#?}"));
    assert!(at >= 1, "the first cases were judged: {summary:#?}");
    assert!(
        rows[..at]
            .iter()
            .all(|c| c.error.is_none() && c.not_run.is_none()),
        "{summary:#?}"
    );
    assert!(at + 1 < rows.len(), "{summary:#?}");
    let since = format!("not run: the server is down since {}", rows[at].id);
    for c in &rows[at + 1..] {
        assert_eq!(c.not_run.as_deref(), Some(since.as_str()), "{summary:#?}");
    }
    assert_eq!(Gate::decide(&report, false, None, true).exit_code, 1);
}

/// A draft-6 v2 server with password and certificate authentication that echoes every
/// stream's DATA back itself (it never connects upstream).
struct AuthServer {
    password: Option<(String, String)>,
    key: Option<VerifyingKey>,
    /// Accept every client INFO whatever its credentials (a broken server).
    accept_any: bool,
}

impl AuthServer {
    async fn start(self) -> (String, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let this = Arc::new(self);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let this = this.clone();
                tokio::spawn(async move {
                    let _ = this.serve(tcp).await;
                });
            }
        });
        (format!("ws://{addr}/"), task)
    }

    async fn serve(&self, tcp: tokio::net::TcpStream) -> Option<()> {
        let (_, mut ws) = ServerBuilder::new().accept(tcp).await.ok()?;
        let mut challenge = [0u8; 64];
        getrandom::fill(&mut challenge).ok()?;
        let mut records = Vec::new();
        if self.password.is_some() {
            records.push(PasswordServerRecord { required: true }.record());
        }
        if self.key.is_some() {
            let record = CertAuthServerRecord {
                required: true,
                algorithms: CERT_ALGORITHM_ED25519,
                challenge: Bytes::copy_from_slice(&challenge),
            };
            records.push(record.record());
        }
        let info = Packet::info(InfoPacket::new(WispVersion::V2, records)).to_bytes();
        ws.send(Message::binary(info)).await.ok()?;
        let first = loop {
            let msg = ws.next().await?.ok()?;
            if msg.is_binary() {
                break Bytes::from(msg.into_payload());
            }
        };
        let reject = |reason: u8| Packet::close(0, CloseReason(reason)).to_bytes();
        let verdict = match Packet::decode(first) {
            Ok(Packet {
                stream_id: 0,
                body: PacketBody::Info(client),
            }) if self.accept_any => {
                let _ = client;
                None
            }
            Ok(Packet {
                stream_id: 0,
                body: PacketBody::Info(client),
            }) => self.judge(&client, &challenge),
            _ => Some(0x04),
        };
        if let Some(reason) = verdict {
            ws.send(Message::binary(reject(reason))).await.ok()?;
            let _ = ws.close().await;
            return Some(());
        }
        ws.send(Message::binary(Packet::continue_(0, 128).to_bytes()))
            .await
            .ok()?;
        let mut open: HashMap<u32, bool> = HashMap::new();
        while let Some(Ok(msg)) = ws.next().await {
            let Ok(packet) = Packet::decode(Bytes::from(msg.into_payload())) else {
                continue;
            };
            match packet.body {
                PacketBody::Connect(_) => {
                    open.insert(packet.stream_id, true);
                }
                PacketBody::Data(d) if open.contains_key(&packet.stream_id) => {
                    ws.send(Message::binary(
                        Packet::data(packet.stream_id, d).to_bytes(),
                    ))
                    .await
                    .ok()?;
                }
                PacketBody::Close { .. } => {
                    open.remove(&packet.stream_id);
                }
                _ => {}
            }
        }
        Some(())
    }

    /// `None` accepts; `Some(reason)` rejects.
    fn judge(&self, client: &wisp_client::proto::InfoPacket, challenge: &[u8]) -> Option<u8> {
        let mut authenticated = false;
        let mut failed = None;
        if let (Some((user, pass)), Some(r)) =
            (&self.password, client.extension(ExtensionId::PASSWORD))
        {
            match PasswordClientRecord::decode(&r.data, PasswordLayout::Draft6) {
                Ok(rec) if &rec.username == user && &rec.password == pass => authenticated = true,
                _ => failed = Some(0xC0),
            }
        }
        if let (Some(key), Some(r)) = (&self.key, client.extension(ExtensionId::CERT_AUTH)) {
            let ok =
                CertAuthClientRecord::decode(&r.data).is_ok_and(|rec| rec.verify(key, challenge));
            if ok {
                authenticated = true;
            } else {
                failed = Some(0xC1);
            }
        }
        match (authenticated, failed) {
            (true, _) => None,
            (false, Some(reason)) => Some(reason),
            (false, None) => Some(0xC2),
        }
    }
}

fn alice() -> SigningKey {
    let pem = std::fs::read_to_string(default_cases_dir().join("keys/alice.pem")).expect("key");
    SigningKey::from_pkcs8_pem(&pem).expect("alice.pem")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_cases_pass_against_a_server_that_implements_them() {
    let key = alice();
    let (url, task) = AuthServer {
        password: Some(("bob".to_owned(), "pw".to_owned())),
        key: Some(key.verifying_key()),
        accept_any: false,
    }
    .start()
    .await;
    let cases = server_cases(&["server.auth"]);
    let mut config = config(url, RunMode::V2, 2000);
    config.credentials = Some(("bob".to_owned(), "pw".to_owned()));
    config.key = Some(key);
    let report = run(&cases, config).await;
    task.abort();
    let outcome = |id: &str| by_id(&report, id).outcome();
    assert_eq!(outcome("server.auth.password.valid"), "OK");
    assert_eq!(outcome("server.auth.password.wrong"), "OK / OK");
    assert_eq!(
        outcome("server.auth.password.missing-when-required"),
        "OK / OK"
    );
    assert_eq!(outcome("server.auth.password.skip-info"), "OK");
    assert_eq!(outcome("server.auth.cert.valid"), "OK");
    assert_eq!(outcome("server.auth.cert.wrong-key"), "OK / OK");
    assert_eq!(outcome("server.auth.cert.missing-when-required"), "OK / OK");
    // It reads only the draft 6 password layout, and its password is required.
    assert_eq!(
        outcome("server.auth.password.draft5-layout"),
        "INFORMATIONAL"
    );
    assert_eq!(
        outcome("server.auth.password.missing-when-optional"),
        "UNSUPPORTED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_cases_fail_against_a_server_that_accepts_anyone() {
    let (url, task) = AuthServer {
        password: Some(("bob".to_owned(), "pw".to_owned())),
        key: Some(alice().verifying_key()),
        accept_any: true,
    }
    .start()
    .await;
    let cases = server_cases(&["server.auth"]);
    let mut config = config(url, RunMode::V2, 2000);
    config.credentials = Some(("bob".to_owned(), "pw".to_owned()));
    let report = run(&cases, config).await;
    task.abort();
    let outcome = |id: &str| by_id(&report, id).outcome();
    assert_eq!(outcome("server.auth.password.valid"), "OK");
    assert_eq!(outcome("server.auth.password.wrong"), "FAILED / FAILED");
    assert_eq!(
        outcome("server.auth.password.missing-when-required"),
        "FAILED / FAILED"
    );
    assert_eq!(outcome("server.auth.cert.wrong-key"), "FAILED / FAILED");
    // No --key: the case that needs one is UNSUPPORTED, not failed.
    assert_eq!(outcome("server.auth.cert.valid"), "UNSUPPORTED");
    let wrong = by_id(&report, "server.auth.password.wrong");
    assert!(
        wrong.reasons.iter().any(|r| r.contains("succeeded")),
        "{:?}",
        wrong.reasons
    );
    assert!(wrong.close.as_ref().is_some_and(|c| c.got.is_none()));
}
