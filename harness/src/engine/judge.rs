//! The judges every role shares: the per-stream expectations (`expect.streams`), the
//! handshake's outcome against `expect.error`, an action's error against its
//! `expect_error`, and the CLOSE-reason column. The two roles word a few stream failures
//! differently; [`Wording`] keeps each one's text. [`error_text`] and [`describe_end`]
//! are how every report shows an error and a stream's end.

use wisp_cases::actions::{ClosedBy, StreamExpect};
use wisp_cases::client::ClientExpect;
use wisp_cases::packet::parse_version;
use wisp_cases::server::CloseJudge;
use wisp_cases::values::{ErrorSet, StreamRef, extension_label};
use wisp_cases::{Level, Verdict};
use wisp_client::proto::{CloseReason, ExtensionId, Initiator};
use wisp_client::{StreamEnd, WispError};
use wisp_mock_server::trace::payload_summary;

use crate::report::CloseColumn;
use crate::shim::ReportedError;

/// An error the judges compare with a case's expectations: our client's [`WispError`],
/// or one a client under test reported by name ([`ReportedError`]).
pub(crate) trait ApiError {
    /// How reports show it.
    fn text(&self) -> String;
    /// Whether it is one of `set`.
    fn is(&self, set: &ErrorSet) -> bool;
}

impl ApiError for WispError {
    fn text(&self) -> String {
        error_text(self)
    }
    fn is(&self, set: &ErrorSet) -> bool {
        set.matches(self)
    }
}

impl ApiError for ReportedError {
    fn text(&self) -> String {
        self.to_string()
    }
    fn is(&self, set: &ErrorSet) -> bool {
        self.matches_set(set)
    }
}

/// How a stream ended, as the checks see it.
pub(crate) struct EndView<'a, E> {
    /// Who ended it (`None`: an open that failed).
    pub by: Option<ClosedBy>,
    /// The close reason, when one is known.
    pub reason: Option<CloseReason>,
    /// The error it ended with.
    pub error: Option<&'a E>,
    /// How reports describe it.
    pub text: String,
}

impl<'a> EndView<'a, WispError> {
    /// Our client's stream end.
    pub(crate) fn of(end: &'a StreamEnd) -> Self {
        let by = match end {
            StreamEnd::Closed {
                initiator: Initiator::Remote,
                ..
            } => Some(ClosedBy::Server),
            StreamEnd::Closed {
                initiator: Initiator::Local,
                ..
            } => Some(ClosedBy::Client),
            StreamEnd::ConnectionEnded(_) => Some(ClosedBy::Connection),
            _ => None,
        };
        Self {
            by,
            reason: end.reason(),
            error: end.error(),
            text: describe_end(end),
        }
    }
}

/// What one stream did, as the checks see it.
pub(crate) struct Seen<'a, E> {
    /// Whether the stream was ever opened (a `MuxStream` is held).
    pub opened: bool,
    /// The bytes read.
    pub data: &'a [u8],
    /// Why the open failed, if it did.
    pub open_error: Option<&'a E>,
    /// A read that failed.
    pub read_error: Option<&'a E>,
    /// How the stream ended, if it has.
    pub end: Option<EndView<'a, E>>,
    /// Whether the case dropped the stream.
    pub dropped: bool,
}

/// Where the two suites' failure texts differ.
pub(crate) struct Wording {
    /// Before the close reason seen: `"close reason is"` or `"close reason"`.
    pub reason: &'static str,
    /// Before the error seen: `"error is"` or `"error"`.
    pub error: &'static str,
    /// Between the stream and `is open`/`is ended`: `": "` or `" "`.
    pub open_sep: &'static str,
    /// The text after `"{who}: "` when the stream was not ended by whom the case expects:
    /// `(who ended it, how it ended, who was expected)`.
    pub closed_by: fn(Option<ClosedBy>, Option<&str>, ClosedBy) -> String,
}

/// An error as the reports show it: its name, then its message.
pub(crate) fn error_text(e: &WispError) -> String {
    format!("{} ({e})", e.name())
}

/// How a stream ended, as transcripts and reasons show it.
pub(crate) fn describe_end(end: &StreamEnd) -> String {
    match end {
        StreamEnd::Closed { reason, initiator } => format!(
            "closed by {} reason={reason}",
            match initiator {
                Initiator::Remote => "server",
                Initiator::Local => "client",
            }
        ),
        StreamEnd::OpenFailed(e) => format!("open failed: {}", error_text(e)),
        StreamEnd::ConnectionEnded(e) => format!("connection ended: {}", error_text(e)),
        other => format!("{other:?}"),
    }
}

