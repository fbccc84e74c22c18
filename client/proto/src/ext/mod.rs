//! Wisp v2 extensions: one module per extension, and the registry that lists them.
//!
//! Each module owns everything about its extension: its id, its server record and client
//! record (encode and decode), the client's offer (its `…ExtensionBuilder`), its negotiation
//! rule ([`Extension::negotiate`]) and the [`NegotiatedExtension`] value a connection exposes.
//! The handshake asks the modules through the registry below; it has no per-extension code.
//!
//! Adding an extension: its module here, its id in [`ExtensionId`], one line in
//! `registry!`, and its [`NegotiatedExtension`] variant (all in this file).
//!
//! ```
//! use wisp_proto::ext::{MotdExtensionBuilder, UdpExtensionBuilder, WispV2Handshake};
//! use wisp_proto::ext::password::{PasswordExtensionBuilder, PasswordLayout};
//! use wisp_proto::ExtensionId;
//!
//! let handshake = WispV2Handshake::new([UdpExtensionBuilder.into(), MotdExtensionBuilder.into()])
//!     .with_extension(PasswordExtensionBuilder::new("alice", "s3cret").layout(PasswordLayout::Draft5))
//!     .with_required_extension(ExtensionId::UDP);
//! assert_eq!(handshake.required_extensions(), &[ExtensionId::UDP]);
//! ```

use std::fmt;

use bytes::Bytes;

use crate::error::Error;

pub mod cert_auth;
pub mod confirm;
pub mod motd;
pub mod password;
pub mod udp;

pub use cert_auth::CertAuthExtensionBuilder;
pub use confirm::StreamConfirmationExtensionBuilder;
pub use motd::MotdExtensionBuilder;
pub use password::PasswordExtensionBuilder;
pub use udp::UdpExtensionBuilder;

open_u8_code! {
    /// A v2 protocol extension id.
    ExtensionId {
        /// 0x01: UDP streams.
        UDP = 0x01 => "UDP",
        /// 0x02: password authentication.
        PASSWORD = 0x02 => "PASSWORD",
        /// 0x03: public-key (certificate) authentication.
        CERT_AUTH = 0x03 => "CERT_AUTH",
        /// 0x04: server message of the day.
        MOTD = 0x04 => "MOTD",
        /// 0x05: stream open confirmation.
        STREAM_CONFIRMATION = 0x05 => "STREAM_CONFIRMATION",
    }
}

/// One extension, implemented by its offer (the `…ExtensionBuilder` the client configures).
pub trait Extension: Clone + fmt::Debug + Into<AnyExtensionBuilder> {
    /// The extension id.
    const ID: ExtensionId;

    /// The negotiation rule: what the client answers to the server's record `server`
    /// (`offer` is `None` when the client did not offer the extension; auth extensions still
    /// learn whether the server requires them). `order` is how the server opened the
    /// handshake, which tells the drafts apart. An `Err` ends the handshake.
    fn negotiate(
        offer: Option<&Self>,
        server: &Bytes,
        order: HandshakeOrder,
    ) -> Result<Reply, Error>;

    /// What a Wisp v1 connection (which sends no INFO) implies for this extension.
    fn implied_by_v1() -> Option<NegotiatedExtension> {
        None
    }

    /// Checks the server's record strictly against the layout the spec gives it (the
    /// conformance suite judges servers by it; [`Extension::negotiate`] reads records
    /// leniently). `Err` says what is wrong. The default accepts anything.
    fn check_server_record(_server: &Bytes) -> Result<(), String> {
        Ok(())
    }
}

impl ExtensionId {
    /// The name in lower case, as case files and transcripts write it (`udp`, `cert_auth`,
    /// `stream_confirmation`); `None` for an id no module knows.
    pub fn lower_name(self) -> Option<String> {
        self.name().map(str::to_ascii_lowercase)
    }
}

/// The layout rule of a record that must be empty.
fn check_empty(id: ExtensionId, record: &Bytes) -> Result<(), String> {
    if record.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the {} record carries {} bytes, expected none",
            id.lower_name().unwrap_or_default(),
            record.len()
        ))
    }
}

/// How the server opened a v2 handshake. The order is the only sign of the draft a server
/// follows before the client must answer, so rules whose wire format changed between drafts
/// (the password record) choose by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HandshakeOrder {
    /// INFO first: draft 6 (which waits for the client INFO before CONTINUE(0)); drafts 4–5
    /// also send INFO first, with CONTINUE(0) right after it.
    InfoFirst,
    /// CONTINUE(0), then INFO: drafts 1–3 (wisp-mux 5.x, epoxy-server of 2024).
    ContinueFirst,
}

