//! Our client, `wisp_client::ClientMux`, set up for a case: the one handshake builder
//! (the extensions offered, from a client-role case's `client:` section or from a
//! server-role run's configuration), the options, and the multiplexor over a transport.

use tokio::io::{AsyncRead, AsyncWrite};
use wisp_cases::client::{ClientExtension, VersionSel};
use wisp_cases::values::ExtName;
use wisp_client::extensions::WispV2Handshake;
use wisp_client::transport::{
    BatchedStream, TokioWebsocketsTransport, TransportRead, TransportWrite,
};
use wisp_client::{ClientMux, MultiplexorActorFuture, MuxOptions, MuxResult, WispError};

/// The v2 handshake offering `extensions` and requiring `required` in the server's INFO
/// (`None`: a v1 client).
pub(crate) fn v2_handshake(
    version: VersionSel,
    extensions: &[ClientExtension],
    required: &[ExtName],
) -> Option<WispV2Handshake> {
    if version == VersionSel::V1 {
        return None;
    }
    let mut handshake = WispV2Handshake::new(extensions.iter().map(ClientExtension::builder));
    for id in required {
        handshake = handshake.with_required_extension(id.0);
    }
    Some(handshake)
}

/// Runs the handshake over `rx`/`tx`, then checks `required_after`
/// (`MuxResult::with_required_extensions`). Returns the multiplexor and its driver
/// future, which the caller spawns.
pub(crate) async fn open_mux<R: TransportRead, W: TransportWrite>(
    rx: R,
    tx: W,
    handshake: Option<WispV2Handshake>,
    options: MuxOptions,
    required_after: &[ExtName],
) -> Result<(ClientMux, MultiplexorActorFuture), WispError> {
    let result = ClientMux::new_with_options(rx, tx, handshake, options).await?;
    check_required_after(result, required_after).await
}

/// Runs the handshake over a whole WebSocket the driver owns, the way
/// `ClientMux::connect` does (`ClientMux::new_websocket`), then checks `required_after`
/// like [`open_mux`].
pub(crate) async fn open_mux_websocket<S>(
    ws: TokioWebsocketsTransport<BatchedStream<S>>,
    handshake: Option<WispV2Handshake>,
    options: MuxOptions,
    required_after: &[ExtName],
) -> Result<(ClientMux, MultiplexorActorFuture), WispError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let result = ClientMux::new_websocket(ws, handshake, options).await?;
    check_required_after(result, required_after).await
}

/// `MuxResult::with_required_extensions` for `required_after` (none: every extension the
/// server offered is accepted).
async fn check_required_after(
    result: MuxResult,
    required_after: &[ExtName],
) -> Result<(ClientMux, MultiplexorActorFuture), WispError> {
    if required_after.is_empty() {
        Ok(result.with_no_required_extensions())
    } else {
        let ids: Vec<u8> = required_after.iter().map(|e| e.0.0).collect();
        result.with_required_extensions(&ids).await
    }
}
