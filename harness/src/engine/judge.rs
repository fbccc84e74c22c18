//! The judges every role shares: the per-stream expectations (`expect.streams`), the
//! handshake's outcome against `expect.error`, an action's error against its
//! `expect_error`, and the CLOSE-reason column. The two roles word a few stream failures
//! differently; [`Wording`] keeps each one's text. [`error_text`] and [`describe_end`]
//! are how every report shows an error and a stream's end.

use wisp_cases::actions::{ClosedBy, StreamExpect};
use wisp_cases::server::CloseJudge;
use wisp_cases::values::{ErrorSet, StreamRef};
use wisp_cases::{Level, Verdict};
use wisp_client::proto::{CloseReason, Initiator};
use wisp_client::{StreamEnd, WispError};
use wisp_mock_server::trace::payload_summary;

use crate::report::CloseColumn;

/// What one stream did, as the checks see it.
pub(crate) struct Seen<'a> {
    /// Whether the stream was ever opened (a `MuxStream` is held).
    pub opened: bool,
    /// The bytes read.
    pub data: &'a [u8],
    /// Why the open failed, if it did.
    pub open_error: Option<&'a WispError>,
    /// A read that failed.
    pub read_error: Option<&'a WispError>,
    /// How the stream ended, if it has.
    pub end: Option<&'a StreamEnd>,
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
    pub closed_by: fn(Option<ClosedBy>, Option<&StreamEnd>, ClosedBy) -> String,
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
pub(crate) fn check_expected(
    what: &str,
    expected: Option<&ErrorSet>,
    got: Result<(), &WispError>,
) -> Option<String> {
    match (expected, got) {
        (None, Ok(())) => None,
        (Some(spec), Err(e)) if spec.matches(e) => None,
        (Some(spec), Ok(())) => Some(format!("{what}: expected error {spec}, but it succeeded")),
        (Some(spec), Err(e)) => Some(format!(
            "{what}: expected error {spec}, got {}",
            error_text(e)
        )),
        (None, Err(e)) => Some(format!("{what}: unexpected error {}", error_text(e))),
    }
}

/// Judges the handshake against `expect.error` (`None`: it must succeed). `got` is
/// `None` when the handshake never finished.
pub(crate) fn judge_handshake(
    expected: Option<&ErrorSet>,
    got: Option<&Result<(), WispError>>,
) -> Option<String> {
    match (expected, got) {
        (Some(spec), Some(Err(e))) if spec.matches(e) => None,
        (Some(spec), Some(Err(e))) => Some(format!(
            "handshake: expected error {spec}, got {}",
            error_text(e)
        )),
        (Some(spec), Some(Ok(()))) => Some(format!(
            "handshake: expected error {spec}, but it succeeded"
        )),
        (None, Some(Err(e))) => Some(format!(
            "handshake: expected ok, got error {}",
            error_text(e)
        )),
        (_, None) => Some("handshake: did not finish".to_owned()),
        (None, Some(Ok(()))) => None,
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
fn closed_by(seen: &Seen<'_>) -> Option<ClosedBy> {
    match seen.end {
        Some(StreamEnd::Closed {
            initiator: Initiator::Remote,
            ..
        }) => Some(ClosedBy::Server),
        Some(StreamEnd::Closed {
            initiator: Initiator::Local,
            ..
        }) => Some(ClosedBy::Client),
        Some(StreamEnd::ConnectionEnded(_)) => Some(ClosedBy::Connection),
        _ if seen.dropped => Some(ClosedBy::Client),
        _ => None,
    }
}

/// Checks one stream against its expectations, pushing a failure per mismatch.
pub(crate) fn check_stream(
    who: &str,
    want: &StreamExpect,
    seen: &Seen<'_>,
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
            failures.push(format!("{who}: {}", (wording.closed_by)(got, seen.end, c)));
        }
    }
    if let Some(r) = want.reason {
        let got = seen.end.and_then(StreamEnd::reason);
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
            .or_else(|| seen.end.and_then(StreamEnd::error));
        match err {
            Some(e) if spec.matches(e) => {}
            Some(e) => failures.push(format!(
                "{who}: {} {}, expected {spec}",
                wording.error,
                error_text(e)
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
