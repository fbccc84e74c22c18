//! The spec requirements (`cases/requirements.yaml`) and the coverage map built from the
//! cases' `covers:` lists.
//!
//! A requirement is one normative statement of Wisp v1.2, of v2 draft 6, or a de-facto rule
//! from the protocol reference, with a stable ID. [`Requirements::load`] reads and validates
//! the file (unknown keys, malformed or duplicate IDs and inconsistent entries are
//! [`LoadError`]s with their line and column). Every case names the requirements it checks
//! (`covers: [ID, ...]`); loading a cases directory ([`crate::load_dir`]) checks each list
//! against the directory's requirements file ([`Requirements::claim`]).
//! [`Requirements::coverage`] then answers, per requirement and per role, which cases check
//! it, what is waived and what is a gap ([`Coverage`]).
//!
//! ```no_run
//! # use std::path::Path;
//! use wisp_cases::requirements::Requirements;
//! use wisp_cases::{REQUIREMENTS_FILE, Role, load_dir};
//!
//! let dir = Path::new("cases");
//! let (cases, errors) = load_dir(dir);
//! assert!(errors.is_empty());
//! let reqs = Requirements::load(&dir.join(REQUIREMENTS_FILE)).map_err(|mut e| e.remove(0))?;
//! let map = reqs.coverage_of(&cases)?;
//! println!("client: {}", map.totals(Role::Client));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use crate::load::parse;
use crate::{Case, LoadError, Role};

/// The document a requirement comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub enum Spec {
    /// Wisp v1.2 (`protocol.md` on the spec repository's `main` branch).
    #[serde(rename = "v1.2")]
    V1_2,
    /// Wisp v2.0 draft 6 (`protocol.md` on the `v2` branch).
    #[serde(rename = "v2-draft6")]
    V2Draft6,
    /// Where the spec is silent: the project's protocol reference, `wisp-protocol.md`.
    #[serde(rename = "de-facto")]
    DeFacto,
}

impl Spec {
    /// The name used in the file: `v1.2`, `v2-draft6` or `de-facto`.
    pub fn name(self) -> &'static str {
        match self {
            Spec::V1_2 => "v1.2",
            Spec::V2Draft6 => "v2-draft6",
            Spec::DeFacto => "de-facto",
        }
    }

    /// The first segment every ID of this source starts with.
    pub fn id_prefix(self) -> &'static str {
        match self {
            Spec::V1_2 => "v1",
            Spec::V2Draft6 => "v2",
            Spec::DeFacto => "defacto",
        }
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The side a requirement binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Only clients.
    Client,
    /// Only servers.
    Server,
    /// Both sides.
    Both,
}

impl Side {
    /// `client`, `server` or `both`, as in the file.
    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
            Side::Both => "both",
        }
    }

    /// Whether a case of `role` (the side it puts under test) can check this requirement.
    pub fn binds(self, role: Role) -> bool {
        matches!(
            (self, role),
            (Side::Both, _) | (Side::Client, Role::Client) | (Side::Server, Role::Server)
        )
    }
}

/// How strongly the statement is worded: its RFC 2119 keyword. (A case's own `level` is
/// the coarser [`crate::Level`], which decides its verdict.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// MUST.
    Must,
    /// MUST NOT.
    MustNot,
    /// SHOULD.
    Should,
    /// SHOULD NOT.
    ShouldNot,
    /// MAY.
    May,
}

impl Level {
    /// `must`, `must-not`, `should`, `should-not` or `may`, as in the file.
    pub fn name(self) -> &'static str {
        match self {
            Level::Must => "must",
            Level::MustNot => "must-not",
            Level::Should => "should",
            Level::ShouldNot => "should-not",
            Level::May => "may",
        }
    }
}

/// One requirement, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// Stable dotted ID, e.g. `v1.close.immediate`.
    pub id: String,
    /// The quoted sentence.
    pub text: String,
    /// Where it comes from.
    pub spec: Spec,
    /// Other spec versions that contain the same sentence.
    pub also_in: Vec<Spec>,
    /// The spec heading (or `wisp-protocol.md §N`).
    pub section: String,
    /// The side it binds.
    pub role: Side,
    /// Its strength.
    pub level: Level,
    /// Why no black-box case can check it, when that is so.
    pub waived: Option<String>,
    /// Remarks.
    pub note: Option<String>,
    /// 1-based line of the entry's `id` in the file (0 when unknown).
    pub line: u64,
}

