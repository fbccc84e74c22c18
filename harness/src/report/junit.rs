//! The JUnit XML report, written with quick-junit (the data model and writer
//! cargo-nextest uses), in the Maven Surefire layout CI systems read: one `<testsuite>`
//! with one `<testcase name="ID" classname="GROUP">` per case. A case that fails the gate
//! has a `<failure>` (type FAILED, NON-STRICT, INFORMATIONAL, OK or BASELINE: the verdict it
//! got), a harness or connection error an `<error>`, an ignored or UNSUPPORTED case
//! `<skipped>`; verdicts, reasons and the transcript are in `<system-out>`.
//! `harness/junit/surefire-testsuite.xsd` describes the format, and the tests validate
//! reports of both roles against it.

use std::fmt::Write as _;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use wisp_cases::Verdict;

use super::{CaseReport, Gate, SubjectInfo, SuiteReport};

/// The JUnit XML report of a run.
///
/// # Errors
///
/// Only if the XML writer fails (it writes to memory).
pub fn junit(report: &SuiteReport, gate: &Gate) -> Result<String, String> {
    let name = match &report.subject {
        SubjectInfo::OurClient => "wisp-conformance client (wisp-client in process)".to_owned(),
        SubjectInfo::Client(c) => format!("wisp-conformance client {} {}", c.name, c.version),
        SubjectInfo::Server(s) => format!("wisp-conformance server {} ({})", s.url, s.mode),
        SubjectInfo::Listen(url) => format!("wisp-conformance listen {url}"),
    };
    let mut suite = TestSuite::new(name);
    suite.set_time(report.duration);
    let mut props = Vec::new();
    if let Some(s) = report.server() {
        props.push(Property::new("url", s.url.as_str()));
        props.push(Property::new("mode", s.mode.to_string()));
    }
    props.push(Property::new("gate", gate.summary()));
    if let Some(s) = report.server() {
        if let Some(f) = &s.probe.first_packet {
            props.push(Property::new("probe.first_packet", f.as_str()));
        }
        if let Some(e) = &s.probe.error {
            props.push(Property::new("probe.error", e.as_str()));
        }
    }
    suite.add_properties(props);
    for c in &report.cases {
        suite.add_test_case(test_case(c, gate));
    }
    let mut whole = Report::new("wisp-conformance");
    whole.add_test_suite(suite);
    let xml = whole.to_string().map_err(|e| e.to_string())?;
    single_suite(&xml)
}

/// The verdicts, reasons and close evidence of a case, as the report's text.
fn detail(c: &CaseReport) -> String {
    let mut detail = format!("verdict: {}\nclose: {}\n", c.label(), c.close_label());
    if let Some(e) = c.expected {
        let _ = writeln!(detail, "expected: {e}");
    }
    for r in &c.reasons {
        let _ = writeln!(detail, "- {r}");
    }
    if let Some(col) = &c.close {
        let _ = writeln!(detail, "- {}", col.evidence());
    }
    detail
}

fn test_case(c: &CaseReport, gate: &Gate) -> TestCase {
    let detail = detail(c);
    let status = if let Some(e) = &c.error {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
        s.set_type("ERROR")
            .set_message(e.as_str())
            .set_description(detail.as_str());
        s
    } else if let Some(why) = c.skipped() {
        let mut s = TestCaseStatus::skipped();
        s.set_message(why);
        s
    } else if gate.fails(&c.id) {
        let (kind, message) = match gate.mismatches.iter().find(|m| m.id == c.id) {
            Some(m) => ("BASELINE".to_owned(), m.to_string()),
            None => (
                c.worst().to_string(),
                c.reasons
                    .first()
                    .cloned()
                    .or_else(|| c.close.as_ref().map(|col| format!("close: {}", col.note)))
                    .unwrap_or_default(),
            ),
        };
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        s.set_type(kind)
            .set_message(message)
            .set_description(detail.as_str());
        s
    } else if c.verdict == Verdict::Unsupported {
        let mut s = TestCaseStatus::skipped();
        s.set_message(c.reasons.first().map_or("unsupported", String::as_str));
        s
    } else {
        TestCaseStatus::success()
    };
    let mut case = TestCase::new(c.id.as_str(), status);
    case.set_classname(c.group.as_str());
    case.set_time(c.duration);
    case.set_system_out(format!("{detail}{}", c.transcript.trim_end()));
    case
}

/// The one `<testsuite>` of quick-junit's `<testsuites>` document, as its own document:
/// the Surefire layout (and its XSD) has `<testsuite>` as the root.
fn single_suite(xml: &str) -> Result<String, String> {
    // Attribute values are escaped, so the first `<testsuite ` is the element itself
    // (`<testsuites` is followed by an `s`).
    let start = xml
        .find("<testsuite ")
        .ok_or("the JUnit writer wrote no <testsuite>")?;
    let end = xml
        .rfind("</testsuites>")
        .ok_or("the JUnit writer wrote no </testsuites>")?;
    if end < start {
        return Err("the JUnit writer's output is out of order".to_owned());
    }
    Ok(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n",
        xml[start..end].trim_end()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suite_is_unwrapped_from_testsuites() {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"x\" tests=\"1\">\n    <testsuite name=\"a &lt;testsuite b\" tests=\"1\">\n        <testcase name=\"t\" time=\"0.001\"/>\n    </testsuite>\n</testsuites>\n";
        let one = single_suite(xml).expect("unwraps");
        assert!(one.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name="));
        assert!(one.trim_end().ends_with("</testsuite>"), "{one}");
        assert!(!one.contains("testsuites"), "{one}");
        assert!(single_suite("<testsuites/>").is_err());
    }
}
