//! A scripted Wisp server for conformance tests (the role h2-support plays for h2).
//!
//! A case file (`cases/<topic>/NAME.yaml`, see `cases/README.md`) describes the client under
//! test, a server script and the expected outcome. This crate owns the case language
//! ([`scenario`], [`values`]), the packet builders ([`frames`]), the matcher for expected
//! packets ([`pattern`]), the replay engine ([`replay`]) and the decoded trace ([`trace`]).
//! Server-role cases (the harness plays the client against a live server) add the steps
//! of [`client_script`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! use wisp_mock_server::replay::{MockServer, Script};
//! use wisp_mock_server::scenario::load_case;
//!
//! let case = load_case(Path::new("cases"), Path::new("cases/handshake/draft6-order.yaml"))?;
//! let server = MockServer::bind("127.0.0.1:0".parse()?, Script::from_case(&case)).await?;
//! println!("connect a client to {}", server.url()?);
//! let trace = server.trace();
//! let outcome = server.run(tokio::time::Instant::now()).await;
//! println!("{:?}\n{}", outcome.result, trace.lock().unwrap().render());
//! # Ok(()) }
//! ```

pub mod client_script;
pub mod frames;
pub mod pattern;
pub mod replay;
pub mod scenario;
pub mod trace;
pub mod values;

pub use client_script::Placeholders;
pub use replay::{MockServer, Script, ScriptOutcome, StepFailure};
pub use scenario::{Case, LoadError, load_case, load_dir, load_dir_with};
pub use trace::{Trace, TraceEntry};