/// The validated requirements file: entries in file order, looked up by ID.
#[derive(Clone, Debug)]
pub struct Requirements {
    path: PathBuf,
    list: Vec<Requirement>,
    index: HashMap<String, usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequirementsFile {
    requirements: Vec<RawRequirement>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequirement {
    id: Spanned<String>,
    text: Spanned<String>,
    spec: Spec,
    #[serde(default)]
    also_in: Option<Spanned<Vec<Spec>>>,
    section: Spanned<String>,
    role: Side,
    level: Level,
    #[serde(default)]
    waived: Option<Spanned<String>>,
    #[serde(default)]
    note: Option<Spanned<String>>,
}

impl Requirements {
    /// Reads and validates the file at `path`.
    ///
    /// # Errors
    ///
    /// The file cannot be read, is not valid YAML of this schema (an unknown key, a missing
    /// field, a value outside its set), or entries are inconsistent: a malformed or
    /// duplicate ID, an ID whose first segment does not match its `spec`, an empty `text`,
    /// `section`, `waived` or `note`, an `also_in` naming its own or a repeated version.
    /// Every inconsistency is reported (in file order), not only the first.
    pub fn load(path: &Path) -> Result<Self, Vec<LoadError>> {
        let source = std::fs::read_to_string(path)
            .map_err(|e| vec![LoadError::whole_file(path, format!("cannot read: {e}"))])?;
        Self::parse(path, &source)
    }

    /// Validates `source` as the contents of the file at `path` (named in errors only).
    ///
    /// # Errors
    ///
    /// As [`Requirements::load`], except reading.
    pub fn parse(path: &Path, source: &str) -> Result<Self, Vec<LoadError>> {
        let file: RequirementsFile = parse(path, source).map_err(|e| vec![e])?;
        let mut problems = Vec::new();
        let mut problem = |loc: Location, message: String| {
            problems.push(LoadError::at(path, loc, message, source));
        };
        if file.requirements.is_empty() {
            problem(
                Location::UNKNOWN,
                "`requirements` lists no requirement".to_owned(),
            );
        }
        let mut list: Vec<Requirement> = Vec::with_capacity(file.requirements.len());
        let mut index: HashMap<String, usize> = HashMap::new();
        for raw in file.requirements {
            let id = raw.id.value.trim().to_owned();
            let id_loc = raw.id.referenced;
            if let Err(why) = check_id(&id, raw.spec) {
                problem(id_loc, why);
            }
            match index.get(&id) {
                Some(&first) => problem(
                    id_loc,
                    format!(
                        "duplicate requirement ID {id:?} (first at line {})",
                        list[first].line
                    ),
                ),
                None => {
                    index.insert(id.clone(), list.len());
                }
            }
            let mut non_empty = |s: &Spanned<String>, field: &str| {
                let v = s.value.trim();
                if v.is_empty() {
                    problem(s.referenced, format!("`{field}` is empty"));
                }
                v.to_owned()
            };
            let text = non_empty(&raw.text, "text");
            let section = non_empty(&raw.section, "section");
            let waived = raw.waived.as_ref().map(|w| non_empty(w, "waived"));
            let note = raw.note.as_ref().map(|n| non_empty(n, "note"));
            let mut also_in = Vec::new();
            if let Some(a) = &raw.also_in {
                for s in &a.value {
                    if *s == raw.spec || *s == Spec::DeFacto {
                        problem(
                            a.referenced,
                            format!(
                                "`also_in` names {s}: list other spec versions than the entry's own, never de-facto"
                            ),
                        );
                    } else if also_in.contains(s) {
                        problem(a.referenced, format!("`also_in` repeats {s}"));
                    } else {
                        also_in.push(*s);
                    }
                }
            }
            list.push(Requirement {
                id,
                text,
                spec: raw.spec,
                also_in,
                section,
                role: raw.role,
                level: raw.level,
                waived,
                note,
                line: id_loc.line(),
            });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            path: path.to_owned(),
            list,
            index,
        })
    }

    /// The file the requirements were loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The requirement with this ID.
    pub fn get(&self, id: &str) -> Option<&Requirement> {
        self.index.get(id).map(|&i| &self.list[i])
    }

    /// Every requirement, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Requirement> {
        self.list.iter()
    }

    /// How many requirements there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none (never true for a loaded file).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The requirement a case of `role` claims to check with `covers: [id]`.
    ///
    /// # Errors
    ///
    /// Why the claim cannot stand: no requirement has that ID, the requirement does not
    /// bind `role` (a client-role case claiming a server-only statement), or it is waived
    /// (a waiver says no case can check it).
    pub fn claim(&self, id: &str, role: Role) -> Result<&Requirement, String> {
        let req = self.get(id).ok_or_else(|| {
            format!(
                "no requirement {id:?} in {} (IDs are listed there)",
                self.path.display()
            )
        })?;
        if !req.role.binds(role) {
            return Err(format!(
                "requirement {id:?} binds the {} side only; this is a {}-role case",
                req.role.name(),
                role.name()
            ));
        }
        if req.waived.is_some() {
            return Err(format!(
                "requirement {id:?} is waived (no case can check it): drop the waiver or the claim"
            ));
        }
        Ok(req)
    }

