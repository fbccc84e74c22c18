//! Test support for the Wisp conformance workspace.
//!
//! It starts *real*, independently written Wisp servers (the pinned
//! wisp-server-python and wisp-js installed by `scripts/install-servers.sh`
//! into `<repo>/.tools/`) on loopback, an in-process server built on the
//! published wisp-mux 5.1.0 `ServerMux` ([`WispMuxServer`]), and the loopback
//! targets those servers connect to (a TCP echo, a UDP echo, a refused port,
//! a TCP sink that never reads and a TCP listener whose accept queue is
//! full).
//!
//! It also has a small Wisp server of its own that misbehaves on request
//! ([`faulty::FaultyServer`], and the `wisp-faulty-server` binary), for
//! testing what a suite says about servers that crash, freeze or bend the
//! protocol.
//!
//! ```no_run
//! # async fn demo() -> Result<(), String> {
//! use wisp_testkit::{RealServer, ServerKind, TcpEcho};
//!
//! let server = RealServer::start(ServerKind::WispPython).await?;
//! let echo = TcpEcho::start().await;
//! println!("connect a Wisp client to {} and open a stream to {}", server.url(), echo.addr());
//! # Ok(())
//! # }
//! ```
//!
//! Every server process runs in its own process group, which is killed when
//! the [`RealServer`] is dropped, or when the test process exits by any means.

use std::path::{Path, PathBuf};

pub mod faulty;
mod install;
mod net;
mod server;
mod targets;
mod upgrade;
pub mod vtime;
mod wispmux;

pub use install::ensure_installed;
pub use server::{RealServer, ServerKind};
pub use targets::{
    FullBacklogTarget, TcpEcho, TcpService, TcpSink, UdpEcho, refused_port, refused_port_on,
};
pub use wispmux::{WispMuxConfig, WispMuxServer};

/// The root of the Cargo workspace (the directory holding the root
/// `Cargo.toml`, `scripts/` and `.tools/`).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    match manifest_dir.parent() {
        Some(parent) => parent.to_path_buf(),
        None => manifest_dir,
    }
}

/// Validates an XML document against an XML Schema with the pinned `xmlschema` (installed
/// into `.tools/venv` from `tools/wisp-python/requirements.txt`). The error is the
/// validator's message.
///
/// # Errors
///
/// The document does not validate, or the validator cannot run.
pub fn validate_xml(xsd: &Path, xml: &str) -> Result<(), String> {
    ensure_installed()?;
    let python = workspace_root().join(".tools/venv/bin/python");
    let dir = std::env::temp_dir().join(format!(
        "wisp-validate-xml-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir.join("document.xml");
    let written = std::fs::write(&file, xml).map_err(|e| format!("{}: {e}", file.display()));
    let out = written.and_then(|()| {
        std::process::Command::new(python)
            .args([
                "-c",
                "import sys, xmlschema; xmlschema.XMLSchema(sys.argv[1]).validate(sys.argv[2])",
            ])
            .arg(xsd)
            .arg(&file)
            .output()
            .map_err(|e| format!("running python: {e}"))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let out = out?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
