//! The mock over a real socket in real time, driven by a hand-written client: the path the
//! `wisp-mock-server` binary uses for third-party clients.

use std::path::Path;

use futures::{SinkExt, StreamExt};
use tokio_websockets::{ClientBuilder, Message};
use wisp_cases::load_case_str;
use wisp_mock_server::replay::{MockServer, Script};

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
    let case = load_case_str(
        Path::new("/cases"),
        Path::new("/cases/manual/v1.yaml"),
        CASE,
    )
    .expect("case loads");
    let case = case.as_client().expect("a client-role case");
    let server = MockServer::bind(
        "127.0.0.1:0".parse().expect("addr"),
        Script::from_case(case),
    )
    .await
    .expect("binds");
    let url = server.url().expect("url");
    let trace = server.trace();
    let mock = tokio::spawn(server.run(tokio::time::Instant::now()));

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

    let outcome = mock.await.expect("mock task");
    assert_eq!(outcome.result, Ok(()));
    let rendered = trace.lock().expect("trace").render();
    assert!(
        rendered.contains("C->S  CONNECT s1(#1) TCP example.com:443"),
        "{rendered}"
    );
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
