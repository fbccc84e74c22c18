//! The mock over a real socket in real time, driven by a hand-written client: the path the
//! `wisp-mock-server` binary uses for third-party clients.

use std::path::Path;

use futures::{SinkExt, StreamExt};
use tokio_websockets::{ClientBuilder, Message};
use wisp_cases::load_case_str;
use wisp_mock_server::replay::{MockServer, Script, ScriptOutcome};
use wisp_mock_server::trace::SharedTrace;

const CASE: &str = r#"
title: v1 handshake and one stream
spec: v1.2
level: must
description: d
client: {version: v1}
server:
  - send: {type: CONTINUE, stream: 0, credit: 128}
  - expect: {type: CONNECT, stream: s1, host: example.com, port: 443}
  - send: {type: CLOSE, stream: s1, reason: 0x44}
expect: {handshake: ok}
"#;

#[tokio::test]
async fn serves_a_script_to_a_raw_websocket_client() {
    let server = bind_v1_case().await;
    let url = server.url().expect("url");
    let trace = server.trace();
    let mock = tokio::spawn(server.run(tokio::time::Instant::now()));
    play_v1_case(&url).await;
    check_v1_outcome(mock.await.expect("mock task"), &trace);
}

/// A connection that closes before sending anything, and one that stays open and silent,
/// both made before the client's: neither is taken for the client (a liveness probe meant
/// for a server that had the port before must not fail the case).
#[tokio::test]
async fn a_probe_before_the_client_is_not_taken_for_it() {
    let server = bind_v1_case().await;
    let url = server.url().expect("url");
    let addr = server.local_addr().expect("addr");
    let trace = server.trace();
    let mock = tokio::spawn(server.run(tokio::time::Instant::now()));
    let closed = tokio::net::TcpStream::connect(addr)
        .await
        .expect("probe connects");
    drop(closed);
    let _silent = tokio::net::TcpStream::connect(addr)
        .await
        .expect("probe connects");
    play_v1_case(&url).await;
    check_v1_outcome(mock.await.expect("mock task"), &trace);
}

async fn bind_v1_case() -> MockServer {
    let case = load_case_str(
        Path::new("/cases"),
        Path::new("/cases/manual/v1.yaml"),
        CASE,
    )
    .expect("case loads");
    let case = case.as_client().expect("a client-role case");
    MockServer::bind(
        "127.0.0.1:0".parse().expect("addr"),
        Script::from_case(case),
    )
    .await
    .expect("binds")
}

/// The client side of `CASE`, checking every byte the mock sends.
async fn play_v1_case(url: &str) {
    let uri = url.parse().expect("uri");
    let (mut ws, _) = ClientBuilder::from_uri(uri)
        .connect()
        .await
        .expect("connects");
    let first = ws.next().await.expect("a message").expect("no error");
    assert_eq!(
        first.as_payload().as_ref(),
        hex_bytes("03 00000000 80000000")
    );
    let connect = hex_bytes("01 01000000 01 bb01 6578616d706c652e636f6d");
    ws.send(Message::binary(connect)).await.expect("sends");
    let close = ws.next().await.expect("a message").expect("no error");
    assert_eq!(close.as_payload().as_ref(), hex_bytes("04 01000000 44"));
}

fn check_v1_outcome(outcome: ScriptOutcome, trace: &SharedTrace) {
    assert_eq!(outcome.result, Ok(()));
    let rendered = trace.lock().expect("trace").render();
    assert!(
        rendered.contains("C->S  CONNECT s1(#1) TCP example.com:443"),
        "{rendered}"
    );
    assert!(!rendered.contains("FAILED"), "{rendered}");
    if let Some(idle) = outcome.idle {
        idle.abort();
    }
}

fn hex_bytes(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).expect("hex")
}

const SKIP_AND_TIMES: &str = r#"
title: skip and times
spec: s
level: must
description: d
client: {version: v1}
server:
  - send: {type: CONTINUE, stream: 0, credit: 4, times: 2}
  - expect: {type: DATA, stream: 1, text: hi, skip: [CONTINUE]}
expect: {handshake: ok}
"#;

#[tokio::test]
async fn expect_skips_listed_types_and_send_repeats() {
    let case = load_case_str(
        Path::new("/cases"),
        Path::new("/cases/manual/skip.yaml"),
        SKIP_AND_TIMES,
    )
    .expect("case loads");
    let case = case.as_client().expect("a client-role case");
    let server = MockServer::bind(
        "127.0.0.1:0".parse().expect("addr"),
        Script::from_case(case),
    )
    .await
    .expect("binds");
    let uri = server.url().expect("url").parse().expect("uri");
    let trace = server.trace();
    let mock = tokio::spawn(server.run(tokio::time::Instant::now()));
    let (mut ws, _) = ClientBuilder::from_uri(uri)
        .connect()
        .await
        .expect("connects");
    for _ in 0..2 {
        let m = ws.next().await.expect("a message").expect("no error");
        assert_eq!(m.as_payload().as_ref(), hex_bytes("03 00000000 04000000"));
    }
    // A CONTINUE from the client is passed over; the DATA after it matches.
    ws.send(Message::binary(hex_bytes("03 01000000 01000000")))
        .await
        .expect("sends");
    ws.send(Message::binary(hex_bytes("02 01000000 6869")))
        .await
        .expect("sends");
    let outcome = mock.await.expect("mock task");
    assert_eq!(outcome.result, Ok(()));
    let rendered = trace.lock().expect("trace").render();
    assert!(rendered.contains("(skipped)"), "{rendered}");
    if let Some(idle) = outcome.idle {
        idle.abort();
    }
}
