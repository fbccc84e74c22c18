//! `examples/simple_wisp_client.rs`, the shape of epoxy's `simple-wisp-client`, run against
//! the testkit's Wisp server and a loopback echo: it must compile with the seed API's
//! spellings and move data both ways.

// The example's `main` is not used here, and its items are `pub` for the binary.
#[allow(dead_code, unreachable_pub)]
#[path = "../examples/simple_wisp_client.rs"]
mod simple_wisp_client;

use std::time::Duration;

use simple_wisp_client::{Config, run};
use wisp_testkit::TcpEcho;
use wisp_testkit::faulty::{FaultConfig, FaultyServer, Handshake};

fn config(url: String, echo: &TcpEcho, extra: &[&str]) -> Config {
    let mut args = vec![
        "--wisp".to_owned(),
        url,
        "--tcp".to_owned(),
        echo.addr().to_string(),
        "--streams".to_owned(),
        "4".to_owned(),
        "--packet-size".to_owned(),
        "4".to_owned(),
        "--duration".to_owned(),
        "300ms".to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let mut config = Config::from_args(args).expect("the flags parse");
    config.print_stats = false;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_epoxy_shaped_client_runs_v2_with_a_password() {
    let server = FaultyServer::start(FaultConfig {
        password: Some(("alice".into(), "s3cret".into())),
        motd: Some("hello".into()),
        ..FaultConfig::default()
    })
    .unwrap();
    let echo = TcpEcho::start().await;
    let config = config(
        server.url(),
        &echo,
        &["--wisp-v2", "--udp", "--motd", "--auth", "alice:s3cret"],
    );
    assert_eq!(config.packet_size, 4096);
    assert_eq!(config.duration, Duration::from_millis(300));
    let report = tokio::time::timeout(Duration::from_secs(30), run(&config))
        .await
        .expect("the run ends")
        .expect("the run succeeds");
    assert!(!report.downgraded);
    let mut ids = report.extension_ids.clone();
    ids.sort();
    assert_eq!(ids, [0x01, 0x02, 0x04]);
    assert_eq!(report.motd.as_deref(), Some("hello"));
    assert!(report.sent > 0, "{report:?}");
    assert!(report.received > 0, "{report:?}");
    assert!(report.received <= report.sent, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_epoxy_shaped_client_is_downgraded_by_a_v1_server() {
    let server = FaultyServer::start(FaultConfig {
        handshake: Handshake::V1,
        ..FaultConfig::default()
    })
    .unwrap();
    let echo = TcpEcho::start().await;
    let config = config(server.url(), &echo, &["--wisp-v2", "--udp"]);
    let report = tokio::time::timeout(Duration::from_secs(30), run(&config))
        .await
        .expect("the run ends")
        .expect("the run succeeds");
    assert!(report.downgraded, "{report:?}");
    assert_eq!(report.extension_ids, [0x01], "v1.2 implies UDP");
    assert!(report.sent > 0 && report.received > 0, "{report:?}");
}

#[test]
fn the_flags_are_epoxys() {
    let config = Config::from_args(
        [
            "-w",
            "ws://h:1/",
            "-t",
            "[::1]:7",
            "-s",
            "3",
            "-p",
            "2",
            "-u",
            "--auth",
            "a:b:c",
        ]
        .map(String::from),
    )
    .unwrap();
    assert_eq!(config.tcp, ("::1".to_owned(), 7));
    assert_eq!(
        (config.streams, config.packet_size, config.udp),
        (3, 2048, true)
    );
    assert_eq!(config.auth, Some(("a".to_owned(), "b:c".to_owned())));
    assert!(Config::from_args(["--wisp".to_owned()]).is_err());
    assert!(Config::from_args(["--bogus".to_owned()]).is_err());
}
