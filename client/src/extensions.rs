//! The v2 handshake description: which extensions the client offers, with what
//! credentials, and which it requires.
//!
//! ```
//! use wisp_client::extensions::{
//!     MotdExtensionBuilder, PasswordExtensionBuilder, UdpExtensionBuilder, WispV2Handshake,
//! };
//! use wisp_client::proto::{ExtensionId, PasswordLayout};
//!
//! let handshake = WispV2Handshake::new([UdpExtensionBuilder.into(), MotdExtensionBuilder.into()])
//!     .with_extension(PasswordExtensionBuilder::new("alice", "s3cret").layout(PasswordLayout::Draft5))
//!     .with_required_extension(ExtensionId::UDP);
//! assert_eq!(handshake.required_extensions(), &[ExtensionId::UDP]);
//! ```

use std::fmt;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;

use crate::WispError;
use crate::proto::{ExtensionId, PasswordLayout, PasswordOffer, V2Config};

/// The UDP extension (0x01): lets the client open UDP streams.
#[derive(Clone, Copy, Debug, Default)]
pub struct UdpExtensionBuilder;

/// The password extension (0x02).
#[derive(Clone, Default)]
pub struct PasswordExtensionBuilder {
    credentials: Option<(String, String)>,
    layout: PasswordLayout,
}

impl fmt::Debug for PasswordExtensionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordExtensionBuilder")
            .field("username", &self.credentials.as_ref().map(|c| &c.0))
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl PasswordExtensionBuilder {
    /// Offers these credentials.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::new_client(Some((username.into(), password.into())))
    }

    /// Offers the extension with or without credentials (without, the client learns whether
    /// the server requires a password, and the server decides what to do).
    pub fn new_client(credentials: Option<(String, String)>) -> Self {
        Self {
            credentials,
            layout: PasswordLayout::default(),
        }
    }

    /// Chooses the record layout: [`PasswordLayout::Draft6`] (the default, the current
    /// draft) or [`PasswordLayout::Draft5`] (what deployed servers read).
    pub fn layout(mut self, layout: PasswordLayout) -> Self {
        self.layout = layout;
        self
    }
}

/// The certificate-authentication extension (0x03): signs the server's challenge with an
/// Ed25519 key.
#[derive(Clone, Default)]
pub struct CertAuthExtensionBuilder {
    key: Option<SigningKey>,
}

impl fmt::Debug for CertAuthExtensionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertAuthExtensionBuilder")
            .field("has_key", &self.key.is_some())
            .finish()
    }
}

impl CertAuthExtensionBuilder {
    /// Offers certificate auth with this signing key.
    pub fn new(key: SigningKey) -> Self {
        Self { key: Some(key) }
    }

    /// Offers certificate auth with or without a key.
    pub fn new_client(key: Option<SigningKey>) -> Self {
        Self { key }
    }

    /// Loads the key from a PKCS#8 PEM document (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, WispError> {
        let key = SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| WispError::InvalidArgument(format!("Ed25519 PKCS#8 key: {e}")))?;
        Ok(Self::new(key))
    }
}

/// The MOTD extension (0x04): the server's message of the day.
#[derive(Clone, Copy, Debug, Default)]
pub struct MotdExtensionBuilder;

/// The stream-open confirmation extension (0x05): `new_stream` waits until the server has
/// connected upstream, and reports a refusal as an error.
#[derive(Clone, Copy, Debug, Default)]
pub struct StreamConfirmationExtensionBuilder;

/// Any of the extension builders.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AnyExtensionBuilder {
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

impl AnyExtensionBuilder {
    /// The extension id.
    pub fn id(&self) -> ExtensionId {
        match self {
            Self::Udp(_) => ExtensionId::UDP,
            Self::Password(_) => ExtensionId::PASSWORD,
            Self::CertAuth(_) => ExtensionId::CERT_AUTH,
            Self::Motd(_) => ExtensionId::MOTD,
            Self::StreamConfirmation(_) => ExtensionId::STREAM_CONFIRMATION,
        }
    }
}

macro_rules! into_any {
    ($($ty:ident => $variant:ident),* $(,)?) => {
        $(impl From<$ty> for AnyExtensionBuilder {
            fn from(b: $ty) -> Self {
                Self::$variant(b)
            }
        })*
    };
}

into_any! {
    UdpExtensionBuilder => Udp,
    PasswordExtensionBuilder => Password,
    CertAuthExtensionBuilder => CertAuth,
    MotdExtensionBuilder => Motd,
    StreamConfirmationExtensionBuilder => StreamConfirmation,
}

/// What to offer in a v2 handshake. Pass `Some(handshake)` to [`crate::ClientMux::new`];
/// `None` there speaks v1.
#[derive(Clone, Debug, Default)]
pub struct WispV2Handshake {
    builders: Vec<AnyExtensionBuilder>,
    required: Vec<ExtensionId>,
}

impl WispV2Handshake {
    /// A handshake offering these extensions.
    pub fn new(builders: impl IntoIterator<Item = AnyExtensionBuilder>) -> Self {
        Self {
            builders: builders.into_iter().collect(),
            required: Vec::new(),
        }
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
    /// [`WispError::ExtensionsNotSupported`].
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

    pub(crate) fn into_config(self) -> V2Config {
        let mut config = V2Config {
            required: self.required,
            ..V2Config::default()
        };
        for b in self.builders {
            match b {
                AnyExtensionBuilder::Udp(_) => config.udp = true,
                AnyExtensionBuilder::Password(p) => {
                    config.password = Some(PasswordOffer {
                        credentials: p.credentials,
                        layout: p.layout,
                    });
                }
                AnyExtensionBuilder::CertAuth(c) => config.cert_auth = Some(c.key),
                AnyExtensionBuilder::Motd(_) => config.motd = true,
                AnyExtensionBuilder::StreamConfirmation(_) => config.stream_confirmation = true,
            }
        }
        config
    }
}