/// An extension's answer to the server's record.
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct Reply {
    /// The client record to put in the client INFO (`None`: no record).
    pub record: Option<Bytes>,
    /// The value both sides agreed on (`None`: not agreed).
    pub agreed: Option<NegotiatedExtension>,
    /// For authentication extensions: what the server demands and whether this client
    /// answered.
    pub auth: Option<Auth>,
    /// The client offered the extension but cannot use what the server sent. The handshake
    /// fails with this error if the extension is needed: required by the client, or an auth
    /// the server requires that no other extension answered.
    pub unusable: Option<Error>,
}

impl Reply {
    /// Nothing to send and nothing agreed.
    pub fn skip() -> Self {
        Self::default()
    }

    /// Agreed, answered with `record`.
    pub fn agree(record: Bytes, agreed: NegotiatedExtension) -> Self {
        Self {
            record: Some(record),
            agreed: Some(agreed),
            ..Self::default()
        }
    }

    /// Sets [`Reply::auth`].
    pub fn with_auth(mut self, required: bool, answered: bool) -> Self {
        self.auth = Some(Auth { required, answered });
        self
    }
}

/// An authentication extension's state after the server's INFO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Auth {
    /// The server requires this authentication.
    pub required: bool,
    /// The client answered it (sent credentials or a signature).
    pub answered: bool,
}

/// An extension both sides agreed on, with what the server said about it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NegotiatedExtension {
    /// UDP streams are allowed ([`udp`]).
    Udp,
    /// Password authentication was used ([`password`]).
    Password {
        /// Whether the server required it.
        required: bool,
    },
    /// Certificate authentication was used ([`cert_auth`]).
    CertAuth {
        /// Whether the server required it.
        required: bool,
        /// The server's algorithm mask.
        algorithms: u8,
    },
    /// The server's message of the day, non-UTF-8 bytes replaced ([`motd`]).
    Motd(String),
    /// Stream-open confirmation is active ([`confirm`]).
    StreamConfirmation,
}

impl NegotiatedExtension {
    /// The extension id.
    pub fn id(&self) -> ExtensionId {
        match self {
            Self::Udp => ExtensionId::UDP,
            Self::Password { .. } => ExtensionId::PASSWORD,
            Self::CertAuth { .. } => ExtensionId::CERT_AUTH,
            Self::Motd(_) => ExtensionId::MOTD,
            Self::StreamConfirmation => ExtensionId::STREAM_CONFIRMATION,
        }
    }
}

impl fmt::Display for NegotiatedExtension {
    /// The extension's name in lower case with what the server said about it: `udp`,
    /// `password(required=true)`, `cert_auth(required=true, algorithms=0x01)`,
    /// `motd "welcome"`, `stream_confirmation` (the conformance transcripts print it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Password { required } => write!(f, "password(required={required})"),
            Self::CertAuth {
                required,
                algorithms,
            } => write!(
                f,
                "cert_auth(required={required}, algorithms=0x{algorithms:02x})"
            ),
            Self::Motd(message) => write!(f, "motd {message:?}"),
            Self::Udp | Self::StreamConfirmation => {
                f.write_str(&self.id().lower_name().unwrap_or_default())
            }
        }
    }
}

