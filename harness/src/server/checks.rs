//! Run-level checks: facts gathered from every packet the server sends in any case of a
//! run, judged once for the whole run and reported as rows of their own (IDs under
//! `server.run.`), with the first example and the case it came from.
//!
//! - `server.run.packet-lengths` (should): every CONTINUE carries exactly 4 payload bytes
//!   and every CLOSE exactly 1 (a server that pads them breaks clients that check
//!   lengths, though lenient decoders accept the packet).
//! - `server.run.largest-data` (should): the largest DATA payload the server sent is
//!   recorded; above [`LARGEST_DATA_LIMIT`] bytes (64 KiB, the default message cap of
//!   epoxy's client; browsers and other clients differ) it is NON-STRICT, with its size
//!   and case. Servers that read targets 64 KiB at a time stay within it.
//! - `server.run.unattributed-crash` (must, only present when it fails): with `--spawn`,
//!   the server went down while several cases ran and none of them took it down again
//!   alone (written by the crash attribution, `super::health`).

use std::sync::{Arc, Mutex, MutexGuard};

use wisp_cases::{Level, Meta, Role, Verdict};
use wisp_client::proto::HEADER_LEN;

use crate::report::CaseReport;

/// The ID prefix of every run-level check.
pub const PREFIX: &str = "server.run.";

/// The ID of the payload-length check.
pub const PACKET_LENGTHS: &str = "server.run.packet-lengths";

/// The ID of the largest-DATA check.
pub const LARGEST_DATA: &str = "server.run.largest-data";

/// The ID of the row for a crash or freeze no single case reproduces (with `--spawn`; only
/// present when one happened: the crash attribution of the server suite writes it).
pub const UNATTRIBUTED_CRASH: &str = "server.run.unattributed-crash";

/// The largest DATA payload `server.run.largest-data` accepts: 64 KiB, the default
/// message cap of epoxy's client.
pub const LARGEST_DATA_LIMIT: usize = 64 * 1024;

/// The first packet that failed a check: where, and what it was.
#[derive(Clone, Debug)]
struct Example {
    case: String,
    problem: String,
    packet: String,
}

#[derive(Debug, Default)]
struct Findings {
    /// Server packets seen.
    packets: u64,
    /// Of those, packets whose payload length is wrong for their type.
    bad_lengths: u64,
    first_bad_length: Option<Example>,
    /// The largest DATA payload: its size and the case it came in.
    largest_data: Option<(usize, String)>,
}

/// The run-level checks of one server run, shared by the recorders of its cases.
#[derive(Clone, Debug, Default)]
pub(crate) struct RunChecks(Arc<Mutex<Findings>>);

/// What is wrong with the length of a server message, if anything: the payload of a
/// CONTINUE is exactly 4 bytes, that of a CLOSE exactly 1.
pub(crate) fn length_problem(msg: &[u8]) -> Option<String> {
    let payload = msg.len().checked_sub(HEADER_LEN)?;
    let (name, want) = match msg.first()? {
        0x03 => ("CONTINUE", 4),
        0x04 => ("CLOSE", 1),
        _ => return None,
    };
    (payload != want).then(|| {
        format!("a {name} with {payload} payload bytes (a {name} payload is exactly {want})")
    })
}

impl RunChecks {
    fn lock(&self) -> MutexGuard<'_, Findings> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes one message from the server, received in `case`; `describe` renders it for
    /// the report (called only for the first example).
    pub(crate) fn packet(&self, case: &str, msg: &[u8], describe: impl FnOnce() -> String) {
        let problem = length_problem(msg);
        let mut f = self.lock();
        f.packets += 1;
        let payload = msg.len().saturating_sub(HEADER_LEN);
        if msg.first() == Some(&0x02) && f.largest_data.as_ref().is_none_or(|(n, _)| payload > *n) {
            f.largest_data = Some((payload, case.to_owned()));
        }
        if let Some(problem) = problem {
            f.bad_lengths += 1;
            if f.first_bad_length.is_none() {
                f.first_bad_length = Some(Example {
                    case: case.to_owned(),
                    problem,
                    packet: describe(),
                });
            }
        }
    }

    /// The rows of the run's checks (none when the server sent nothing at all).
    pub(crate) fn reports(&self) -> Vec<CaseReport> {
        let f = self.lock();
        if f.packets == 0 {
            return Vec::new();
        }
        let mut lengths = row(
            PACKET_LENGTHS,
            "Every server packet has the exact payload length of its type (whole run)",
            "v2 draft 6 §Packet types (CONTINUE: u32; CLOSE: u8 reason)",
            Level::Should,
        );
        lengths.description = "Every CONTINUE carries exactly 4 payload bytes and every CLOSE \
            exactly 1, in every packet the server sent during the run: a server that pads them \
            breaks clients that check lengths, though lenient decoders accept the packet."
            .to_owned();
        lengths.expectation = "CONTINUE payload: 4 bytes; CLOSE payload: 1 byte".to_owned();
        match &f.first_bad_length {
            None => {
                lengths.transcript = format!(
                    "{} server packets decoded; every CONTINUE and CLOSE has the exact length",
                    f.packets
                );
            }
            Some(e) => {
                lengths.verdict = Verdict::NonStrict;
                lengths.reasons = vec![format!(
                    "{} of {} server packets have a wrong payload length; the first, in {}: {}",
                    f.bad_lengths, f.packets, e.case, e.problem
                )];
                lengths.transcript = format!("first example, in {}:\n{}", e.case, e.packet);
            }
        }
        let mut largest = row(
            LARGEST_DATA,
            "The largest DATA payload the server sends fits the 64 KiB clients commonly accept (whole run)",
            "v2 draft 6 §DATA (no size limit); epoxy's client caps WebSocket messages at 64 KiB",
            Level::Should,
        );
        match &f.largest_data {
            None => largest.transcript = "the server sent no DATA".to_owned(),
            Some((n, case)) => {
                largest.transcript = format!("largest DATA payload: {n} bytes, in {case}");
                if *n > LARGEST_DATA_LIMIT {
                    largest.verdict = Verdict::NonStrict;
                    largest.reasons = vec![format!(
                        "a DATA payload of {n} bytes (in {case}), over the {LARGEST_DATA_LIMIT} bytes many clients accept (epoxy's default cap; browsers differ): split target reads into smaller DATA packets"
                    )];
                }
            }
        }
        vec![lengths, largest]
    }
}

/// An OK row for a run-level check.
pub(crate) fn row(id: &str, title: &str, spec: &str, level: Level) -> CaseReport {
    CaseReport::new(&Meta::synthetic(id, title, spec, level), Role::Server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_exact_per_type() {
        let close = |pad: usize| {
            let mut m = vec![0x04, 1, 0, 0, 0, 0x02];
            m.extend(std::iter::repeat_n(0, pad));
            m
        };
        assert_eq!(length_problem(&close(0)), None);
        assert!(length_problem(&close(3)).is_some_and(|p| p.contains("4 payload bytes")));
        assert!(length_problem(&[0x04, 1, 0, 0, 0]).is_some());
        assert_eq!(length_problem(&[0x03, 0, 0, 0, 0, 128, 0, 0, 0]), None);
        assert!(length_problem(&[0x03, 0, 0, 0, 0, 128, 0, 0, 0, 0]).is_some());
        assert_eq!(length_problem(&[0x02, 1, 0, 0, 0, 1, 2, 3]), None);
        assert_eq!(length_problem(&[0x03]), None);
    }
}
