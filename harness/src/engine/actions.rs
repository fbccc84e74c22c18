//! The one interpreter of the action language (`open`, `send`, `close`, `read`,
//! `wait_closed`, `drop`, `close_mux`, `sleep`, `echo`) over our client, `ClientMux`.
//!
//! Both roles run their actions here. What differs is the [`Policy`]:
//!
//! - [`Policy::Record`] (client role, the client is under test): every action runs, with
//!   no bound of its own (the case timeout bounds the whole run, in virtual time); an
//!   action's error is compared with its `expect_error`; reads record what they got and
//!   how the stream ended, for `expect.streams` to judge.
//! - [`Policy::Strict`] (server role, the harness is the client): every wait is bounded
//!   by the step timeout, and an action that cannot do what it says (an error, a read
//!   that gets less than asked, no progress) fails the case and stops the actions.
//!
//! Each action writes one line to the log (the client-role transcript) and tells the
//! [`Observer`] (the server role's wire recorder) which step runs and which stream id an
//! alias got.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_saphyr::Spanned;
use wisp_cases::actions::{Action, ReadUntil};
use wisp_cases::values::ErrorSet;
use wisp_client::proto::CloseReason;
use wisp_client::{ClientMux, MuxStream, StreamEnd, WispError};
use wisp_mock_server::trace::payload_summary;

use super::echo::run_echo;
use super::judge::{EndView, Seen, check_expected, error_text};

/// How the actions are run (see the module documentation).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Policy {
    /// Client role: record everything, judge at the end.
    Record,
    /// Server role: every wait bounded by `step`; the first failure stops the actions.
    Strict {
        /// The bound on each wait.
        step: Duration,
    },
}

/// Who else wants to know what the actions do.
pub(crate) trait Observer: Sync {
    /// The action about to run (`None`: the actions are over).
    fn step(&self, _step: Option<usize>) {}
    /// `alias` now names stream `id`.
    fn alias(&self, _alias: &str, _id: u32) {}
    /// Something worth a line in the wire log.
    fn event(&self, _text: String) {}
}

/// An observer that does not listen.
pub(crate) struct Unobserved;

impl Observer for Unobserved {}

/// One stream the actions opened, by alias.
#[derive(Default)]
pub(crate) struct Slot {
    /// The stream, until it is dropped.
    pub(crate) stream: Option<MuxStream>,
    /// The id it got, when the open succeeded.
    pub(crate) id: Option<u32>,
    /// Everything read from it.
    pub(crate) data: Vec<u8>,
    /// Why the open failed.
    pub(crate) open_error: Option<WispError>,
    /// A read that failed.
    pub(crate) read_error: Option<WispError>,
    /// How the stream had ended when the actions dropped it.
    pub(crate) dropped: Option<Option<StreamEnd>>,
}

impl Slot {
    /// How the stream ended, if it has (when dropped: how it had ended by then).
    pub(crate) fn end(&self) -> Option<StreamEnd> {
        match &self.dropped {
            Some(end) => end.clone(),
            None => self.stream.as_ref().and_then(MuxStream::end),
        }
    }

    /// What the stream checks read. `end` is [`Slot::end`], computed by the caller.
    pub(crate) fn seen<'a>(&'a self, end: Option<&'a StreamEnd>) -> Seen<'a, WispError> {
        Seen {
            opened: self.stream.is_some(),
            data: &self.data,
            open_error: self.open_error.as_ref(),
            read_error: self.read_error.as_ref(),
            end: end.map(EndView::of),
            dropped: self.dropped.is_some(),
        }
    }
}

/// What the actions did: the streams by alias, the log lines and the failures. It is
/// owned by the caller, so it survives a run that a deadline cut short.
#[derive(Default)]
pub(crate) struct ActionState {
    /// The streams opened, by alias.
    pub(crate) streams: BTreeMap<String, Slot>,
    /// One line per action (and whatever the caller adds).
    pub(crate) log: Vec<String>,
    /// Failed expectations.
    pub(crate) failures: Vec<String>,
}

/// What went wrong in one action.
enum Problem {
    /// Every policy reports it: an error that is not the expected one, an expected error
    /// that did not happen, a stream that is not open.
    Always(String),
    /// Only a strict run fails on it: no progress, a read that got less than asked, a
    /// failed `close_mux`, a stream that was never opened.
    Strict(String),
}

