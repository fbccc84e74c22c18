//! A scripted Wisp peer for conformance tests (the role h2-support plays for h2): it plays
//! the server side of a client-role case against the client under test.
//!
//! The case language (model, loader, validation) is the `wisp-cases` crate; this crate
//! only replays: the packet builders ([`frames`]), the matcher for expected packets
//! ([`pattern`]), the replay engine ([`replay`]) and the decoded trace ([`trace`]). The
//! harness uses the builders, the matcher and the trace for server-role scripts too.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! use wisp_cases::load_case;
//! use wisp_mock_server::replay::{MockServer, Script};
//!
//! let case = load_case(Path::new("cases"), Path::new("cases/handshake/draft6.basic.yaml"))?;
//! let case = case.as_client().ok_or("a server-role case")?;
//! let server = MockServer::bind("127.0.0.1:0".parse()?, Script::from_case(case)).await?;
//! println!("connect a client to {}", server.url()?);
//! let trace = server.trace();
//! let outcome = server.run(tokio::time::Instant::now()).await;
//! println!("{:?}\n{}", outcome.result, trace.lock().unwrap().render());
//! # Ok(()) }
//! ```

pub mod frames;
pub mod pattern;
pub mod replay;
pub mod trace;

pub use replay::{MockServer, Script, ScriptOutcome, StepFailure};
pub use trace::{Trace, TraceEntry};
