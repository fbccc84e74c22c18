//! Record mode (`wisp_harness::record`): a session between the built-in client and the
//! pinned wisp-js server, recorded through the proxy over real loopback WebSockets, is
//! written as a case that loads with the normal loader (its `covers:` checked against the
//! requirements file) and replays against the built-in client with verdict OK; and a
//! session with a password never writes the password.

use std::path::Path;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use wisp_client::extensions::{MotdExtensionBuilder, UdpExtensionBuilder, WispV2Handshake};
use wisp_client::proto::{
    CloseReason, ConnectPacket, ExtensionId, ExtensionRecord, InfoPacket, Packet, StreamType,
    WispVersion,
};
use wisp_client::{ClientMux, MuxOptions};
use wisp_harness::record::{End, Event, Msg, RecordOptions, Recorder, Sender, Session, write_case};
use wisp_harness::{Verdict, default_cases_dir, load_dir, run_client_case};
use wisp_testkit::{RealServer, ServerKind, TcpEcho};

/// Every test is bounded: a hang is a failure.
const BOUND: Duration = Duration::from_secs(90);

/// A scratch cases directory with the repository's requirements file, so loading it
/// checks the recorded case's `covers:`.
fn scratch_cases() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        default_cases_dir().join("requirements.yaml"),
        dir.path().join("requirements.yaml"),
    )
    .expect("copy requirements.yaml");
    dir
}

