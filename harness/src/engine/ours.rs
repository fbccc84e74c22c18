//! Our client, `wisp_client::ClientMux`, set up for a case: the one handshake builder
//! (the extensions offered, from a client-role case's `client:` section or from a
//! server-role run's configuration), the options, and the multiplexor over a transport.

use wisp_cases::client::{ClientExtension, ClientOptions, VersionSel};
use wisp_cases::values::ExtName;
use wisp_cases::values::extension_label;
use wisp_client::extensions::{
    AnyExtensionBuilder, CertAuthExtensionBuilder, MotdExtensionBuilder, PasswordExtensionBuilder,
    StreamConfirmationExtensionBuilder, UdpExtensionBuilder, WispV2Handshake,
};
use wisp_client::proto::NegotiatedExtension;
use wisp_client::transport::{TransportRead, TransportWrite};
use wisp_client::{ClientMux, MultiplexorActorFuture, MuxOptions, WispError};

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
    let builders: Vec<AnyExtensionBuilder> = extensions
        .iter()
        .map(|e| match e {
            ClientExtension::Udp => UdpExtensionBuilder.into(),
            ClientExtension::Motd => MotdExtensionBuilder.into(),
            ClientExtension::StreamConfirmation => StreamConfirmationExtensionBuilder.into(),
            ClientExtension::Password(p) => {
                let creds = match (&p.username, &p.password) {
                    (Some(u), Some(pw)) => Some((u.clone(), pw.clone())),
                    _ => None,
                };
                PasswordExtensionBuilder::new_client(creds)
                    .layout(p.layout.layout())
                    .into()
            }
            ClientExtension::CertAuth(c) => {
                CertAuthExtensionBuilder::new_client(c.signing_key.clone()).into()
            }
        })
        .collect();
    let mut handshake = WispV2Handshake::new(builders);
    for id in required {
        handshake = handshake.with_required_extension(id.0);
    }
    Some(handshake)
}

/// The client's options from a case's `client.options`.
pub(crate) fn mux_options(o: &ClientOptions) -> MuxOptions {
    let mut opts = MuxOptions::default();
    if let Some(t) = o.handshake_timeout {
        opts = opts.handshake_timeout(Some(t.0));
    }
    if let Some(t) = o.legacy_info_wait {
        opts = opts.legacy_info_wait(t.0);
    }
    if let Some(n) = o.max_payload_len {
        opts = opts.max_payload_len(n);
    }
    if let Some(n) = o.first_stream_id {
        opts = opts.first_stream_id(n);
    }
    if let Some(t) = o.stream_open_timeout {
        opts = opts.stream_open_timeout(Some(t.0));
    }
    opts
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
    if required_after.is_empty() {
        Ok(result.with_no_required_extensions())
    } else {
        let ids: Vec<u8> = required_after.iter().map(|e| e.0.0).collect();
        result.with_required_extensions(&ids).await
    }
}

/// A negotiated extension as transcripts show it.
pub(crate) fn describe_extension(e: &NegotiatedExtension) -> String {
    match e {
        NegotiatedExtension::Motd(m) => format!("motd {m:?}"),
        NegotiatedExtension::Password { required } => format!("password(required={required})"),
        NegotiatedExtension::CertAuth {
            required,
            algorithms,
        } => format!("cert_auth(required={required}, algorithms=0x{algorithms:02x})"),
        other => extension_label(other.id()),
    }
}
