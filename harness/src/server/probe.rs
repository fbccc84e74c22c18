//! The capability probe: one connection at the start of a run that reads what the server
//! advertises (its first packets, its INFO), so cases that need an optional feature the
//! server lacks are UNSUPPORTED rather than failed.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use wisp_cases::server::Capability;
use wisp_cases::values::extension_label;
use wisp_client::proto::{
    CertAuthServerRecord, ExtensionId, InfoPacket, Packet, PacketBody, PasswordServerRecord,
};

use super::session;
use super::{RunMode, ServerConfig};

/// How long a v2 probe waits for an INFO after a CONTINUE(0) came first (the order of
/// drafts 1–3, which wisp-mux 5.x still sends).
const LEGACY_INFO_WAIT: Duration = Duration::from_millis(500);

/// What the server advertised on a fresh connection in the run's mode.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Probe {
    /// The `Sec-WebSocket-Protocol` the server echoed, if any.
    pub echoed_subprotocol: Option<String>,
    /// The first packet, decoded.
    pub first_packet: Option<String>,
    /// The server's INFO (v2 mode), if it sent one.
    #[serde(serialize_with = "ser_info")]
    pub info: Option<InfoPacket>,
    /// The credit of the first CONTINUE(0), if one arrived.
    pub initial_credit: Option<u32>,
    /// Why the probe could not finish (the server did not accept or did not talk).
    pub error: Option<String>,
}

fn ser_info<S: serde::Serializer>(info: &Option<InfoPacket>, s: S) -> Result<S::Ok, S::Error> {
    match info {
        None => s.serialize_none(),
        Some(i) => s.serialize_some(&serde_json::json!({
            "version": i.version.to_string(),
            "extensions": i.extensions.iter().map(|r| extension_label(r.id)).collect::<Vec<_>>(),
        })),
    }
}

/// Whether a case's capability is there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CapCheck {
    /// Present.
    Present,
    /// Absent: the case is UNSUPPORTED, for this reason.
    Absent(String),
    /// The probe failed, so nobody knows: the case is a harness error.
    Unknown(String),
}