    /// Checks a loaded case's `covers` list against these requirements: a missing list,
    /// and every claim [`Requirements::claim`] refuses, are errors at their place in the
    /// case file.
    pub(crate) fn check_case(&self, case: &Case) -> Result<(), LoadError> {
        let meta = case.meta();
        if meta.covers.is_empty() {
            return Err(LoadError::whole_file(
                &meta.path,
                format!(
                    "no `covers:` list: name the requirements this case checks, from {} (e.g. `covers: [v1.close.immediate]`)",
                    self.path.display()
                ),
            ));
        }
        for c in &meta.covers {
            if let Err(why) = self.claim(&c.value, case.role()) {
                return Err(LoadError::at(
                    &meta.path,
                    c.referenced,
                    format!("covers: {why}"),
                    &meta.source,
                ));
            }
        }
        Ok(())
    }

    /// [`Requirements::coverage`] of loaded cases (both roles).
    ///
    /// # Errors
    ///
    /// As [`Requirements::coverage`]; never for cases [`crate::load_dir`] loaded from the
    /// directory of this file, since the loader checked their claims.
    pub fn coverage_of<'c>(
        &self,
        cases: impl IntoIterator<Item = &'c Case>,
    ) -> Result<Coverage<'_>, CoverageError> {
        self.coverage(
            cases
                .into_iter()
                .map(|c| (c.id(), c.role(), c.meta().covered_ids())),
        )
    }

    /// Builds the coverage map from every case's ID, role and `covers` list.
    ///
    /// # Errors
    ///
    /// Every case entry that cannot stand: a claim [`Requirements::claim`] refuses, or an
    /// ID listed twice by one case.
    pub fn coverage<'c, I, L, S>(&self, cases: I) -> Result<Coverage<'_>, CoverageError>
    where
        I: IntoIterator<Item = (&'c str, Role, L)>,
        L: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut entries: Vec<RequirementCoverage<'_>> = self
            .list
            .iter()
            .map(|requirement| RequirementCoverage {
                requirement,
                client: Vec::new(),
                server: Vec::new(),
            })
            .collect();
        let mut problems = Vec::new();
        let mut without_covers = Vec::new();
        for (case, role, covers) in cases {
            let mut seen: Vec<String> = Vec::new();
            for req_id in covers {
                let req_id = req_id.as_ref();
                let mut problem = |message: String| {
                    problems.push(CaseProblem {
                        case: case.to_owned(),
                        requirement: req_id.to_owned(),
                        message,
                    });
                };
                if seen.iter().any(|s| s == req_id) {
                    problem("listed twice".to_owned());
                    continue;
                }
                seen.push(req_id.to_owned());
                match self.claim(req_id, role) {
                    Ok(_) => entries[self.index[req_id]]
                        .cases_mut(role)
                        .push(case.to_owned()),
                    Err(why) => problem(why),
                }
            }
            if seen.is_empty() {
                without_covers.push(case.to_owned());
            }
        }
        if !problems.is_empty() {
            return Err(CoverageError { problems });
        }
        for e in &mut entries {
            e.client.sort_unstable();
            e.server.sort_unstable();
        }
        without_covers.sort_unstable();
        Ok(Coverage {
            requirements: &self.path,
            entries,
            cases_without_covers: without_covers,
        })
    }
}

impl<'a> IntoIterator for &'a Requirements {
    type Item = &'a Requirement;
    type IntoIter = std::slice::Iter<'a, Requirement>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Where a requirement stands for one role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// At least one case of that role checks it.
    Covered,
    /// No case can check it (the file says why).
    Waived,
    /// It binds that role, no case checks it and it is not waived: a gap.
    Uncovered,
    /// It does not bind that role.
    NotApplicable,
}

impl Status {
    /// `covered`, `waived`, `uncovered` or `n/a`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Covered => "covered",
            Status::Waived => "waived",
            Status::Uncovered => "uncovered",
            Status::NotApplicable => "n/a",
        }
    }
}

/// One requirement and the cases that check it, per role.
#[derive(Clone, Debug)]
pub struct RequirementCoverage<'r> {
    /// The requirement.
    pub requirement: &'r Requirement,
    /// Client-role cases that check it, sorted.
    pub client: Vec<String>,
    /// Server-role cases that check it, sorted.
    pub server: Vec<String>,
}

impl RequirementCoverage<'_> {
    /// The cases of `role` that check it.
    pub fn cases(&self, role: Role) -> &[String] {
        match role {
            Role::Client => &self.client,
            Role::Server => &self.server,
        }
    }

    fn cases_mut(&mut self, role: Role) -> &mut Vec<String> {
        match role {
            Role::Client => &mut self.client,
            Role::Server => &mut self.server,
        }
    }

    /// Where it stands for `role`.
    pub fn status(&self, role: Role) -> Status {
        if !self.requirement.role.binds(role) {
            Status::NotApplicable
        } else if self.requirement.waived.is_some() {
            Status::Waived
        } else if self.cases(role).is_empty() {
            Status::Uncovered
        } else {
            Status::Covered
        }
    }
}

