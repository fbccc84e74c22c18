//! The extensions as the case language writes them, one entry type per place a case names
//! one, each turning itself into `wisp-proto`'s types with the encoders of the extension's
//! own module (`wisp_proto::ext`), so the engine, the mock server's packet builder and the
//! harness's raw scripts have no per-extension code:
//!
//! - [`ClientExtension`]: what the client under test offers (`client.extensions`), as the
//!   offer our client makes ([`ClientExtension::builder`]);
//! - [`ServerExtension`]: a record of a server INFO a script sends (the mock's `send` of
//!   an INFO), built by [`ServerExtension::record`];
//! - [`ClientInfoRecord`]: a record of a client INFO a server-role script sends
//!   (`send_info`), built by [`ClientInfoRecord::record`].
//!
//! Adding an extension here is one variant per entry type that applies, with its arm in
//! the conversion beside it.

use bytes::{BufMut, Bytes};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_saphyr::Spanned;
use wisp_proto::ext::cert_auth::{CertAuthClientRecord, CertAuthServerRecord};
use wisp_proto::ext::motd::{self, MotdServerRecord};
use wisp_proto::ext::password::{PasswordClientRecord, PasswordServerRecord};
use wisp_proto::ext::{confirm, udp};
use wisp_proto::{
    AnyExtensionBuilder, CertAuthExtensionBuilder, ExtensionId, ExtensionRecord, InfoPacket,
    MotdExtensionBuilder, PasswordExtensionBuilder, PasswordLayout,
    StreamConfirmationExtensionBuilder, UdpExtensionBuilder, encode_record,
};

use crate::packet::yes;
use crate::server::{KeyChoice, Secret};
use crate::values::Hex;

// ---- the client's offer (`client.extensions`) ----

/// The password extension offered by the client.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientPassword {
    /// The username (give both or neither).
    #[serde(default)]
    pub username: Option<String>,
    /// The password (give both or neither).
    #[serde(default)]
    pub password: Option<String>,
    /// The record layout: `draft6` or `draft5` pins it; `auto` (the default, as in the
    /// client) leaves it to the server's handshake order ([`PasswordLayout::for_order`]).
    #[serde(default)]
    pub layout: LayoutChoice,
}

/// A password `layout:` in the client's offer: `auto`, or a pinned
/// [`PasswordLayout`] (`draft6`, `draft5`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LayoutChoice {
    /// Not pinned: the client picks the layout from the server's handshake order.
    #[default]
    Auto,
    /// Pinned to this layout.
    Pinned(PasswordLayout),
}

impl LayoutChoice {
    /// The pinned layout (`None` for `auto`).
    pub fn pinned(self) -> Option<PasswordLayout> {
        match self {
            Self::Auto => None,
            Self::Pinned(layout) => Some(layout),
        }
    }
}

impl<'de> Deserialize<'de> for LayoutChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        if name == "auto" {
            return Ok(Self::Auto);
        }
        PasswordLayout::deserialize(de::value::StrDeserializer::<D::Error>::new(&name))
            .map(Self::Pinned)
            .map_err(|_| de::Error::custom(format!("layout {name:?}: use auto, draft6 or draft5")))
    }
}

/// The certificate extension offered by the client.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertAuth {
    /// A PKCS#8 PEM private key, relative to `cases/` (none: offered without a key).
    #[serde(default)]
    pub key: Option<Spanned<String>>,
    /// The loaded key (filled by the loader).
    #[serde(skip)]
    pub signing_key: Option<SigningKey>,
}

/// An extension the client offers.
// Case files are small configuration values, read once; boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientExtension {
    /// UDP (0x01).
    Udp,
    /// Password (0x02).
    Password(ClientPassword),
    /// Certificate authentication (0x03).
    CertAuth(ClientCertAuth),
    /// MOTD (0x04).
    Motd,
    /// Stream-open confirmation (0x05).
    StreamConfirmation,
}

impl ClientExtension {
    /// The offer our client makes for this entry.
    pub fn builder(&self) -> AnyExtensionBuilder {
        match self {
            Self::Udp => UdpExtensionBuilder.into(),
            Self::Password(p) => {
                let credentials = match (&p.username, &p.password) {
                    (Some(u), Some(pw)) => Some((u.clone(), pw.clone())),
                    _ => None,
                };
                let builder = PasswordExtensionBuilder::new_client(credentials);
                match p.layout.pinned() {
                    Some(layout) => builder.layout(layout).into(),
                    None => builder.into(),
                }
            }
            Self::CertAuth(c) => CertAuthExtensionBuilder::new_client(c.signing_key.clone()).into(),
            Self::Motd => MotdExtensionBuilder.into(),
            Self::StreamConfirmation => StreamConfirmationExtensionBuilder.into(),
        }
    }
}

