//! The bodies of the fuzz targets, one module per target (`fuzz_targets/NAME.rs` only calls
//! `NAME::run`). Each module imports the workspace crates in one `use` block at its top,
//! marked "import paths": the only lines to change when those crates move.
//!
//! Every `run` must return without panicking, hanging or allocating without bound for any
//! input; the assertions inside are properties of the code under test (round trips,
//! liveness of the state machine), so a failed one is a finding like a crash.

#![forbid(unsafe_code)]

pub mod case_loader;
pub mod client_conn;
pub mod codec;
pub mod info_records;
pub mod input;
pub mod server_packets;

/// The workspace's `cases/` directory (key files and server-role patterns come from it).
pub fn cases_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../cases"))
}

/// The Ed25519 key the targets sign and verify with (made once: deriving the public key
/// costs more than a whole run of most targets).
pub fn signing_key() -> &'static ed25519_dalek::SigningKey {
    static KEY: std::sync::OnceLock<ed25519_dalek::SigningKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| ed25519_dalek::SigningKey::from_bytes(&[7; 32]))
}