/// Counts for one role: every requirement that binds it is exactly one of covered, waived
/// or uncovered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Checked by at least one case.
    pub covered: usize,
    /// Waived with a reason.
    pub waived: usize,
    /// Gaps.
    pub uncovered: usize,
    /// Requirements that bind the role.
    pub total: usize,
}

impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} covered, {} waived, {} uncovered, of {}",
            self.covered, self.waived, self.uncovered, self.total
        )
    }
}

/// The coverage report: every requirement of the file, in file order, with the cases of
/// each role that check it. Reporters render it as they like: the `wisp-conformance
/// coverage` table and JSON (`wisp_harness::report::coverage`), and an HTML page. Per
/// entry, [`RequirementCoverage::status`] says where it stands for a role (covered,
/// waived, uncovered, not applicable); [`Coverage::totals`] counts them per role and
/// [`Coverage::uncovered`] lists the gaps.
#[derive(Clone, Debug)]
pub struct Coverage<'r> {
    /// The requirements file the map was built from.
    pub requirements: &'r Path,
    /// One entry per requirement, in file order.
    pub entries: Vec<RequirementCoverage<'r>>,
    /// Cases whose `covers` list is empty, sorted (none when the cases come from a
    /// directory the loader checked).
    pub cases_without_covers: Vec<String>,
}

impl<'r> Coverage<'r> {
    /// The entries with this status for `role`.
    pub fn with_status(
        &self,
        role: Role,
        status: Status,
    ) -> impl Iterator<Item = &RequirementCoverage<'r>> {
        self.entries
            .iter()
            .filter(move |e| e.status(role) == status)
    }

    /// The gaps for `role`: binding, not waived, checked by no case.
    pub fn uncovered(&self, role: Role) -> impl Iterator<Item = &RequirementCoverage<'r>> {
        self.with_status(role, Status::Uncovered)
    }

    /// The waived requirements that bind `role`.
    pub fn waived(&self, role: Role) -> impl Iterator<Item = &RequirementCoverage<'r>> {
        self.with_status(role, Status::Waived)
    }

    /// The counts for `role`.
    pub fn totals(&self, role: Role) -> Totals {
        let mut t = Totals::default();
        for e in &self.entries {
            match e.status(role) {
                Status::Covered => t.covered += 1,
                Status::Waived => t.waived += 1,
                Status::Uncovered => t.uncovered += 1,
                Status::NotApplicable => continue,
            }
            t.total += 1;
        }
        t
    }

    /// Whether every requirement is covered or waived for every role it binds.
    pub fn complete(&self) -> bool {
        [Role::Client, Role::Server]
            .into_iter()
            .all(|r| self.uncovered(r).next().is_none())
    }

    /// The entry of this requirement.
    pub fn get(&self, id: &str) -> Option<&RequirementCoverage<'r>> {
        self.entries.iter().find(|e| e.requirement.id == id)
    }
}

/// One unacceptable `covers` entry of one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseProblem {
    /// The case ID.
    pub case: String,
    /// The requirement ID it lists.
    pub requirement: String,
    /// What is wrong.
    pub message: String,
}

/// The cases' `covers` lists do not fit the requirements: every problem found.
#[derive(Clone, Debug)]
pub struct CoverageError {
    /// In the order the cases were given (never empty).
    pub problems: Vec<CaseProblem>,
}

impl fmt::Display for CoverageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}: covers {}: {}", p.case, p.requirement, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for CoverageError {}

/// Checks the shape of a requirement ID: at least three dotted segments of `[a-z0-9-]`
/// (no leading, trailing or doubled hyphen), the first being the source's prefix.
fn check_id(id: &str, spec: Spec) -> Result<(), String> {
    let hint = "use dotted lowercase segments of a-z, 0-9 and '-' like `v1.close.immediate`";
    let segments: Vec<&str> = id.split('.').collect();
    let well_formed = segments.iter().all(|s| {
        !s.is_empty()
            && !s.starts_with('-')
            && !s.ends_with('-')
            && !s.contains("--")
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    if !well_formed {
        return Err(format!("malformed requirement ID {id:?}: {hint}"));
    }
    if segments.len() < 3 {
        return Err(format!(
            "requirement ID {id:?} is too short: source, section and name at least, like `v1.close.immediate`"
        ));
    }
    if segments[0] != spec.id_prefix() {
        return Err(format!(
            "requirement ID {id:?} must start with `{}.` (its spec is {spec})",
            spec.id_prefix()
        ));
    }
    Ok(())
}
