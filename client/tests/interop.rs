//! Interop against real, independently written Wisp servers at pinned versions:
//! wisp-server-python 0.9.0 (v1 only) and wisp-js 0.5.0 (v1, and v2 when the upgrade offers
//! a subprotocol). The servers are installed by `scripts/install-servers.sh` (called on
//! first use) and started on loopback; these tests never skip.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rstest::rstest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wisp_client::extensions::{MotdExtensionBuilder, UdpExtensionBuilder, WispV2Handshake};
use wisp_client::proto::{CloseReason, ExtensionId, Initiator, StreamType, WispVersion};
use wisp_client::{ClientMux, MuxOptions, StreamEnd, WispError};
use wisp_testkit::{RealServer, ServerKind, TcpEcho, UdpEcho, refused_port};

/// Every test is bounded: a hang is a failure, not a stuck CI job.
const TEST_BOUND: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug)]
enum Target {
    PythonV1,
    JsV1,
    JsV2,
}

impl Target {
    fn kind(self) -> ServerKind {
        match self {
            Target::PythonV1 => ServerKind::WispPython,
            Target::JsV1 | Target::JsV2 => ServerKind::WispJs { motd: None },
        }
    }

    fn handshake(self) -> Option<WispV2Handshake> {
        match self {
            Target::JsV2 => Some(WispV2Handshake::new([
                UdpExtensionBuilder.into(),
                MotdExtensionBuilder.into(),
            ])),
            _ => None,
        }
    }
}

struct Session {
    _server: RealServer,
    mux: ClientMux,
    driver: tokio::task::JoinHandle<Result<(), WispError>>,
}

async fn session(target: Target) -> Session {
    wisp_testkit::ensure_installed().expect("installing the pinned servers");
    let server = RealServer::start(target.kind())
        .await
        .expect("starting the server");
    let (mux, driver) =
        ClientMux::connect(&server.url(), target.handshake(), MuxOptions::default())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "handshake with {target:?} failed: {e}\n{}",
                    server.log_tail()
                )
            })
            .with_no_required_extensions();
    match target {
        Target::JsV2 => {
            assert_eq!(mux.version(), WispVersion::V2);
            assert!(!mux.was_downgraded());
            assert_eq!(mux.get_extension_ids(), vec![ExtensionId::UDP.0]);
        }
        _ => {
            assert_eq!(mux.version(), WispVersion::V1);
            assert!(!mux.was_downgraded());
        }
    }
    assert_eq!(mux.initial_credit(), 128, "both servers grant 128 packets");
    Session {
        _server: server,
        mux,
        driver: tokio::spawn(driver),
    }
}

fn host_port(addr: SocketAddr) -> (String, u16) {
    (addr.ip().to_string(), addr.port())
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, f)
        .await
        .expect("test exceeded its time bound")
}

#[rstest]
#[case::python_v1(Target::PythonV1)]
#[case::js_v1(Target::JsV1)]
#[case::js_v2(Target::JsV2)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_echo(#[case] target: Target) {
    bounded(async {
        let s = session(target).await;
        let echo = TcpEcho::start().await;
        let (host, port) = host_port(echo.addr());
        let mut stream = s.mux.new_stream(StreamType::TCP, host, port).await.unwrap();
        stream
            .send(Bytes::from_static(b"hello wisp"))
            .await
            .unwrap();
        let mut got = Vec::new();
        while got.len() < 10 {
            got.extend_from_slice(&stream.next().await.unwrap().unwrap());
        }
        assert_eq!(got, b"hello wisp");
        stream.close(CloseReason::VOLUNTARY).await.unwrap();
        assert_eq!(stream.get_close_reason(), Some(CloseReason::VOLUNTARY));
        s.mux.close().await.unwrap();
        assert!(s.driver.await.unwrap().is_ok());
    })
    .await;
}

#[rstest]
#[case::python_v1(Target::PythonV1)]
#[case::js_v1(Target::JsV1)]
#[case::js_v2(Target::JsV2)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_echo_keeps_datagram_boundaries(#[case] target: Target) {
    bounded(async {
        let s = session(target).await;
        let echo = UdpEcho::start().await;
        let (host, port) = host_port(echo.addr());
        let mut stream = s.mux.new_stream(StreamType::UDP, host, port).await.unwrap();
        for i in 0..5u8 {
            let datagram = Bytes::from(vec![i; 100 + usize::from(i)]);
            stream.send(datagram.clone()).await.unwrap();
            let back = stream.next().await.unwrap().unwrap();
            assert_eq!(back, datagram, "datagram {i} came back whole");
        }
        s.mux.close().await.unwrap();
    })
    .await;
}

