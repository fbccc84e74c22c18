//! The spec coverage map's reporters: the `wisp-conformance coverage` table ([`text`]) and
//! its JSON ([`json()`]).
//!
//! The map itself is [`Coverage`] (from `wisp_cases::requirements`): every requirement of
//! `cases/requirements.yaml` in file order with the cases of each role that check it, its
//! status per role and the totals. Any other reporter (the HTML page) renders the same
//! value; [`load`] builds it from a cases directory.
//!
//! ```no_run
//! use wisp_harness::default_cases_dir;
//! use wisp_harness::report::coverage;
//!
//! let (requirements, cases) = coverage::load(&default_cases_dir()).map_err(|mut e| e.remove(0))?;
//! let map = requirements.coverage_of(&cases)?;
//! print!("{}", coverage::text(&map));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};
pub use wisp_cases::requirements::{
    Coverage, Requirement, RequirementCoverage, Requirements, Status, Totals,
};
use wisp_cases::{Case, LoadError, REQUIREMENTS_FILE, Role, load_dir};

/// The roles, in the order the reports show them.
const ROLES: [Role; 2] = [Role::Client, Role::Server];

/// Loads the requirements file of the cases directory `dir` and every case (both roles),
/// for [`Requirements::coverage_of`].
///
/// # Errors
///
/// Every problem of the requirements file and of the case files (a case whose `covers`
/// does not fit the requirements is one).
pub fn load(dir: &Path) -> Result<(Requirements, Vec<Case>), Vec<LoadError>> {
    let (cases, mut errors) = load_dir(dir);
    let path = dir.join(REQUIREMENTS_FILE);
    let requirements = match Requirements::load(&path) {
        Ok(r) => Some(r),
        // load_dir reported the problems of a file that exists.
        Err(_) if path.is_file() => None,
        Err(e) => {
            errors.extend(e);
            None
        }
    };
    match requirements {
        Some(r) if errors.is_empty() => Ok((r, cases)),
        _ => Err(errors),
    }
}

/// `v1.close.immediate (must, both; v1.2: 0x04 - CLOSE)`.
fn headline(r: &Requirement) -> String {
    format!(
        "{} ({}, {}; {}: {})",
        r.id,
        r.level.name(),
        r.role.name(),
        r.spec,
        r.section
    )
}

fn totals_line(role: Role, t: Totals) -> String {
    format!("{:<6} {t}", format!("{}:", role.name()))
}

/// The readable map: per requirement, the cases of each role it binds (or `waived: why`, or
/// `UNCOVERED`), then the uncovered requirements with their text, then the totals per role.
pub fn text(map: &Coverage<'_>) -> String {
    let mut out = String::new();
    for e in &map.entries {
        let _ = writeln!(out, "{}", headline(e.requirement));
        for role in ROLES {
            let shown = match e.status(role) {
                Status::NotApplicable => continue,
                Status::Covered => e.cases(role).join(", "),
                Status::Waived => format!(
                    "waived: {}",
                    e.requirement.waived.as_deref().unwrap_or_default()
                ),
                Status::Uncovered => "UNCOVERED".to_owned(),
            };
            let _ = writeln!(out, "  {:<7} {shown}", format!("{}:", role.name()));
        }
    }
    let _ = writeln!(out);
    for role in ROLES {
        let gaps: Vec<_> = map.uncovered(role).collect();
        if gaps.is_empty() {
            let _ = writeln!(out, "uncovered ({}): none", role.name());
            continue;
        }
        let _ = writeln!(out, "uncovered ({}): {}", role.name(), gaps.len());
        for e in gaps {
            let _ = writeln!(out, "  {}", headline(e.requirement));
            let _ = writeln!(out, "    {}", e.requirement.text);
        }
    }
    if !map.cases_without_covers.is_empty() {
        let _ = writeln!(
            out,
            "cases without covers: {}",
            map.cases_without_covers.join(", ")
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "spec coverage of {} requirements ({}):",
        map.entries.len(),
        map.requirements.display()
    );
    for role in ROLES {
        let _ = writeln!(out, "  {}", totals_line(role, map.totals(role)));
    }
    out
}

fn totals_json(t: Totals) -> Value {
    json!({
        "covered": t.covered,
        "waived": t.waived,
        "uncovered": t.uncovered,
        "total": t.total,
    })
}

fn entry_json(e: &RequirementCoverage<'_>) -> Value {
    let r = e.requirement;
    let mut roles = serde_json::Map::new();
    for role in ROLES {
        let status = e.status(role);
        if status != Status::NotApplicable {
            roles.insert(
                role.name().to_owned(),
                json!({"status": status.name(), "cases": e.cases(role)}),
            );
        }
    }
    json!({
        "id": r.id,
        "text": r.text,
        "spec": r.spec.name(),
        "also_in": r.also_in.iter().map(|s| s.name()).collect::<Vec<_>>(),
        "section": r.section,
        "role": r.role.name(),
        "level": r.level.name(),
        "waived": r.waived,
        "note": r.note,
        "line": r.line,
        "cases": roles,
    })
}

/// The map as JSON: `totals` per role, `complete`, `uncovered` IDs per role, and
/// `requirements` in file order, each with its fields and, per role it binds, its
/// `status` (`covered`, `waived`, `uncovered`) and `cases`.
pub fn json(map: &Coverage<'_>) -> Value {
    let per_role = |f: &dyn Fn(Role) -> Value| {
        ROLES
            .into_iter()
            .map(|r| (r.name().to_owned(), f(r)))
            .collect::<serde_json::Map<_, _>>()
    };
    json!({
        "tool": format!("wisp-conformance {}", env!("CARGO_PKG_VERSION")),
        "requirements_file": map.requirements.display().to_string(),
        "complete": map.complete(),
        "totals": per_role(&|r| totals_json(map.totals(r))),
        "uncovered": per_role(&|r| {
            json!(map.uncovered(r).map(|e| e.requirement.id.as_str()).collect::<Vec<_>>())
        }),
        "cases_without_covers": map.cases_without_covers,
        "requirements": map.entries.iter().map(entry_json).collect::<Vec<_>>(),
    })
}