// ---- a server INFO a script sends (`send: {type: INFO, extensions: [...]}`) ----

/// Server password metadata.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerPassword {
    /// Whether credentials are required.
    #[serde(default = "yes")]
    pub required: bool,
}

/// How the certificate challenge is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// 64 random bytes from the OS (masked in traces).
    Random,
    /// These bytes.
    Fixed(Hex),
}

impl<'de> Deserialize<'de> for Challenge {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "random" {
            Ok(Self::Random)
        } else {
            Hex::parse(&s).map(Self::Fixed).map_err(de::Error::custom)
        }
    }
}

/// Server certificate-auth metadata.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerCertAuth {
    /// Whether a signature is required.
    #[serde(default = "yes")]
    pub required: bool,
    /// The algorithm mask (bit 0 = Ed25519).
    #[serde(default = "one")]
    pub algorithms: u8,
    /// `random` (64 bytes from getrandom) or hex.
    #[serde(default = "random")]
    pub challenge: Challenge,
    /// The public key (PEM, relative to `cases/`) a later `expect` verifies against.
    #[serde(default)]
    pub verify_key: Option<Spanned<String>>,
    /// The loaded key.
    #[serde(skip)]
    pub verifying_key: Option<(String, VerifyingKey)>,
}

fn one() -> u8 {
    1
}
fn random() -> Challenge {
    Challenge::Random
}

/// A record of unknown or deliberately malformed shape.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExtension {
    /// The extension id.
    pub id: u8,
    /// The metadata.
    #[serde(default)]
    pub hex: Hex,
    /// The length written in the record header (default: the metadata length); larger
    /// than the data makes an oversized record.
    #[serde(default)]
    pub len: Option<u32>,
}

impl RawExtension {
    /// The record as written, with its declared length.
    pub fn record(&self) -> BuiltRecord {
        BuiltRecord {
            record: ExtensionRecord::new(ExtensionId(self.id), self.hex.0.clone()),
            declared_len: self.len,
            challenge: None,
        }
    }
}

/// An extension record in the server's INFO.
// Case files are small configuration values, read once; boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerExtension {
    /// UDP (empty metadata).
    Udp,
    /// Password (`required` byte).
    Password(ServerPassword),
    /// Certificate auth (`required`, `algorithms`, challenge).
    CertAuth(ServerCertAuth),
    /// MOTD text.
    Motd(String),
    /// Stream-open confirmation (empty metadata).
    StreamConfirmation,
    /// Any id with any bytes.
    Raw(RawExtension),
}

/// A certificate challenge a script put in a server record.
#[derive(Clone, Debug)]
pub struct SentChallenge {
    /// The challenge bytes.
    pub bytes: Bytes,
    /// Whether they are random (and must be masked in traces).
    pub random: bool,
}

/// One INFO record built from a case's entry.
#[derive(Clone, Debug)]
pub struct BuiltRecord {
    /// The record.
    pub record: ExtensionRecord,
    /// The length its header declares instead of the true one (a `raw` entry's `len`).
    pub declared_len: Option<u32>,
    /// The certificate challenge it carries, if it is a server certificate record.
    pub challenge: Option<SentChallenge>,
}

impl BuiltRecord {
    fn plain(record: ExtensionRecord) -> Self {
        Self {
            record,
            declared_len: None,
            challenge: None,
        }
    }

    /// Appends `id | len | data` (with the declared length, if any).
    pub fn encode(&self, out: &mut impl BufMut) {
        encode_record(self.record.id, &self.record.data, self.declared_len, out);
    }
}