impl Probe {
    /// Connects in the run's mode and reads the server's first packets.
    pub(crate) async fn run(config: &ServerConfig) -> Probe {
        let mut probe = Probe::default();
        let subprotocol = match config.mode {
            RunMode::V1 => None,
            RunMode::V2 => Some(wisp_client::transport::WISP_V2_SUBPROTOCOL),
        };
        let mut opened = match session::open(
            &config.url,
            subprotocol,
            config.step_timeout,
            config.insecure,
        )
        .await
        {
            Ok(o) => o,
            Err(e) => {
                probe.error = Some(e);
                return probe;
            }
        };
        probe.echoed_subprotocol = opened.echoed.clone();
        let mut first = true;
        let mut bound = config.step_timeout;
        loop {
            let msg = match tokio::time::timeout(bound, opened.ws.next()).await {
                Ok(Some(Ok(m))) if m.is_binary() => Bytes::from(m.into_payload()),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) if first => {
                    probe.error =
                        Some(format!("the WebSocket failed before the first packet: {e}"));
                    break;
                }
                Ok(None) if first => {
                    probe.error =
                        Some("the server ended the connection before sending a packet".to_owned());
                    break;
                }
                Err(_) if first => {
                    probe.error = Some(format!(
                        "the server sent no packet within {}ms of the upgrade",
                        bound.as_millis()
                    ));
                    break;
                }
                _ => break,
            };
            let packet = Packet::decode(msg.clone());
            if first {
                probe.first_packet = Some(match &packet {
                    Ok(p) => format!("{} stream={}", p.packet_type(), p.stream_id),
                    Err(e) => format!("malformed ({e}) raw={}", hex::encode(&msg)),
                });
                first = false;
            }
            match packet.map(|p| (p.stream_id, p.body)) {
                Ok((0, PacketBody::Info(info))) => {
                    probe.info = Some(info);
                    break;
                }
                Ok((0, PacketBody::Continue { buffer_remaining })) => {
                    probe.initial_credit.get_or_insert(buffer_remaining);
                    if config.mode == RunMode::V1 || probe.info.is_some() {
                        break;
                    }
                    bound = LEGACY_INFO_WAIT;
                }
                _ => break,
            }
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), opened.ws.close()).await;
        probe
    }

    /// Whether the server (in this run) has `cap`.
    pub(crate) fn check(&self, cap: Capability, config: &ServerConfig) -> CapCheck {
        let absent = |why: &str| CapCheck::Absent(why.to_owned());
        match cap {
            Capability::Credentials => {
                return if config.credentials.is_some() {
                    CapCheck::Present
                } else {
                    absent("no credentials configured (pass --password USER:PASS)")
                };
            }
            Capability::Key => {
                return if config.key.is_some() {
                    CapCheck::Present
                } else {
                    absent("no private key configured (pass --key ed25519.pem)")
                };
            }
            Capability::Blocked => {
                return if config.blocked.is_some() {
                    CapCheck::Present
                } else {
                    absent("no blocked destination configured (pass --blocked HOST:PORT)")
                };
            }
            _ => {}
        }
        if let Some(e) = &self.error {
            return CapCheck::Unknown(format!("the capability probe failed: {e}"));
        }
        let v2 = config.mode == RunMode::V2 && self.info.is_some();
        let record = |id: ExtensionId| {
            self.info
                .as_ref()
                .filter(|_| v2)
                .and_then(|i| i.extension(id))
        };
        let listed = |id: ExtensionId, what: &str| {
            if record(id).is_some() {
                CapCheck::Present
            } else if v2 {
                CapCheck::Absent(format!("the server's INFO does not list {what}"))
            } else {
                CapCheck::Absent(format!("{what} needs v2 and the server spoke v1"))
            }
        };
        match cap {
            Capability::V2 => match config.mode {
                RunMode::V1 => absent("a v1 run"),
                RunMode::V2 if v2 => CapCheck::Present,
                RunMode::V2 => absent("the server answered the v2 upgrade as v1 (no INFO)"),
            },
            // Mandatory in v1.2 and on a downgraded connection; advertised in v2.
            Capability::Udp if !v2 => CapCheck::Present,
            Capability::Udp => listed(ExtensionId::UDP, "UDP (0x01)"),
            Capability::Password => listed(ExtensionId::PASSWORD, "password authentication (0x02)"),
            Capability::PasswordRequired => match record(ExtensionId::PASSWORD) {
                Some(r) if PasswordServerRecord::decode(&r.data).required => CapCheck::Present,
                Some(_) => absent("the server's password record does not mark it required"),
                None => listed(ExtensionId::PASSWORD, "password authentication (0x02)"),
            },
            Capability::PasswordOptional => match record(ExtensionId::PASSWORD) {
                Some(r) if !PasswordServerRecord::decode(&r.data).required => CapCheck::Present,
                Some(_) => absent("the server's password record marks it required"),
                None => listed(ExtensionId::PASSWORD, "password authentication (0x02)"),
            },
            Capability::CertAuth => {
                listed(ExtensionId::CERT_AUTH, "certificate authentication (0x03)")
            }
            Capability::CertAuthRequired => match record(ExtensionId::CERT_AUTH) {
                Some(r) => match CertAuthServerRecord::decode(&r.data) {
                    Ok(rec) if rec.required => CapCheck::Present,
                    Ok(_) => absent("the server's certificate record does not mark it required"),
                    Err(e) => absent(&format!(
                        "the server's certificate record is malformed: {}",
                        e.reason
                    )),
                },
                None => listed(ExtensionId::CERT_AUTH, "certificate authentication (0x03)"),
            },
            Capability::Motd => listed(ExtensionId::MOTD, "a MOTD (0x04)"),
            Capability::StreamConfirmation => listed(
                ExtensionId::STREAM_CONFIRMATION,
                "stream-open confirmation (0x05)",
            ),
            Capability::Credentials | Capability::Key | Capability::Blocked => CapCheck::Present,
        }
    }
}
