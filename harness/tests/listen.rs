//! Listen mode (`wisp_harness::listen`), driven by the built-in client over real loopback
//! WebSockets: a client that does what a case says is OK (its API-side expectations listed
//! as not judged), one that opens the wrong stream type is FAILED by the wire, a case
//! judged only by the API outcome is UNSUPPORTED ("needs a shim"), a case nobody connected
//! to is IGNORED; `GET /` lists the URLs; and the CLI writes the usual report after
//! `--bound`.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wisp_client::extensions::{MotdExtensionBuilder, UdpExtensionBuilder, WispV2Handshake};
use wisp_client::proto::StreamType;
use wisp_client::{ClientMux, MuxOptions};
use wisp_harness::listen::{CaseServer, ListenOptions};
use wisp_harness::{ClientCase, Verdict, default_cases_dir, load_dir};

const BOUND: Duration = Duration::from_secs(60);

const BASIC: &str = "handshake.draft6.basic";
const V1: &str = "handshake.v1.continue";
const SHIM_ONLY: &str = "handshake.transport.tcp-drop-during";
const NOBODY: &str = "handshake.draft6.repeated-info";

fn cases(ids: &[&str]) -> Vec<ClientCase> {
    let (all, errors) = load_dir(&default_cases_dir());
    assert!(errors.is_empty(), "{errors:?}");
    ids.iter()
        .map(|id| {
            all.iter()
                .find(|c| c.id() == *id)
                .and_then(|c| c.as_client())
                .unwrap_or_else(|| panic!("no client-role case {id}"))
                .clone()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_connect_are_judged_on_the_wire() {
    tokio::time::timeout(BOUND, async {
        let server = CaseServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            cases(&[BASIC, V1, SHIM_ONLY, NOBODY]),
        )
        .await
        .unwrap();
        let addr = server.local_addr().unwrap();
        let options = ListenOptions {
            bound: Some(Duration::from_secs(45)),
            until: vec![BASIC.to_owned(), V1.to_owned()],
        };
        let run = tokio::spawn(async move { server.run(&options, std::future::pending()).await });

        // GET / lists the case URLs.
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut listing = String::new();
        tcp.read_to_string(&mut listing).await.unwrap();
        assert!(listing.starts_with("HTTP/1.1 200 OK"), "{listing}");
        assert!(
            listing.contains(&format!("ws://{addr}/{BASIC}/\n")),
            "{listing}"
        );

        // handshake.draft6.basic, done as the case says.
        let handshake =
            WispV2Handshake::new([UdpExtensionBuilder.into(), MotdExtensionBuilder.into()]);
        let (mux, driver) = ClientMux::connect(
            &format!("ws://{addr}/{BASIC}/"),
            Some(handshake),
            MuxOptions::default(),
        )
        .await
        .unwrap()
        .with_no_required_extensions();
        let driver = tokio::spawn(driver);
        let mut s1 = mux
            .new_stream(StreamType::TCP, "example.com".to_owned(), 80)
            .await
            .unwrap();
        s1.send(Bytes::from_static(b"hello")).await.unwrap();
        let mut got = Vec::new();
        while let Some(Ok(chunk)) = s1.next().await {
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, b"world");
        mux.close().await.unwrap();
        let _ = driver.await;

        // handshake.v1.continue wants a UDP stream; this client opens TCP.
        let (mux, driver) =
            ClientMux::connect(&format!("ws://{addr}/{V1}/"), None, MuxOptions::default())
                .await
                .unwrap()
                .with_no_required_extensions();
        let driver = tokio::spawn(driver);
        let _ = mux
            .new_stream(StreamType::TCP, "8.8.8.8".to_owned(), 53)
            .await;
        let _ = mux.close().await;
        let _ = driver.await;

        let report = run.await.unwrap();
        let row = |id: &str| {
            report
                .cases
                .iter()
                .find(|c| c.id == id)
                .unwrap_or_else(|| panic!("no row {id}"))
        };
        assert_eq!(report.cases.len(), 4);
        let basic = row(BASIC);
        assert_eq!(
            basic.verdict,
            Verdict::Ok,
            "{:?}\n{}",
            basic.reasons,
            basic.transcript
        );
        assert!(basic.judged());
        assert!(
            basic
                .reasons
                .iter()
                .any(|r| r.starts_with("not judged in listen mode:") && r.contains("motd")),
            "{:?}",
            basic.reasons
        );
        assert!(
            basic
                .transcript
                .contains("C->S  DATA s1(#1) len=5 \"hello\""),
            "{}",
            basic.transcript
        );
        let v1 = row(V1);
        assert_eq!(v1.verdict, Verdict::Failed, "{}", v1.transcript);
        assert!(
            v1.reasons[0].contains("server step #1") && v1.reasons[0].contains("TCP"),
            "{:?}",
            v1.reasons
        );
        let shim = row(SHIM_ONLY);
        assert_eq!(shim.verdict, Verdict::Unsupported);
        assert!(
            shim.reasons[0].starts_with("needs a shim"),
            "{:?}",
            shim.reasons
        );
        let nobody = row(NOBODY);
        assert_eq!(nobody.label(), "IGNORED");
        assert!(
            nobody
                .ignored
                .as_deref()
                .is_some_and(|i| i.contains(&format!("ws://{addr}/{NOBODY}/"))),
            "{:?}",
            nobody.ignored
        );
        assert!(report.subject.headline().contains("listen mode"));
    })
    .await
    .expect("the test finished within its bound");
}

/// The CLI: `listen ADDR --bound S` ends by itself and writes the usual JSON report.
#[test]
fn the_cli_writes_the_report_after_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("listen.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wisp-conformance"))
        .args([
            "listen",
            "127.0.0.1:0",
            "--filter",
            "handshake.v1",
            "--bound",
            "0.5",
            "--json",
        ])
        .arg(&json)
        .output()
        .expect("the CLI runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("/<case-id>/"), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["role"], "client");
    let cases = report["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    assert!(cases.iter().all(|c| c["verdict"] == "IGNORED"), "{report}");
}