impl ServerExtension {
    /// The record this entry puts in a server INFO. `random(n)` makes the `n` bytes of a
    /// `random` certificate challenge (the caller owns the source of randomness).
    pub fn record(
        &self,
        random: impl FnOnce(usize) -> Result<Bytes, String>,
    ) -> Result<BuiltRecord, String> {
        Ok(match self {
            Self::Udp => BuiltRecord::plain(udp::record()),
            Self::Password(p) => BuiltRecord::plain(
                PasswordServerRecord {
                    required: p.required,
                }
                .record(),
            ),
            Self::CertAuth(c) => {
                let challenge = match &c.challenge {
                    Challenge::Random => SentChallenge {
                        bytes: random(64)?,
                        random: true,
                    },
                    Challenge::Fixed(h) => SentChallenge {
                        bytes: h.0.clone(),
                        random: false,
                    },
                };
                let record = CertAuthServerRecord {
                    required: c.required,
                    algorithms: c.algorithms,
                    challenge: challenge.bytes.clone(),
                };
                BuiltRecord {
                    challenge: Some(challenge),
                    ..BuiltRecord::plain(record.record())
                }
            }
            Self::Motd(text) => {
                BuiltRecord::plain(MotdServerRecord { text: text.clone() }.record())
            }
            Self::StreamConfirmation => BuiltRecord::plain(confirm::record()),
            Self::Raw(r) => r.record(),
        })
    }
}

// ---- a client INFO a server-role script sends (`send_info`) ----

/// A password record in a client INFO the script sends.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientPasswordRecord {
    /// Which credentials (default `run`; `none` is not allowed here).
    #[serde(default)]
    pub credentials: Secret,
}

/// A certificate record in a client INFO the script sends: a signature over the challenge
/// of the last server INFO.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertRecord {
    /// Which key signs (default `run`; `none` is not allowed here).
    #[serde(default)]
    pub key: KeyChoice,
}

/// An extension record in a client INFO the script sends.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientInfoRecord {
    /// UDP (empty metadata).
    Udp,
    /// MOTD (empty metadata on the client side).
    Motd,
    /// Stream-open confirmation (empty metadata).
    StreamConfirmation,
    /// Password credentials.
    Password(ClientPasswordRecord),
    /// A certificate signature.
    CertAuth(ClientCertRecord),
    /// Any id with any bytes (`len` overrides the length in the record header).
    Raw(RawExtension),
}

impl ClientInfoRecord {
    /// The record the `handshake` step (and `send_info: {answer: true}`) answers the
    /// server's record `id` with: UDP and MOTD always; password and certificate auth with
    /// the connection's choice of credentials (`password`) or key (`key`), when it has
    /// some; `None` for the others.
    pub fn answering(
        id: ExtensionId,
        password: Option<Secret>,
        key: Option<KeyChoice>,
    ) -> Option<Self> {
        match id {
            ExtensionId::UDP => Some(Self::Udp),
            ExtensionId::MOTD => Some(Self::Motd),
            ExtensionId::PASSWORD => {
                password.map(|credentials| Self::Password(ClientPasswordRecord { credentials }))
            }
            ExtensionId::CERT_AUTH => key.map(|key| Self::CertAuth(ClientCertRecord { key })),
            _ => None,
        }
    }

    /// The record this entry puts in a client INFO. `password` and `key` give the run's
    /// credentials (with their layout) and signing key for a choice; `server` is the
    /// server's INFO, whose certificate challenge a certificate record signs.
    pub fn record(
        &self,
        password: impl FnOnce(Secret) -> Option<(String, String, PasswordLayout)>,
        key: impl FnOnce(KeyChoice) -> Option<SigningKey>,
        server: Option<&InfoPacket>,
    ) -> Result<BuiltRecord, String> {
        Ok(match self {
            Self::Udp => BuiltRecord::plain(udp::record()),
            Self::Motd => BuiltRecord::plain(motd::client_record()),
            Self::StreamConfirmation => BuiltRecord::plain(confirm::record()),
            Self::Password(p) => {
                let (username, password, layout) =
                    password(p.credentials).ok_or("no credentials for the password record")?;
                let record = PasswordClientRecord { username, password }
                    .record(layout)
                    .map_err(|e| e.to_string())?;
                BuiltRecord::plain(record)
            }
            Self::CertAuth(c) => {
                let key = key(c.key).ok_or("no key for the certificate record")?;
                let server = server
                    .and_then(|i| i.extension(ExtensionId::CERT_AUTH))
                    .ok_or("the server sent no certificate challenge")?;
                let server = CertAuthServerRecord::decode(&server.data)
                    .map_err(|e| format!("the server's certificate record: {}", e.reason))?;
                BuiltRecord::plain(CertAuthClientRecord::sign(&key, &server.challenge).record())
            }
            Self::Raw(r) => r.record(),
        })
    }
}

#[cfg(test)]
mod tests {
    use wisp_proto::Packet;

    use super::*;

    fn parse<T: for<'de> Deserialize<'de>>(yaml: &str) -> T {
        match serde_saphyr::from_str(yaml) {
            Ok(v) => v,
            Err(e) => panic!("{yaml}: {e}"),
        }
    }

