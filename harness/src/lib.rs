//! The Wisp conformance harness: runs the cases of `wisp-cases` against a subject and
//! judges it.
//!
//! - [`engine`]: the one engine. A [`engine::Subject`] (our client in process, a live
//!   server) is judged by the cases of its role, through one pool and one action
//!   interpreter, into one report model.
//! - [`server`]: the server role's subject (targets, probe, raw scripts, baselines).
//! - [`listen`]: listen mode, every client-role case served at its own URL for a client
//!   the harness cannot drive, judged on the wire.
//! - [`record`]: record mode, a Wisp-aware proxy that turns a real session into a
//!   client-role case.
//! - [`report`]: the report model ([`report::CaseReport`], [`report::SuiteReport`], the
//!   [`report::Gate`]) and its reporters: table, JSON and JUnit XML.
//!
//! Two front-ends share this library: the `cargo test` targets (`tests/conformance.rs`,
//! one libtest trial per client-role case with an insta snapshot; `tests/servers.rs`, the
//! server suite against real servers) and the `wisp-conformance` CLI.
//!
//! ```no_run
//! use wisp_harness::{default_cases_dir, load_dir, run_client_case};
//!
//! let (cases, errors) = load_dir(&default_cases_dir());
//! assert!(errors.is_empty());
//! for case in cases.iter().filter_map(|c| c.as_client()) {
//!     let report = run_client_case(case);
//!     println!("{} {}", report.id, report.label());
//! }
//! ```

use std::path::PathBuf;

pub mod engine;
pub mod listen;
pub mod record;
pub mod report;
pub mod select;
pub mod server;
pub mod shim;

pub use engine::{
    ClientSubject, Subject, SuiteOptions, run_client_case, run_suite, run_suite_blocking,
};
pub use report::{CaseReport, Gate, SuiteReport};
pub use select::{Filter, FilterError};
pub use wisp_cases::{Case, ClientCase, LoadError, Role, ServerCase, Verdict, load_case, load_dir};

/// The workspace's `cases/` directory.
pub fn default_cases_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../cases"));
    dir.canonicalize().unwrap_or(dir)
}

/// The cases the CLI runs without `--cases`: the copy built into the binary
/// ([`wisp_cases::embedded`], written once to a directory under the system's temporary
/// directory), so an installed or copied binary works away from the checkout. When that
/// directory cannot be written, the workspace's `cases/` (with a warning on stderr).
pub fn installed_cases_dir() -> PathBuf {
    match wisp_cases::embedded::cases_dir() {
        Ok(dir) => dir,
        Err(e) => {
            let fallback = default_cases_dir();
            eprintln!(
                "warning: cannot write the built-in cases to the temporary directory ({e}); using {}",
                fallback.display()
            );
            fallback
        }
    }
}
