//! The per-stream expectation checks (`expect.streams`) shared by the client suite
//! ([`crate::runner`]) and the server suite ([`crate::server`]). The two suites word a few
//! failures differently; [`Wording`] keeps each one's text. [`error_text`] is how both
//! show an error.

use wisp_cases::actions::{ClosedBy, StreamExpect};
use wisp_client::proto::Initiator;
use wisp_client::{StreamEnd, WispError};
use wisp_mock_server::trace::payload_summary;

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
