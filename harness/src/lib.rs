//! The Wisp conformance harness: runs the cases of `wisp-cases` against a subject and
//! judges it.
//!
//! - [`engine`]: the one engine. A [`engine::Subject`] (our client in process, a live
//!   server) is judged by the cases of its role, through one pool and one action
//!   interpreter, into one report model.
//! - [`server`]: the server role's subject (targets, probe, raw scripts, baselines).
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