/// Compares what an operation did with the error it was expected to fail with (`None`:
/// it must succeed). `what` names the operation (`action #2 (send s1)`, `handshake`).
pub(crate) fn check_expected<E: ApiError>(
    what: &str,
    expected: Option<&ErrorSet>,
    got: Result<(), &E>,
) -> Option<String> {
    match (expected, got) {
        (None, Ok(())) => None,
        (Some(spec), Err(e)) if e.is(spec) => None,
        (Some(spec), Ok(())) => Some(format!("{what}: expected error {spec}, but it succeeded")),
        (Some(spec), Err(e)) => Some(format!("{what}: expected error {spec}, got {}", e.text())),
        (None, Err(e)) => Some(format!("{what}: unexpected error {}", e.text())),
    }
}

/// Judges the handshake against `expect.error` (`None`: it must succeed). `got` is
/// `None` when the handshake never finished.
pub(crate) fn judge_handshake<E: ApiError>(
    expected: Option<&ErrorSet>,
    got: Option<&Result<(), E>>,
) -> Option<String> {
    match (expected, got) {
        (Some(spec), Some(Err(e))) if e.is(spec) => None,
        (Some(spec), Some(Err(e))) => Some(format!(
            "handshake: expected error {spec}, got {}",
            e.text()
        )),
        (Some(spec), Some(Ok(()))) => Some(format!(
            "handshake: expected error {spec}, but it succeeded"
        )),
        (None, Some(Err(e))) => Some(format!("handshake: expected ok, got error {}", e.text())),
        (_, None) => Some("handshake: did not finish".to_owned()),
        (None, Some(Ok(()))) => None,
    }
}

/// What a handshake negotiated, as the checks see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Negotiated {
    /// The version spoken (`2.0`).
    pub version: String,
    /// Whether a v2 client fell back to v1.
    pub downgraded: bool,
    /// The negotiated extension ids.
    pub extensions: Vec<u8>,
    /// The MOTD.
    pub motd: Option<String>,
}

impl Negotiated {
    /// The extensions by name.
    pub(crate) fn labels(&self) -> Vec<String> {
        self.extensions
            .iter()
            .map(|id| extension_label(ExtensionId(*id)))
            .collect()
    }
}

