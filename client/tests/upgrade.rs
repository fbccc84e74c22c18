//! The WebSocket upgrade's checks that the WebSocket library leaves to the client
//! (RFC 6455 §4.1): a `Sec-WebSocket-Protocol` in the response must be one the request
//! offered.

use http::{HeaderName, HeaderValue};
use tokio::net::TcpListener;
use tokio_websockets::ServerBuilder;
use wisp_client::WispError;
use wisp_client::transport::{ConnectOptions, connect};

/// A server that answers every upgrade with `Sec-WebSocket-Protocol: chosen` and then
/// holds the connection.
async fn server_choosing(chosen: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let builder = ServerBuilder::new()
                    .add_header(
                        HeaderName::from_static("sec-websocket-protocol"),
                        HeaderValue::from_static(chosen),
                    )
                    .unwrap();
                if let Ok((_, ws)) = builder.accept(tcp).await {
                    std::future::pending::<()>().await;
                    drop(ws);
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn a_subprotocol_that_was_not_offered_fails_the_upgrade() {
    let url = server_choosing("chat").await;
    for options in [ConnectOptions::v1(), ConnectOptions::v2()] {
        let err = connect(&url, &options).await.unwrap_err();
        assert!(matches!(err, WispError::WsImplError(_)), "{err:?}");
        assert!(err.to_string().contains("\"chat\""), "{err}");
    }
}

#[tokio::test]
async fn any_offered_subprotocol_may_be_chosen() {
    let url = server_choosing("chat").await;
    let mut list = ConnectOptions::v2();
    list.subprotocol = Some("wisp-v2, chat".to_owned());
    let header = ConnectOptions::v1().header("Sec-WebSocket-Protocol", "chat");
    for options in [list, header] {
        let connection = connect(&url, &options).await.expect("chat was offered");
        assert_eq!(connection.echoed_subprotocol.as_deref(), Some("chat"));
    }
}

#[tokio::test]
async fn a_connect_timeout_too_long_for_an_instant_means_no_bound() {
    let url = server_choosing("wisp-v2").await;
    let options = ConnectOptions::v2().timeout(Some(std::time::Duration::MAX));
    let connection = connect(&url, &options).await.expect("no overflow panic");
    assert_eq!(connection.echoed_subprotocol.as_deref(), Some("wisp-v2"));
}
