//! `wss://`: the server suite through a local TLS-terminating proxy (a self-signed
//! certificate for localhost, `tests/tls/`) in front of `wisp_testkit::faulty`'s correct
//! server. With `--insecure` the cases run and pass; without it the certificate is
//! refused and every case is a connection error.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use wisp_harness::server::{RunMode, ServerConfig};
use wisp_harness::{Gate, Subject, SuiteOptions, SuiteReport, Verdict, run_suite};
use wisp_testkit::faulty::{FaultConfig, FaultyServer};

mod common;
use common::{by_id, server_cases};

const TLS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls");

/// Accepts TLS on a free loopback port and forwards the plain bytes to `to`.
async fn tls_proxy(to: std::net::SocketAddr) -> (u16, tokio::task::JoinHandle<()>) {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(format!("{TLS_DIR}/cert.pem"))
            .expect("cert.pem")
            .collect::<Result<_, _>>()
            .expect("a certificate");
    let key = PrivateKeyDer::from_pem_file(format!("{TLS_DIR}/key.pem")).expect("key.pem");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("the certificate and key");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut upstream) = TcpStream::connect(to).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    (port, task)
}

async fn run(url: String, insecure: bool) -> SuiteReport {
    let mut config = ServerConfig::new(url, RunMode::V2);
    config.insecure = insecure;
    config.step_timeout = Duration::from_secs(2);
    let options = SuiteOptions {
        jobs: 4,
        ..SuiteOptions::default()
    };
    run_suite(
        &server_cases(&[
            "server.tcp.echo",
            "server.handshake.v2.info-first",
            "server.udp.echo",
        ]),
        Subject::Server(Box::new(config)),
        &options,
        &mut |_, _, _| {},
    )
    .await
    .expect("the run starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_runs_over_wss_behind_a_tls_proxy() {
    let server = FaultyServer::start(FaultConfig::default()).expect("the server starts");
    let (port, proxy) = tls_proxy(server.addr()).await;
    let url = format!("wss://localhost:{port}/");

    let report = run(url.clone(), true).await;
    for c in &report.cases {
        assert!(c.error.is_none(), "{c:?}");
        assert_eq!(c.verdict, Verdict::Ok, "{}: {:?}", c.id, c.reasons);
    }
    assert_eq!(by_id(&report, "server.tcp.echo").verdict, Verdict::Ok);
    assert!(report.cases.len() >= 3, "{:?}", report.cases);

    // Without --insecure the self-signed certificate is refused: connection errors.
    let refused = run(url, false).await;
    let errors: Vec<&str> = refused
        .cases
        .iter()
        .filter_map(|c| c.error.as_deref())
        .collect();
    assert!(!errors.is_empty(), "{:?}", refused.cases);
    assert!(
        errors.iter().all(|e| e.contains("TLS handshake")),
        "{errors:?}"
    );
    assert_eq!(Gate::decide(&refused, false, None, true).exit_code, 2);
    proxy.abort();
}