/// Runs `actions` in order on `mux`.
pub(crate) async fn run_actions(
    mux: &ClientMux,
    actions: &[Spanned<Action>],
    policy: Policy,
    observer: &dyn Observer,
    state: &mut ActionState,
) {
    let mut run = Run {
        mux,
        policy,
        observer,
        state,
    };
    for (i, action) in actions.iter().enumerate() {
        observer.step(Some(i));
        let stop = match run.action(i, &action.value).await {
            None => false,
            Some(Problem::Always(failure)) => run.fail(failure),
            Some(Problem::Strict(failure)) => match policy {
                Policy::Record => false,
                Policy::Strict { .. } => run.fail(failure),
            },
        };
        if stop {
            break;
        }
    }
    observer.step(None);
}

struct Run<'a> {
    mux: &'a ClientMux,
    policy: Policy,
    observer: &'a dyn Observer,
    state: &'a mut ActionState,
}

/// A wait that did not finish within the strict policy's bound.
struct NoProgress;

impl Run<'_> {
    /// Records a failure; whether the actions stop.
    fn fail(&mut self, failure: String) -> bool {
        let stop = matches!(self.policy, Policy::Strict { .. });
        if stop {
            self.observer.event(format!("FAILED: {failure}"));
        }
        self.state.failures.push(failure);
        stop
    }

    /// Waits for `fut`, bounded by the strict policy's step.
    async fn bounded<T>(&self, fut: impl Future<Output = T>) -> Result<T, NoProgress> {
        match self.policy {
            Policy::Record => Ok(fut.await),
            Policy::Strict { step } => tokio::time::timeout(step, fut)
                .await
                .map_err(|_| NoProgress),
        }
    }

    /// `no progress within 5000ms` (only a strict policy has a bound).
    fn no_progress(&self) -> String {
        match self.policy {
            Policy::Strict { step } => format!("no progress within {}ms", step.as_millis()),
            Policy::Record => "no progress".to_owned(),
        }
    }

    fn log(&mut self, line: String) {
        self.state.log.push(line);
    }

    fn open_stream(&mut self, alias: &str) -> Option<&mut MuxStream> {
        self.state
            .streams
            .get_mut(alias)
            .and_then(|s| s.stream.as_mut())
    }

    async fn action(&mut self, i: usize, action: &Action) -> Option<Problem> {
        match action {
            Action::Open(open) => {
                let label = format!(
                    "#{i} open {} {} {}:{}",
                    open.stream, open.stream_type.0, open.host, open.port
                );
                let what = format!("action #{i} (open {})", open.stream);
                let opened = self
                    .bounded(
                        self.mux
                            .new_stream(open.stream_type.0, &open.host, open.port),
                    )
                    .await;
                let slot = self.state.streams.entry(open.stream.clone()).or_default();
                let (line, result) = match opened {
                    Err(NoProgress) => {
                        let why = self.no_progress();
                        self.log(format!("{label} -> {why}"));
                        return Some(Problem::Strict(format!("{what}: {why}")));
                    }
                    Ok(Ok(stream)) => {
                        let id = stream.get_stream_id();
                        slot.id = Some(id);
                        slot.stream = Some(stream);
                        self.observer.alias(&open.stream, id);
                        (format!("{label} -> ok (stream id {id})"), Ok(()))
                    }
                    Ok(Err(e)) => {
                        let line = format!("{label} -> error {}", error_text(&e));
                        slot.open_error = Some(e);
                        (line, Err(()))
                    }
                };
                self.log(line);
                let error = self
                    .state
                    .streams
                    .get(&open.stream)
                    .and_then(|s| s.open_error.as_ref());
                let got = match (result, error) {
                    (Err(()), Some(e)) => Err(e),
                    _ => Ok(()),
                };
                check_expected(&what, open.expect_error.as_ref(), got).map(Problem::Always)
            }
            Action::Send(send) => {
                let payload = Bytes::from(send.payload());
                let times = send.times.unwrap_or(1).max(1);
                let label = format!(
                    "#{i} send {} {}{}",
                    send.stream,
                    payload_summary(&payload),
                    if times > 1 {
                        format!(" x{times}")
                    } else {
                        String::new()
                    }
                );
                let what = format!("action #{i} (send {})", send.stream);
                let policy = self.policy;
                let Some(stream) = self.open_stream(&send.stream) else {
                    return self.not_open(i, &label, &send.stream);
                };
                let mut result = Ok(());
                let mut sent = 0;
                for _ in 0..times {
                    let write = stream.send(payload.clone());
                    let done = match policy {
                        Policy::Record => Ok(write.await),
                        Policy::Strict { step } => tokio::time::timeout(step, write)
                            .await
                            .map_err(|_| NoProgress),
                    };
                    match done {
                        Ok(Ok(())) => sent += 1,
                        Ok(Err(e)) => {
                            result = Err(Some(e));
                            break;
                        }
                        Err(NoProgress) => {
                            result = Err(None);
                            break;
                        }
                    }
                }
                match result {
                    Ok(()) => {
                        self.log(format!("{label} -> ok"));
                        check_expected::<WispError>(&what, send.expect_error.as_ref(), Ok(()))
                            .map(Problem::Always)
                    }
                    Err(Some(e)) => {
                        self.log(format!(
                            "{label} -> error {} after {sent} writes",
                            error_text(&e)
                        ));
                        check_expected(&what, send.expect_error.as_ref(), Err(&e))
                            .map(Problem::Always)
                    }
                    Err(None) => {
                        let why = format!("{} after {sent} writes", self.no_progress());
                        self.log(format!("{label} -> {why}"));
                        Some(Problem::Strict(format!("{what}: {why}")))
                    }
                }
            }
            Action::Close(close) => {
                let reason = close.reason.map_or(CloseReason::VOLUNTARY, |r| r.0);
                let label = format!("#{i} close {} reason={reason}", close.stream);
                let what = format!("action #{i} (close {})", close.stream);
                let policy = self.policy;
                let Some(stream) = self.open_stream(&close.stream) else {
                    return self.not_open(i, &label, &close.stream);
                };
                let stream: &MuxStream = stream;
                let closed = match policy {
                    Policy::Record => Ok(stream.close(reason).await),
                    Policy::Strict { step } => tokio::time::timeout(step, stream.close(reason))
                        .await
                        .map_err(|_| NoProgress),
                };
                self.finish_call(&label, &what, closed, close.expect_error.as_ref())
            }
            Action::Read(read) => {
                let (line, problem) = self.read(i, &read.stream, read.until).await;
                self.log(format!(
                    "#{i} read {} until {} -> {line}",
                    read.stream, read.until
                ));
                problem
            }
            Action::WaitClosed(alias) => {
                let (line, problem) = self.read(i, alias, ReadUntil::End).await;
                self.log(format!("#{i} wait_closed {alias} -> {line}"));
                problem
            }
            Action::Drop(alias) => {
                let Some(slot) = self.state.streams.get_mut(alias) else {
                    return Some(Problem::Strict(format!(
                        "action #{i} (drop {alias}): no such stream"
                    )));
                };
                match slot.stream.take() {
                    Some(stream) => {
                        slot.dropped = Some(stream.end());
                        drop(stream);
                        self.log(format!("#{i} drop {alias} -> dropped"));
                    }
                    None => self.log(format!("#{i} drop {alias} -> skipped: not open")),
                }
                None
            }
            Action::CloseMux(c) => {
                let label = match c.reason {
                    Some(r) => format!("#{i} close_mux reason={}", r.0),
                    None => format!("#{i} close_mux"),
                };
                let closed = match c.reason {
                    Some(r) => self.bounded(self.mux.close_with_reason(r.0)).await,
                    None => self.bounded(self.mux.close()).await,
                };
                let line = match &closed {
                    Ok(Ok(())) => format!("{label} -> ok"),
                    Ok(Err(e)) => format!("{label} -> error {}", error_text(e)),
                    Err(NoProgress) => format!("{label} -> {}", self.no_progress()),
                };
                self.log(line);
                let what = format!("action #{i} (close_mux)");
                match closed {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(Problem::Strict(format!("{what}: {}", error_text(&e)))),
                    Err(NoProgress) => {
                        Some(Problem::Strict(format!("{what}: {}", self.no_progress())))
                    }
                }
            }
            Action::Sleep(d) => {
                tokio::time::sleep(d.0).await;
                self.log(format!("#{i} sleep {d}"));
                None
            }
            Action::Echo(echo) => {
                let Policy::Strict { step } = self.policy else {
                    // The loader rejects `echo` in client-role cases; keep the run honest anyway.
                    return Some(Problem::Always(format!(
                        "action #{i}: `echo` is a server-role action"
                    )));
                };
                match run_echo(self.mux, echo, step).await {
                    Ok(summary) => {
                        self.log(format!("#{i} {summary}"));
                        self.observer.event(summary);
                        None
                    }
                    Err(why) => {
                        self.log(format!("#{i} {why}"));
                        Some(Problem::Strict(format!("action #{i}: {why}")))
                    }
                }
            }
        }
    }

    /// The log line and failure of an action on a stream that is not open.
    fn not_open(&mut self, i: usize, label: &str, alias: &str) -> Option<Problem> {
        self.log(format!("{label} -> skipped: the stream is not open"));
        Some(Problem::Always(format!(
            "action #{i}: stream {alias} is not open"
        )))
    }

    /// Logs a call that returns `Result<(), WispError>` and judges it against the
    /// expected error.
    fn finish_call(
        &mut self,
        label: &str,
        what: &str,
        done: Result<Result<(), WispError>, NoProgress>,
        expected: Option<&ErrorSet>,
    ) -> Option<Problem> {
        match done {
            Ok(result) => {
                self.log(match &result {
                    Ok(()) => format!("{label} -> ok"),
                    Err(e) => format!("{label} -> error {}", error_text(e)),
                });
                check_expected(what, expected, result.as_ref().map(|_| ())).map(Problem::Always)
            }
            Err(NoProgress) => {
                let why = self.no_progress();
                self.log(format!("{label} -> {why}"));
                Some(Problem::Strict(format!("{what}: {why}")))
            }
        }
    }

    /// Reads `alias` until `until`, collecting the data. Returns the log text and, when
    /// the read got less than asked, the problem.
    async fn read(&mut self, i: usize, alias: &str, until: ReadUntil) -> (String, Option<Problem>) {
        let what = format!("action #{i} (read {alias})");
        let no_progress = self.no_progress();
        let policy = self.policy;
        let Some(slot) = self.state.streams.get_mut(alias) else {
            let problem = Problem::Strict(format!("{what}: no such stream"));
            return ("skipped: unknown stream".to_owned(), Some(problem));
        };
        let Some(stream) = slot.stream.as_mut() else {
            let problem = Problem::Strict(format!("{what}: the stream is not open"));
            return ("skipped: the stream is not open".to_owned(), Some(problem));
        };
        let before = slot.data.len();
        let mut ended = None;
        loop {
            if let ReadUntil::Bytes(n) = until
                && slot.data.len() >= n
            {
                break;
            }
            let next = match policy {
                Policy::Record => Ok(stream.next().await),
                Policy::Strict { step } => tokio::time::timeout(step, stream.next())
                    .await
                    .map_err(|_| NoProgress),
            };
            match next {
                Ok(Some(Ok(chunk))) => slot.data.extend_from_slice(&chunk),
                Ok(Some(Err(e))) => {
                    ended = Some(format!("error {}", error_text(&e)));
                    slot.read_error = Some(e);
                    break;
                }
                Ok(None) => {
                    ended = Some("end of stream".to_owned());
                    break;
                }
                Err(NoProgress) => {
                    let got = payload_summary(&slot.data[before..]);
                    let problem = Problem::Strict(format!(
                        "{what}: waited for {until}; got {got} ({no_progress})"
                    ));
                    return (format!("{got}, then {no_progress}"), Some(problem));
                }
            }
        }
        let got = payload_summary(&slot.data[before..]);
        let problem = match (until, &ended) {
            (ReadUntil::Bytes(n), Some(e)) if slot.data.len() < n => Some(Problem::Strict(
                format!("{what}: {} of {n} bytes, then {e}", slot.data.len()),
            )),
            _ => None,
        };
        let line = match ended {
            Some(e) => format!("{got}, then {e}"),
            None => got,
        };
        (line, problem)
    }
}