/// Generates [`AnyExtensionBuilder`] and the dispatch from an id to its module.
macro_rules! registry {
    ($( $(#[$doc:meta])* $variant:ident($builder:ty), )*) => {
        /// Any of the extension offers: one variant per module.
        #[derive(Clone, Debug)]
        #[non_exhaustive]
        pub enum AnyExtensionBuilder {
            $( $(#[$doc])* $variant($builder), )*
        }

        impl AnyExtensionBuilder {
            /// The extension id.
            pub fn id(&self) -> ExtensionId {
                match self {
                    $( Self::$variant(_) => <$builder as Extension>::ID, )*
                }
            }
        }

        $(
            impl From<$builder> for AnyExtensionBuilder {
                fn from(b: $builder) -> Self {
                    Self::$variant(b)
                }
            }
        )*

        /// Runs the negotiation rule of extension `id` (`None`: no module knows `id`).
        pub(crate) fn negotiate(
            id: ExtensionId,
            offers: &[AnyExtensionBuilder],
            server: &Bytes,
            order: HandshakeOrder,
        ) -> Option<Result<Reply, Error>> {
            $(
                if id == <$builder as Extension>::ID {
                    let offer = offers.iter().find_map(|o| match o {
                        AnyExtensionBuilder::$variant(b) => Some(b),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    });
                    return Some(<$builder as Extension>::negotiate(offer, server, order));
                }
            )*
            None
        }

        /// Checks the server's record for extension `id` against its layout
        /// ([`Extension::check_server_record`]); an id no module knows passes.
        pub fn check_server_record(id: ExtensionId, server: &Bytes) -> Result<(), String> {
            $(
                if id == <$builder as Extension>::ID {
                    return <$builder as Extension>::check_server_record(server);
                }
            )*
            Ok(())
        }

        /// What a Wisp v1 connection implies: the extensions v1 has built in.
        pub(crate) fn implied_by_v1() -> Vec<NegotiatedExtension> {
            [$( <$builder as Extension>::implied_by_v1(), )*].into_iter().flatten().collect()
        }

    };
}

registry! {
    /// UDP (0x01).
    Udp(UdpExtensionBuilder),
    /// Password (0x02).
    Password(PasswordExtensionBuilder),
    /// Certificate auth (0x03).
    CertAuth(CertAuthExtensionBuilder),
    /// MOTD (0x04).
    Motd(MotdExtensionBuilder),
    /// Stream-open confirmation (0x05).
    StreamConfirmation(StreamConfirmationExtensionBuilder),
}

/// What to offer in a v2 handshake: the extension offers and the ids the server must
/// support. `None` instead of a handshake speaks Wisp v1.
#[derive(Clone, Debug, Default)]
pub struct WispV2Handshake {
    builders: Vec<AnyExtensionBuilder>,
    required: Vec<ExtensionId>,
}

impl WispV2Handshake {
    /// A handshake offering these extensions.
    pub fn new(builders: impl IntoIterator<Item = AnyExtensionBuilder>) -> Self {
        let mut handshake = Self::default();
        for b in builders {
            handshake.add_extension(b);
        }
        handshake
    }

    /// A handshake offering no extension.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Adds an extension (a later builder for the same id replaces an earlier one).
    pub fn add_extension(&mut self, builder: impl Into<AnyExtensionBuilder>) {
        let builder = builder.into();
        self.builders.retain(|b| b.id() != builder.id());
        self.builders.push(builder);
    }

    /// Adds an extension, builder style.
    pub fn with_extension(mut self, builder: impl Into<AnyExtensionBuilder>) -> Self {
        self.add_extension(builder);
        self
    }

    /// Requires the server to advertise `id`. Checked against the server's INFO before the
    /// client INFO is sent; a missing one ends the handshake with CLOSE(0, 0x04) and
    /// [`crate::PeerIncompatible::MissingExtensions`].
    pub fn with_required_extension(mut self, id: impl Into<ExtensionId>) -> Self {
        let id = id.into();
        if !self.required.contains(&id) {
            self.required.push(id);
        }
        self
    }

    /// Requires the UDP extension.
    pub fn with_udp_required_extension(self) -> Self {
        self.with_required_extension(ExtensionId::UDP)
    }

    /// The extension builders offered.
    pub fn extensions(&self) -> &[AnyExtensionBuilder] {
        &self.builders
    }

    /// The required extension ids.
    pub fn required_extensions(&self) -> &[ExtensionId] {
        &self.required
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_records_are_checked_by_their_modules() {
        let check = |id, data: &'static [u8]| check_server_record(id, &Bytes::from_static(data));
        assert_eq!(check(ExtensionId::UDP, b""), Ok(()));
        assert_eq!(
            check(ExtensionId::STREAM_CONFIRMATION, b"x"),
            Err("the stream_confirmation record carries 1 bytes, expected none".to_owned())
        );
        assert_eq!(check(ExtensionId::PASSWORD, b"\x01"), Ok(()));
        assert!(check(ExtensionId::PASSWORD, b"").is_err());
        assert_eq!(
            check(ExtensionId::CERT_AUTH, &[1, 0]),
            Err("the CERT_AUTH record offers no algorithm".to_owned())
        );
        assert!(check(ExtensionId::CERT_AUTH, &[1, 1, 0, 0]).is_err());
        assert_eq!(check(ExtensionId::CERT_AUTH, &[1; 34]), Ok(()));
        assert_eq!(
            check(ExtensionId::MOTD, b"\xff"),
            Err("the MOTD is not UTF-8".to_owned())
        );
        assert_eq!(check(ExtensionId(0x42), b"anything"), Ok(()));
    }

    #[test]
    fn negotiated_extensions_print_their_lower_case_names() {
        let printed: Vec<String> = [
            NegotiatedExtension::Udp,
            NegotiatedExtension::Password { required: true },
            NegotiatedExtension::CertAuth {
                required: false,
                algorithms: 1,
            },
            NegotiatedExtension::Motd("hi".to_owned()),
            NegotiatedExtension::StreamConfirmation,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            printed,
            [
                "udp",
                "password(required=true)",
                "cert_auth(required=false, algorithms=0x01)",
                "motd \"hi\"",
                "stream_confirmation"
            ]
        );
    }
}
