//! The v2 handshake description: which extensions the client offers, with what
//! credentials, and which it requires. The types live in the sans-IO core, one module per
//! extension ([`crate::proto::ext`]); this module gathers them under their familiar path.
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

pub use crate::proto::ext::{
    AnyExtensionBuilder, CertAuthExtensionBuilder, MotdExtensionBuilder, PasswordExtensionBuilder,
    StreamConfirmationExtensionBuilder, UdpExtensionBuilder, WispV2Handshake,
};
