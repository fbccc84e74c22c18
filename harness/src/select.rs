//! Segment-aware case selection: `--filter handshake.downgrade` selects
//! `handshake.downgrade` and `handshake.downgrade.*`, but not `handshake.downgraded-x`. A
//! trailing `*` matches any continuation (`handshake.down*`).

use std::fmt;

use std::path::Path;

use wisp_cases::Role;

use crate::{Case, load_dir};

/// The cases of `role` under `dir`, narrowed by `only` (ID prefixes; empty: every case)
/// and `skip` (ID prefixes left out); `flag` names the `only` option in errors
/// (`--only`, `--filter`). Also whether the selection is the whole suite.
///
/// # Errors
///
/// A case file that does not load, no case of the role, or a prefix that matches nothing.
pub fn select_cases(
    dir: &Path,
    role: Role,
    only: &[String],
    skip: &[String],
    flag: &str,
) -> Result<(Vec<Case>, bool), String> {
    let (cases, errors) = load_dir(dir);
    if !errors.is_empty() {
        let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
        return Err(format!("bad case files:\n{}", all.join("\n")));
    }
    let cases: Vec<Case> = cases.into_iter().filter(|c| c.role() == role).collect();
    if cases.is_empty() {
        return Err(format!(
            "no {}-role cases under {}",
            role.name(),
            dir.display()
        ));
    }
    let filter = Filter::new(only.iter().cloned());
    let mut selected: Vec<Case> = filter
        .apply(&cases)
        .map_err(|e| format!("{flag}: {e}"))?
        .into_iter()
        .cloned()
        .collect();
    if !skip.is_empty() {
        let skip = Filter::new(skip.iter().cloned());
        skip.apply(&cases).map_err(|e| format!("--skip: {e}"))?;
        selected.retain(|c| !skip.matches(c.id()));
    }
    Ok((selected, only.is_empty() && skip.is_empty()))
}

/// A set of ID prefixes; empty selects everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    prefixes: Vec<String>,
}

/// A filter that selected nothing (an error, so a typo cannot pass silently).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError {
    /// The prefixes that matched no case.
    pub unmatched: Vec<String>,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "filter matches no case: {}", self.unmatched.join(", "))
    }
}

impl std::error::Error for FilterError {}

impl Filter {
    /// A filter from prefixes.
    pub fn new(prefixes: impl IntoIterator<Item = String>) -> Self {
        Self {
            prefixes: prefixes.into_iter().collect(),
        }
    }

    /// Whether `prefix` selects `id`.
    pub fn prefix_matches(prefix: &str, id: &str) -> bool {
        match prefix.strip_suffix('*') {
            Some(p) => id.starts_with(p),
            None => id == prefix || id.starts_with(&format!("{prefix}.")),
        }
    }

    /// Whether the case ID is selected.
    pub fn matches(&self, id: &str) -> bool {
        self.prefixes.is_empty() || self.prefixes.iter().any(|p| Self::prefix_matches(p, id))
    }

    /// The selected cases; an error when some prefix selects nothing.
    pub fn apply<'a>(&self, cases: &'a [Case]) -> Result<Vec<&'a Case>, FilterError> {
        let unmatched: Vec<String> = self
            .prefixes
            .iter()
            .filter(|p| !cases.iter().any(|c| Self::prefix_matches(p, c.id())))
            .cloned()
            .collect();
        if !unmatched.is_empty() {
            return Err(FilterError { unmatched });
        }
        Ok(cases.iter().filter(|c| self.matches(c.id())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(Filter::prefix_matches("handshake", "handshake.downgrade.x"));
        assert!(Filter::prefix_matches(
            "handshake.downgrade",
            "handshake.downgrade"
        ));
        assert!(!Filter::prefix_matches(
            "handshake.down",
            "handshake.downgrade.x"
        ));
        assert!(Filter::prefix_matches(
            "handshake.down*",
            "handshake.downgrade.x"
        ));
        assert!(!Filter::prefix_matches("auth", "handshake.auth"));
    }
}