#[rstest]
#[case::python_v1(Target::PythonV1)]
#[case::js_v1(Target::JsV1)]
#[case::js_v2(Target::JsV2)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_mib_byte_exact_through_one_stream(#[case] target: Target) {
    bounded(async {
        let s = session(target).await;
        let echo = TcpEcho::start().await;
        let (host, port) = host_port(echo.addr());
        let stream = s.mux.new_stream(StreamType::TCP, host, port).await.unwrap();
        let io = stream.into_tokio_io();
        let (mut rd, mut wr) = tokio::io::split(io);
        const LEN: usize = 10 * 1024 * 1024;
        let data: Vec<u8> = (0..LEN).map(|i| (i * 31 % 251) as u8).collect();
        let expected = data.clone();
        let writer = tokio::spawn(async move {
            // 16 KiB writes: 640 DATA packets, five times the initial credit of 128, so the
            // transfer only finishes if CONTINUE credit is honoured and renewed.
            for chunk in data.chunks(16 * 1024) {
                wr.write_all(chunk).await.unwrap();
            }
            wr
        });
        let mut got = vec![0u8; LEN];
        rd.read_exact(&mut got).await.unwrap();
        assert!(got == expected, "10 MiB came back byte-exact");
        let _wr = writer.await.unwrap();
        s.mux.close().await.unwrap();
    })
    .await;
}

#[rstest]
#[case::python_v1(Target::PythonV1)]
#[case::js_v1(Target::JsV1)]
#[case::js_v2(Target::JsV2)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_concurrent_streams(#[case] target: Target) {
    bounded(async {
        let s = session(target).await;
        let echo = TcpEcho::start().await;
        let (host, port) = host_port(echo.addr());
        let mut tasks = Vec::new();
        for n in 0..32u32 {
            let stream = s
                .mux
                .new_stream(StreamType::TCP, &host, port)
                .await
                .unwrap();
            assert_eq!(stream.get_stream_id(), n + 1, "ids are sequential from 1");
            tasks.push(tokio::spawn(async move {
                let mut io = stream.into_tokio_io();
                let payload: Vec<u8> = (0..64 * 1024).map(|i| (i as u32 ^ n) as u8).collect();
                let mut back = vec![0u8; payload.len()];
                let (mut rd, mut wr) = tokio::io::split(&mut io);
                let (w, r) = tokio::join!(wr.write_all(&payload), rd.read_exact(&mut back));
                w.unwrap();
                r.unwrap();
                assert!(back == payload, "stream {n} echoed its own bytes");
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        s.mux.close().await.unwrap();
    })
    .await;
}

#[rstest]
#[case::python_v1(Target::PythonV1, CloseReason::SERVER_STREAM_UNREACHABLE)]
#[case::js_v1(Target::JsV1, CloseReason::UNEXPECTED)]
#[case::js_v2(Target::JsV2, CloseReason::UNEXPECTED)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connect_reports_the_server_close_reason(
    #[case] target: Target,
    #[case] reason: CloseReason,
) {
    bounded(async {
        let s = session(target).await;
        let (host, port) = host_port(refused_port().await);
        let mut stream = s.mux.new_stream(StreamType::TCP, host, port).await.unwrap();
        assert!(
            stream.next().await.is_none(),
            "the stream ends without data"
        );
        assert_eq!(stream.get_close_reason(), Some(reason));
        assert!(matches!(
            stream.end(),
            Some(StreamEnd::Closed {
                initiator: Initiator::Remote,
                ..
            })
        ));
        // The connection survives a refused stream.
        let echo = TcpEcho::start().await;
        let (host, port) = host_port(echo.addr());
        let mut again = s.mux.new_stream(StreamType::TCP, host, port).await.unwrap();
        again
            .send(Bytes::from_static(b"still alive"))
            .await
            .unwrap();
        assert_eq!(&again.next().await.unwrap().unwrap()[..], b"still alive");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wisp_js_v2_motd_is_negotiated() {
    bounded(async {
        wisp_testkit::ensure_installed().unwrap();
        let server = RealServer::start(ServerKind::WispJs {
            motd: Some("hello from wisp-js".into()),
        })
        .await
        .unwrap();
        let handshake = WispV2Handshake::new([MotdExtensionBuilder.into()]);
        let (mux, driver) =
            ClientMux::connect(&server.url(), Some(handshake), MuxOptions::default())
                .await
                .unwrap()
                .with_no_required_extensions();
        let driver = tokio::spawn(driver);
        assert_eq!(mux.motd(), Some("hello from wisp-js"));
        assert_eq!(mux.get_extension_ids(), vec![ExtensionId::MOTD.0]);
        mux.close().await.unwrap();
        driver.await.unwrap().unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_client_is_downgraded_by_wisp_python() {
    bounded(async {
        wisp_testkit::ensure_installed().unwrap();
        let server = RealServer::start(ServerKind::WispPython).await.unwrap();
        let handshake = WispV2Handshake::new([UdpExtensionBuilder.into()]);
        let (mux, driver) =
            ClientMux::connect(&server.url(), Some(handshake), MuxOptions::default())
                .await
                .unwrap()
                .with_no_required_extensions();
        let driver = tokio::spawn(driver);
        assert!(mux.was_downgraded());
        assert_eq!(mux.version(), WispVersion::V1);
        // v1.2 makes UDP mandatory, so UDP streams remain available.
        assert_eq!(mux.get_extension_ids(), vec![ExtensionId::UDP.0]);
        let echo = TcpEcho::start().await;
        let (host, port) = host_port(echo.addr());
        let mut stream = mux.new_stream(StreamType::TCP, host, port).await.unwrap();
        stream
            .send(Bytes::from_static(b"v1 after all"))
            .await
            .unwrap();
        assert_eq!(&stream.next().await.unwrap().unwrap()[..], b"v1 after all");
        mux.close().await.unwrap();
        driver.await.unwrap().unwrap();
    })
    .await;
}
