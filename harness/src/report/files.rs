//! The report files a run writes, whichever suite: `--json FILE`, `--junit FILE`,
//! `--html DIR`.

use std::path::Path;

use super::{Gate, SuiteReport, html, json, junit};
use crate::server::baseline::Baseline;

/// Writes the JSON report, the JUnit XML report and the HTML site (with the coverage map
/// of the built-in cases) that were asked for (`None`: not asked).
///
/// # Errors
///
/// A report that cannot be rendered or written, naming the flag and the path.
pub fn write_files(
    json_path: Option<&Path>,
    junit_path: Option<&Path>,
    html_dir: Option<&Path>,
    report: &SuiteReport,
    gate: &Gate,
    baseline: Option<&Baseline>,
) -> Result<(), String> {
    if let Some(path) = json_path {
        let value = json::json(report, gate, baseline);
        let text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("--json {}: {e}", path.display()))?;
    }
    if let Some(path) = junit_path {
        std::fs::write(path, junit::junit(report, gate)?)
            .map_err(|e| format!("--junit {}: {e}", path.display()))?;
    }
    if let Some(dir) = html_dir {
        let run = html::Run::from_report(report, gate, baseline)?;
        html::write_site(&[run], &crate::installed_cases_dir(), dir)?;
    }
    Ok(())
}
