//! Judging any Wisp client: the shim protocol (`harness/SHIM.md`).
//!
//! The harness plays the server (the scripted mock of each client-role case) and drives
//! the client under test through a [`ClientUnderTest`]: it hands the client a [`Plan`]
//! (the mock's URL, the version, extensions and credentials to offer, the actions), the
//! client reports [`Event`]s (handshake outcome, per-action results, the final state of
//! each stream), and the engine judges the wire trace exactly as for the built-in client
//! and the API outcome from the reported error names ([`ReportedError`]).
//!
//! A client is under test in one of two forms:
//!
//! - in process: a Rust type implementing [`ClientUnderTest`], run with
//!   [`crate::engine::Subject::Client`];
//! - as a process: any program speaking the protocol as JSON lines on its stdin/stdout
//!   ([`ShimProcess`], `wisp-conformance client --shim "CMD ARGS"`). [`serve_stdio`]
//!   turns a Rust [`ClientUnderTest`] into such a program.
//!
//! A case that needs a [`Capability`] the client does not declare is UNSUPPORTED for it.

pub mod cli;
pub(crate) mod process;
pub mod protocol;
mod suite;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

pub use process::{ShimProcess, serve_stdio};
pub use protocol::{
    Capability, EndedBy, Event, FinishInfo, Hello, MuxState, Plan, PlanAction, PlanExtension,
    PlanOptions, PlanUntil, ReportedError, Request, StreamEnding,
};
pub use suite::{
    assert_client_baseline, assert_server_baseline, client_cases, client_trials, server_suite,
    topic_matrix,
};

/// A boxed, sendable future (the trait's methods return one, so the trait stays
/// object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A Wisp client the harness can judge: the in-process form of the shim protocol.
///
/// `run` connects to `plan.url`, runs the handshake with what the plan offers, reports it
/// ([`Event::Handshake`]), runs the actions in order, reporting each ([`Event::Action`]),
/// then reports [`Event::ActionsDone`] and waits for [`Finish`]. When it arrives (it may
/// arrive early, while an action hangs: stop waiting on it), `run` reports each stream's
/// state ([`Event::Stream`]) and the connection's ([`Event::Mux`]), then
/// [`Event::Done`], and returns. An error returned by `run` is a harness error (ERROR),
/// not a verdict: report the client's own failures as events.
pub trait ClientUnderTest: Send + Sync {
    /// Who the client is and what it can do.
    fn hello(&self) -> BoxFuture<'_, Result<Hello, String>>;

    /// Runs one case (see the trait documentation).
    fn run<'a>(
        &'a self,
        plan: Plan,
        events: EventSink,
        finish: Finish,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// How many stderr lines a report keeps.
const STDERR_TAIL: usize = 20;

/// Where a client's events go, and its diagnostics (a process shim's stderr).
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: mpsc::UnboundedSender<Event>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl EventSink {
    /// A sink and the receiver of its events.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                tx,
                stderr: Arc::default(),
            },
            rx,
        )
    }

    /// Reports an event (dropped when nobody listens any more).
    pub fn send(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// Keeps a diagnostic line (the last few are shown with an ERROR).
    pub fn stderr(&self, line: String) {
        if let Ok(mut tail) = self.stderr.lock() {
            if tail.len() == STDERR_TAIL {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }

    /// The diagnostic lines kept, oldest first.
    pub fn stderr_tail(&self) -> Vec<String> {
        self.tail().lines()
    }

    /// A handle on the diagnostic lines that does not keep the event channel open.
    pub fn tail(&self) -> StderrTail {
        StderrTail(self.stderr.clone())
    }
}

/// The last diagnostic lines of a client ([`EventSink::tail`]).
#[derive(Clone, Debug)]
pub struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    /// The lines kept, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The harness's signal that the mock's script is over (see [`ClientUnderTest`]).
#[derive(Debug)]
pub struct Finish(oneshot::Receiver<FinishInfo>);

impl Finish {
    /// A signal and the handle that fires it (dropping the handle fires it too, with the
    /// defaults).
    pub fn new() -> (oneshot::Sender<FinishInfo>, Self) {
        let (tx, rx) = oneshot::channel();
        (tx, Self(rx))
    }

    /// Waits until the harness says finish.
    pub async fn wait(self) -> FinishInfo {
        self.0.await.unwrap_or_default()
    }
}
