//! The Wisp conformance harness: loads the case files under `cases/`, runs each one (the
//! client library under test against the scripted mock server, in virtual time), and turns
//! the outcome into a verdict and a deterministic transcript.
//!
//! Two front-ends share this library: the `cargo test` target `tests/conformance.rs` (one
//! libtest trial per case, snapshots with insta) and the `wisp-conformance` CLI.
//!
//! Server-role cases (`cases/server/`, `role: server`) turn it around: the harness plays a
//! scripted client against a live third-party server and judges what the server does
//! ([`server`], `wisp-conformance server URL`, `tests/servers.rs`).
//!
//! ```no_run
//! use wisp_harness::{default_cases_dir, load_dir, run_case};
//!
//! let (cases, errors) = load_dir(&default_cases_dir());
//! assert!(errors.is_empty());
//! for case in cases.iter().filter_map(|c| c.as_client()) {
//!     let report = run_case(case);
//!     println!("{} {}", report.id, report.verdict);
//! }
//! ```

use std::path::PathBuf;

pub mod runner;
pub mod select;
pub mod server;
mod stream_check;

pub use runner::{CaseReport, run_case};
pub use select::{Filter, FilterError};
pub use wisp_cases::{Case, ClientCase, LoadError, Role, ServerCase, Verdict, load_case, load_dir};

/// The workspace's `cases/` directory.
pub fn default_cases_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../cases"));
    dir.canonicalize().unwrap_or(dir)
}
