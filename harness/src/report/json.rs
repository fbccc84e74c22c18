//! The JSON report: what was judged, the totals, the gate and every case with its
//! verdicts, reasons and transcript.

use serde_json::{Map, Value, json};

use super::{CaseReport, Gate, SubjectInfo, SuiteReport};
use crate::server::baseline::Baseline;

fn reason_hex(r: &wisp_client::proto::CloseReason) -> String {
    format!("0x{:02x}", r.0)
}

fn case(c: &CaseReport, gate: &Gate, baseline: Option<&Baseline>) -> Value {
    let close = c.close.as_ref().filter(|_| c.judged()).map(|col| {
        json!({
            "verdict": col.verdict.to_string(),
            "stream": col.stream,
            "preferred": col.preferred.iter().map(reason_hex).collect::<Vec<_>>(),
            "acceptable": col.acceptable.iter().map(reason_hex).collect::<Vec<_>>(),
            "got": col.got.as_ref().map(reason_hex),
            "packet": col.packet,
            "note": col.note,
        })
    });
    let expected = baseline
        .and_then(|b| b.cases.get(&c.id))
        .map(|e| e.to_string());
    json!({
        "id": c.id,
        "role": c.role.name(),
        "group": c.group,
        "family": c.family(),
        "title": c.title,
        "spec": c.spec,
        "level": c.level.name(),
        "description": c.description,
        "expectation": c.expectation,
        "verdict": c.label(),
        "expected": c.expected.map(|e| e.to_string()),
        "close": close,
        "outcome": c.outcome(),
        "baseline": expected,
        "gate_fails": gate.fails(&c.id),
        "reasons": c.reasons,
        "error": c.error,
        "ignored": c.ignored,
        "not_run": c.not_run,
        "duration_ms": c.duration.as_millis() as u64,
        "virtual_ms": c.virtual_time.map(|v| v.as_millis() as u64),
        "trace": c.transcript.lines().collect::<Vec<_>>(),
    })
}

/// The JSON report of a run.
pub fn json(report: &SuiteReport, gate: &Gate, baseline: Option<&Baseline>) -> Value {
    let (behaviour, close) = report.counts();
    let mut out = Map::new();
    out.insert(
        "tool".to_owned(),
        json!(format!("wisp-conformance {}", env!("CARGO_PKG_VERSION"))),
    );
    out.insert("subject".to_owned(), json!(report.subject.headline()));
    match &report.subject {
        SubjectInfo::OurClient => {
            out.insert("role".to_owned(), json!("client"));
        }
        SubjectInfo::Listen(url) => {
            out.insert("role".to_owned(), json!("client"));
            out.insert("url".to_owned(), json!(url));
        }
        SubjectInfo::Client(c) => {
            out.insert("role".to_owned(), json!("client"));
            out.insert(
                "client".to_owned(),
                json!({"name": c.name, "version": c.version, "capabilities": c.capabilities, "driver": c.driver}),
            );
        }
        SubjectInfo::Server(s) => {
            out.insert("role".to_owned(), json!("server"));
            out.insert("url".to_owned(), json!(s.url));
            out.insert("mode".to_owned(), json!(s.mode.to_string()));
            out.insert("probe".to_owned(), json!(s.probe));
            out.insert(
                "targets".to_owned(),
                Value::Object(
                    s.targets
                        .iter()
                        .map(|(n, a)| (n.clone(), Value::String(a.to_string())))
                        .collect(),
                ),
            );
            out.insert("blocked".to_owned(), json!(s.blocked));
        }
    }
    out.insert(
        "duration_ms".to_owned(),
        json!(report.duration.as_millis() as u64),
    );
    out.insert(
        "summary".to_owned(),
        json!({
            "verdict": behaviour,
            "close": close,
            "cases": report.cases.len(),
            "not_applicable": report.not_applicable,
        }),
    );
    out.insert(
        "gate".to_owned(),
        json!({
            "exit_code": gate.exit_code,
            "summary": gate.summary(),
            "strict": gate.strict,
            "baseline": baseline.map(|b| b.path.display().to_string()),
            "mismatches": gate.mismatches.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "failing": gate.failing,
            "errors": gate.errors,
        }),
    );
    out.insert(
        "cases".to_owned(),
        Value::Array(
            report
                .cases
                .iter()
                .map(|c| case(c, gate, baseline))
                .collect(),
        ),
    );
    Value::Object(out)
}