/// Checks the negotiated outcome against `expect` (`downgraded`, `version`, `extensions`,
/// `motd`); `None` when the handshake failed.
pub(crate) fn judge_negotiated(
    expect: &ClientExpect,
    got: Option<&Negotiated>,
    failures: &mut Vec<String>,
) {
    let Some(n) = got else {
        if expect.downgraded.is_some()
            || expect.version.is_some()
            || expect.extensions.is_some()
            || expect.motd.is_some()
        {
            failures.push("cannot check the negotiated outcome: the handshake failed".to_owned());
        }
        return;
    };
    if let Some(d) = expect.downgraded
        && n.downgraded != d
    {
        failures.push(format!("downgraded is {}, expected {d}", n.downgraded));
    }
    if let Some(v) = &expect.version
        && let Ok(want) = parse_version(v)
        && parse_version(&n.version).ok() != Some(want)
    {
        failures.push(format!("version is {}, expected {v}", n.version));
    }
    if let Some(exts) = &expect.extensions {
        let mut got = n.extensions.clone();
        let mut want: Vec<u8> = exts.iter().map(|e| e.0.0).collect();
        got.sort_unstable();
        want.sort_unstable();
        if got != want {
            let names = |v: &[u8]| {
                v.iter()
                    .map(|id| extension_label(ExtensionId(*id)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            failures.push(format!(
                "negotiated extensions are [{}], expected [{}]",
                names(&got),
                names(&want)
            ));
        }
    }
    if let Some(m) = &expect.motd
        && n.motd.as_deref() != Some(m.as_str())
    {
        failures.push(format!("motd is {:?}, expected {m:?}", n.motd.as_deref()));
    }
}

/// A CLOSE the server sent.
#[derive(Clone, Debug)]
pub(crate) struct SeenClose {
    /// The reason byte.
    pub(crate) reason: CloseReason,
    /// The decoded packet, with its bytes, for reports.
    pub(crate) packet: String,
}

/// The CLOSE-reason column: the reason seen on the judged stream (`id`, when the stream
/// was opened) against the preferred and acceptable ones.
pub(crate) fn judge_close(
    judge: &CloseJudge,
    id: Option<u32>,
    seen: Option<SeenClose>,
) -> CloseColumn {
    let preferred = judge.reason.0.clone();
    let acceptable = judge
        .acceptable
        .as_ref()
        .map(|a| a.0.clone())
        .unwrap_or_default();
    let names = |v: &[CloseReason]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" or ")
    };
    let stream = match (&judge.stream, id) {
        (StreamRef::Alias(a), Some(id)) => format!("{a}(#{id})"),
        (StreamRef::Alias(a), None) => a.clone(),
        (StreamRef::Id(id), _) => id.to_string(),
    };
    let (verdict, note) = match &seen {
        Some(c) if preferred.contains(&c.reason) => (Verdict::Ok, format!("reason {}", c.reason)),
        Some(c) if acceptable.contains(&c.reason) => (
            match judge.level {
                Level::May => Verdict::Informational,
                _ => Verdict::NonStrict,
            },
            format!("reason {}; {} is preferred", c.reason, names(&preferred)),
        ),
        Some(c) => (
            Verdict::of_failure(judge.level),
            format!(
                "reason {}; expected {}{}",
                c.reason,
                names(&preferred),
                if acceptable.is_empty() {
                    String::new()
                } else {
                    format!(" (or {})", names(&acceptable))
                }
            ),
        ),
        None => (
            Verdict::of_failure(judge.level),
            format!(
                "no CLOSE arrived on stream {stream}; expected {}",
                names(&preferred)
            ),
        ),
    };
    CloseColumn {
        verdict,
        stream,
        preferred,
        acceptable,
        got: seen.as_ref().map(|c| c.reason),
        packet: seen.map(|c| c.packet),
        note,
    }
}

/// Who ended a stream, as `closed_by` names it (`None`: still open).
fn closed_by<E>(seen: &Seen<'_, E>) -> Option<ClosedBy> {
    match seen.end.as_ref().and_then(|e| e.by) {
        Some(by) => Some(by),
        None if seen.dropped => Some(ClosedBy::Client),
        None => None,
    }
}

/// Checks one stream against its expectations, pushing a failure per mismatch.
pub(crate) fn check_stream<E: ApiError>(
    who: &str,
    want: &StreamExpect,
    seen: &Seen<'_, E>,
    wording: &Wording,
    failures: &mut Vec<String>,
) {
    if let Some(t) = &want.data_text
        && seen.data != t.as_bytes()
    {
        failures.push(format!(
            "{who}: read {}, expected {t:?}",
            payload_summary(seen.data)
        ));
    }
    if let Some(h) = &want.data_hex
        && seen.data != h.0
    {
        failures.push(format!(
            "{who}: read {}, expected hex {}",
            payload_summary(seen.data),
            hex::encode(&h.0)
        ));
    }
    if let Some(n) = want.data_len
        && seen.data.len() != n
    {
        failures.push(format!(
            "{who}: read {} bytes, expected {n}",
            seen.data.len()
        ));
    }
    if let Some(c) = want.closed_by {
        let got = closed_by(seen);
        if got != Some(c) {
            let end = seen.end.as_ref().map(|e| e.text.as_str());
            failures.push(format!("{who}: {}", (wording.closed_by)(got, end, c)));
        }
    }
    if let Some(r) = want.reason {
        let got = seen.end.as_ref().and_then(|e| e.reason);
        if got != Some(r.0) {
            failures.push(format!(
                "{who}: {} {}, expected {}",
                wording.reason,
                got.map_or("none".to_owned(), |g| g.to_string()),
                r.0
            ));
        }
    }
    if let Some(spec) = &want.error {
        let err = seen
            .open_error
            .or(seen.read_error)
            .or_else(|| seen.end.as_ref().and_then(|e| e.error));
        match err {
            Some(e) if e.is(spec) => {}
            Some(e) => failures.push(format!(
                "{who}: {} {}, expected {spec}",
                wording.error,
                e.text()
            )),
            None => failures.push(format!("{who}: no error, expected {spec}")),
        }
    }
    if let Some(open) = want.open {
        let is_open = seen.opened && seen.end.is_none() && seen.open_error.is_none();
        if is_open != open {
            failures.push(format!(
                "{who}{}is {}, expected {}",
                wording.open_sep,
                if is_open { "open" } else { "ended" },
                if open { "open" } else { "ended" }
            ));
        }
    }
}
