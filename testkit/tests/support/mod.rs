//! Helpers shared by the integration tests of this crate.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_websockets::{ClientBuilder, MaybeTlsStream, WebSocketStream};

/// A client WebSocket over loopback TCP.
pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Bound on one WebSocket upgrade.
const UPGRADE_BOUND: Duration = Duration::from_secs(10);

/// Opens a WebSocket to `url`, offering `Sec-WebSocket-Protocol: {subprotocol}`
/// when given; returns it with the server's upgrade response.
///
/// # Panics
///
/// If the upgrade fails or takes longer than 10 s.
pub(crate) async fn ws_connect(url: &str, subprotocol: Option<&str>) -> (Ws, http::Response<()>) {
    let uri: Uri = url.parse().unwrap();
    let mut builder = ClientBuilder::from_uri(uri);
    if let Some(protocol) = subprotocol {
        builder = builder
            .add_header(
                HeaderName::from_static("sec-websocket-protocol"),
                HeaderValue::from_str(protocol).unwrap(),
            )
            .unwrap();
    }
    timeout(UPGRADE_BOUND, builder.connect())
        .await
        .expect("WebSocket upgrade timed out")
        .unwrap_or_else(|e| panic!("WebSocket upgrade to {url}: {e}"))
}