/// Checks that the case `text` has every line of `needles`, then loads the one case of
/// `dir` with the normal loader and replays it against the built-in client: verdict OK.
fn check_and_replay(dir: &Path, text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    let (cases, errors) = load_dir(dir);
    assert!(errors.is_empty(), "the recorded case loads: {errors:?}");
    assert_eq!(cases.len(), 1);
    let case = cases[0].as_client().expect("a client-role case").clone();
    let report = run_client_case(&case);
    assert_eq!(
        report.verdict,
        Verdict::Ok,
        "{:?}\n{}\n{text}",
        report.reasons,
        report.transcript
    );
    assert!(report.passed(), "{}", report.transcript);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wisp_js_session_becomes_a_case_that_replays() {
    tokio::time::timeout(BOUND, async {
        wisp_testkit::ensure_installed().expect("installing the pinned servers");
        let server = RealServer::start(ServerKind::WispJs {
            motd: Some("recorded \"motd\"".into()),
        })
        .await
        .expect("starting wisp-js");
        let echo = TcpEcho::start().await;
        let recorder = Recorder::bind("127.0.0.1:0".parse().unwrap())
            .await
            .expect("bind");
        let proxy = recorder.local_addr().unwrap();
        let mut options = RecordOptions::new(server.url());
        options.bound = Some(Duration::from_secs(60));
        let recording = tokio::spawn({
            let options = options.clone();
            async move { recorder.record(&options, std::future::pending()).await }
        });

        // The built-in client, through the proxy.
        let handshake =
            WispV2Handshake::new([UdpExtensionBuilder.into(), MotdExtensionBuilder.into()]);
        let (mux, driver) = ClientMux::connect(
            &format!("ws://{proxy}/"),
            Some(handshake),
            MuxOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("handshake through the proxy: {e}\n{}", server.log_tail()))
        .with_no_required_extensions();
        let driver = tokio::spawn(driver);
        assert_eq!(mux.motd(), Some("recorded \"motd\""));
        let host = echo.addr().ip().to_string();
        let port = echo.addr().port();
        let mut s1 = mux
            .new_stream(StreamType::TCP, host.clone(), port)
            .await
            .unwrap();
        s1.send(Bytes::from_static(b"hello recorder"))
            .await
            .unwrap();
        let mut got = Vec::new();
        while got.len() < 14 {
            got.extend_from_slice(&s1.next().await.unwrap().unwrap());
        }
        assert_eq!(got, b"hello recorder");
        // A large payload: a pattern in the case, not 1000 bytes of hex.
        s1.send(Bytes::from(vec![b'z'; 1000])).await.unwrap();
        let mut got = 0;
        while got < 1000 {
            got += s1.next().await.unwrap().unwrap().len();
        }
        s1.close(CloseReason::VOLUNTARY).await.unwrap();
        let mut s2 = mux.new_stream(StreamType::TCP, host, port).await.unwrap();
        s2.send(Bytes::from_static(b"\x00\x01bin")).await.unwrap();
        let mut got = Vec::new();
        while got.len() < 5 {
            got.extend_from_slice(&s2.next().await.unwrap().unwrap());
        }
        mux.close().await.unwrap();
        driver.await.unwrap().unwrap();

        let session = recording.await.unwrap().expect("the recording");
        assert_eq!(
            session.end,
            End::ClientGone,
            "the client's disconnect ends it"
        );
        assert_eq!(session.offered.as_deref(), Some("wisp-v2"));
        assert_eq!(session.answered.as_deref(), Some("wisp-v2"));

        let cases = scratch_cases();
        let out = cases.path().join("recorded/wisp-js.echo.yaml");
        let text = write_case(&session, cases.path(), &out, &options).expect("written");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
        let needles = [
            "# recorded.wisp-js.echo: recorded by wisp-conformance record",
            "description: >\n  TODO:",
            "  version: v2\n  extensions: [udp, motd]\n",
            "{motd: \"recorded \\\"motd\\\"\"}",
            "- open: {stream: s1, type: tcp, host: \"127.0.0.1\"",
            "- send: {stream: s1, text: \"hello recorder\"}",
            "- send: {stream: s1, repeat: {byte: 122, count: 1000}}",
            "expect: {type: DATA, stream: s1, len: 1000}  # sha256 ",
            "- close: {stream: s1, reason: 0x02}",
            "- send: {stream: s2, hex: \"000162696e\"}",
            "- read: {stream: s2, until: 5}",
            "- close_mux: {}",
            "  - expect_eof\n",
            "  handshake: ok\n  downgraded: false\n  version: \"2.0\"\n",
            "    s1: {data_len: 1014, closed_by: client}",
            "    s2: {data_len: 5}",
        ];
        tokio::task::spawn_blocking(move || check_and_replay(cases.path(), &text, &needles))
            .await
            .unwrap();
    })
    .await
    .expect("the test finished within its bound");
}

fn info(records: Vec<ExtensionRecord>) -> Bytes {
    Packet::info(InfoPacket::new(WispVersion { major: 2, minor: 0 }, records)).to_bytes()
}

fn event(ms: u64, from: Sender, msg: Bytes) -> Event {
    Event {
        at: Duration::from_millis(ms),
        from,
        msg: Msg::Binary(msg),
    }
}

/// A v2 session with password authentication: the credentials never reach the file, the
/// case uses placeholders and still replays; a long server silence is a pause.
#[test]
fn credentials_are_replaced_and_silences_become_pauses() {
    let mut password = BytesMut::new();
    password.put_u8(5);
    password.put_slice(b"alice");
    password.put_slice(b"s3cret-pw");
    let session = Session {
        upstream: "ws://example.com:6001/wisp/".into(),
        offered: Some("wisp-v2".into()),
        answered: Some("wisp-v2".into()),
        events: vec![
            event(
                0,
                Sender::Server,
                info(vec![ExtensionRecord::new(
                    ExtensionId::PASSWORD,
                    Bytes::from_static(&[1]),
                )]),
            ),
            event(
                1,
                Sender::Client,
                info(vec![ExtensionRecord::new(
                    ExtensionId::PASSWORD,
                    password.freeze(),
                )]),
            ),
            event(2, Sender::Server, Packet::continue_(0, 64).to_bytes()),
            event(
                3,
                Sender::Client,
                Packet {
                    stream_id: 1,
                    body: wisp_client::proto::PacketBody::Connect(ConnectPacket {
                        stream_type: StreamType::TCP,
                        port: 80,
                        host: "example.com".into(),
                    }),
                }
                .to_bytes(),
            ),
            event(4, Sender::Client, Packet::data(1, &b"GET /"[..]).to_bytes()),
            event(
                1500,
                Sender::Server,
                Packet::data(1, &b"HTTP/1.1 200"[..]).to_bytes(),
            ),
            event(
                1501,
                Sender::Server,
                Packet::close(1, CloseReason::VOLUNTARY).to_bytes(),
            ),
            Event {
                at: Duration::from_millis(1600),
                from: Sender::Client,
                msg: Msg::Close,
            },
        ],
        end: End::ClientGone,
    };
    let cases = scratch_cases();
    let out = cases.path().join("auth/recorded-password.yaml");
    let options = RecordOptions::new("ws://example.com:6001/wisp/");
    let text = write_case(&session, cases.path(), &out, &options).expect("written");
    assert!(!text.contains("s3cret"), "{text}");
    assert!(!text.contains("alice"), "{text}");
    let needles = [
        "# NOTE: the client's credentials are not written: the case uses the placeholders recorded-user:recorded-password",
        "{password: {username: recorded-user, password: recorded-password, layout: draft6}}",
        "send: {type: INFO, version: \"2.0\", extensions: [{password: {required: true}}]}",
        "  - pause: 1496ms\n  - send: {type: DATA, stream: s1, text: \"HTTP/1.1 200\"}",
        "- wait_closed: s1\n    - close_mux: {}",
        "    s1: {data_text: \"HTTP/1.1 200\", closed_by: server, reason: 0x02}",
    ];
    check_and_replay(cases.path(), &text, &needles);
}

/// The CLI refuses an upstream it cannot record (before any client connects) with exit 2.
#[test]
fn the_cli_refuses_a_non_ws_upstream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wisp-conformance"))
        .args([
            "record",
            "--upstream",
            "wss://example.com/",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--out")
        .arg(dir.path().join("x.yaml"))
        .output()
        .expect("the CLI runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("only ws:// URLs"), "{stderr}");
    assert!(!dir.path().join("x.yaml").exists());
}