    #[test]
    fn client_entries_become_the_offers_of_their_ids() {
        let entries: Vec<ClientExtension> = parse(
            "[udp, {password: {username: u, password: p, layout: draft5}}, {cert_auth: {}}, motd, stream_confirmation]",
        );
        let ids: Vec<ExtensionId> = entries.iter().map(|e| e.builder().id()).collect();
        assert_eq!(
            ids,
            [
                ExtensionId::UDP,
                ExtensionId::PASSWORD,
                ExtensionId::CERT_AUTH,
                ExtensionId::MOTD,
                ExtensionId::STREAM_CONFIRMATION
            ]
        );
    }

    #[test]
    fn server_entries_encode_with_the_extension_modules() {
        let entries: Vec<ServerExtension> = parse(
            "[udp, {password: {required: false}}, {cert_auth: {challenge: \"aabb\"}}, {motd: hi}, {raw: {id: 9, hex: \"01\", len: 7}}]",
        );
        let mut out = Vec::new();
        let mut challenges = Vec::new();
        for e in &entries {
            let built = e
                .record(|_| Err("no randomness here".to_owned()))
                .expect("builds");
            challenges.extend(built.challenge.clone());
            built.encode(&mut out);
        }
        assert_eq!(
            hex::encode(&out),
            "0100000000\
             020100000000\
             0304000000 0101aabb\
             04020000006869\
             090700000001"
                .replace(' ', "")
        );
        assert_eq!(challenges.len(), 1);
        assert!(!challenges[0].random);
        let random: ServerExtension = parse("{cert_auth: {}}");
        let built = random
            .record(|n| Ok(Bytes::from(vec![7; n])))
            .expect("builds");
        assert!(
            built
                .challenge
                .is_some_and(|c| c.random && c.bytes.len() == 64)
        );
    }

    #[test]
    fn a_client_cert_record_signs_the_servers_challenge() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let challenge = Bytes::from_static(b"a challenge of some thirty-two bytes");
        let server_info = InfoPacket::new(
            wisp_proto::WispVersion::V2,
            vec![
                CertAuthServerRecord {
                    required: true,
                    algorithms: 1,
                    challenge: challenge.clone(),
                }
                .record(),
            ],
        );
        let entry: ClientInfoRecord = parse("{cert_auth: {}}");
        let built = entry
            .record(|_| None, |_| Some(key.clone()), Some(&server_info))
            .expect("builds");
        let record = CertAuthClientRecord::decode(&built.record.data).expect("decodes");
        assert!(record.verify(&key.verifying_key(), &challenge));
        let missing = entry.record(|_| None, |_| None, Some(&server_info));
        assert_eq!(
            missing.expect_err("no key").as_str(),
            "no key for the certificate record"
        );
        let no_info = entry.record(|_| None, |_| Some(key.clone()), None);
        assert!(no_info.is_err());
    }

    #[test]
    fn the_answer_to_a_server_info_follows_the_run() {
        let ids = [
            ExtensionId::UDP,
            ExtensionId::PASSWORD,
            ExtensionId::CERT_AUTH,
            ExtensionId::MOTD,
            ExtensionId::STREAM_CONFIRMATION,
        ];
        let answered = |password, key| -> Vec<ExtensionId> {
            ids.iter()
                .filter(|id| ClientInfoRecord::answering(**id, password, key).is_some())
                .copied()
                .collect()
        };
        assert_eq!(answered(None, None), [ExtensionId::UDP, ExtensionId::MOTD]);
        assert_eq!(
            answered(Some(Secret::Wrong), Some(KeyChoice::Run)),
            [
                ExtensionId::UDP,
                ExtensionId::PASSWORD,
                ExtensionId::CERT_AUTH,
                ExtensionId::MOTD
            ]
        );
        let record = ClientInfoRecord::answering(ExtensionId::PASSWORD, Some(Secret::Draft5), None)
            .expect("answered")
            .record(
                |s| {
                    (s == Secret::Draft5)
                        .then(|| ("bob".into(), "pw".into(), PasswordLayout::Draft5))
                },
                |_| None,
                None,
            )
            .expect("builds");
        assert_eq!(hex::encode(&record.record.data), "030200626f627077");
        // A whole client INFO packet, as a server-role script sends it.
        let info = Packet::info(InfoPacket::new(
            wisp_proto::WispVersion::V2,
            vec![record.record],
        ));
        assert_eq!(info.to_bytes()[0], 0x05);
    }
}
