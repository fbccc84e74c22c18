//! The loader: a directory of case files, or one file, into validated [`Case`]s.
//!
//! Loading a file takes two passes over its YAML. The first reads the header every case
//! has (title, spec, level, description, role, timeout) and decides the role; the second
//! parses the whole file strictly into that role's struct ([`ClientCase`] or
//! [`ServerCase`]), where every struct denies unknown fields, so a key of the other role
//! is an error with its line and column. The case ID comes from the path ([`case_id`]).
//!
//! A cases directory holds cases only in topic folders (`<dir>/<topic>/NAME.yaml`); the
//! one file at its root is the requirements file ([`REQUIREMENTS_FILE`], see
//! [`crate::requirements`]), which is never read as a case. When the directory has one,
//! [`load_dir`] checks every case's `covers:` list against it: a case without the list,
//! an unknown requirement ID, or one that does not bind the case's role is a load error.
//! Loading one file checks only the list's form (not empty, no ID twice).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_saphyr::{Location, Spanned};

use crate::requirements::Requirements;
use crate::values::Dur;
use crate::{Case, ClientCase, Level, Meta, Placeholders, Role, ServerCase, validate};

/// The topic folder of server-role cases (`cases/server/<family>/NAME.yaml`).
pub const SERVER_TOPIC: &str = "server";

/// The requirements file at the root of a cases directory (`cases/requirements.yaml`):
/// the one YAML file there, and never a case.
pub const REQUIREMENTS_FILE: &str = "requirements.yaml";

/// A case file that could not be loaded: file, line, column and what is wrong.
#[derive(Clone, Debug)]
pub struct LoadError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line (0 when unknown).
    pub line: u64,
    /// 1-based column (0 when unknown).
    pub column: u64,
    /// The message.
    pub message: String,
    /// A source snippet, when available.
    pub snippet: Option<String>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )?;
        if let Some(s) = &self.snippet {
            write!(f, "\n{s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

impl LoadError {
    /// An error at a line and column of `source`.
    pub(crate) fn at_line(
        path: &Path,
        line: u64,
        column: u64,
        message: impl Into<String>,
        source: &str,
    ) -> Self {
        Self {
            path: path.to_owned(),
            line,
            column,
            message: message.into(),
            snippet: snippet(source, line, column),
        }
    }

    /// An error at a parsed location of `source`.
    pub(crate) fn at(path: &Path, loc: Location, message: impl Into<String>, source: &str) -> Self {
        Self::at_line(path, loc.line(), loc.column(), message, source)
    }

    /// An error about the file as a whole.
    pub(crate) fn whole_file(path: &Path, message: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            line: 0,
            column: 0,
            message: message.into(),
            snippet: None,
        }
    }
}

fn snippet(source: &str, line: u64, column: u64) -> Option<String> {
    let idx = usize::try_from(line).ok()?.checked_sub(1)?;
    let text = source.lines().nth(idx)?;
    let pad = " ".repeat(usize::try_from(column).unwrap_or(1).saturating_sub(1));
    Some(format!("{line:>4} | {text}\n     | {pad}^"))
}

/// The ID of the case file at `rel` (its path relative to the cases directory): the
/// path with `/` replaced by `.` and the `.yaml` (or `.yml`) extension dropped, e.g.
/// `auth/cert.valid-signature.yaml` → `auth.cert.valid-signature`. Every segment is
/// lowercase letters, digits, `-` and `_`; a case lives in a topic folder.
///
/// # Errors
///
/// A path outside a topic folder, without the extension, or with a character an ID
/// cannot hold.
pub fn case_id(rel: &Path) -> Result<String, String> {
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let Some((file, dirs)) = parts.split_last() else {
        return Err("an empty case path".to_owned());
    };
    if dirs.is_empty() {
        if file == REQUIREMENTS_FILE {
            return Err(format!(
                "{REQUIREMENTS_FILE} at the root of the cases directory is the requirements file, not a case"
            ));
        }
        return Err("case files live in a topic folder: cases/<topic>/NAME.yaml".to_owned());
    }
    let stem = file
        .strip_suffix(".yaml")
        .or_else(|| file.strip_suffix(".yml"))
        .ok_or_else(|| format!("{file:?} is not a .yaml file"))?;
    let id = format!("{}.{stem}", dirs.join("."));
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    };
    if !id.split('.').all(segment_ok) {
        return Err(format!(
            "the path gives the case ID {id:?}: name case folders and files with dotted lowercase segments (letters, digits, `-`, `_`), like cases/handshake/downgrade.continue-first.yaml"
        ));
    }
    Ok(id)
}

/// Loads every `*.yaml` under `dir` (recursively, sorted) but the requirements file at its
/// root. Returns the good cases and the errors; an ID used by two files is an error for the
/// second. When `dir` has a requirements file ([`REQUIREMENTS_FILE`]), its problems are
/// errors too, and every case's `covers:` is checked against it (a case that fails the
/// check is an error, not a case). Placeholders get stand-in values
/// ([`Placeholders::default`]).
pub fn load_dir(dir: &Path) -> (Vec<Case>, Vec<LoadError>) {
    load_dir_with(dir, &Placeholders::default())
}

/// [`load_dir`] with these placeholder values.
pub fn load_dir_with(dir: &Path, placeholders: &Placeholders) -> (Vec<Case>, Vec<LoadError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    collect_yaml(dir, &mut files, &mut errors);
    let requirements_path = dir.join(REQUIREMENTS_FILE);
    files.retain(|f| *f != requirements_path);
    files.sort();
    let requirements = if requirements_path.is_file() {
        match Requirements::load(&requirements_path) {
            Ok(r) => Some(r),
            Err(e) => {
                errors.extend(e);
                None
            }
        }
    } else {
        None
    };
    let mut cases: Vec<Case> = Vec::new();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for file in files {
        let loaded = load_case_with(dir, &file, placeholders).and_then(|case| {
            if let Some(r) = &requirements {
                r.check_case(&case)?;
            }
            Ok(case)
        });
        match loaded {
            Ok(case) => {
                if let Some(first) = seen.get(case.id()) {
                    errors.push(LoadError::whole_file(
                        &file,
                        format!(
                            "duplicate case ID {:?}: already used by {}",
                            case.id(),
                            first.display()
                        ),
                    ));
                    continue;
                }
                seen.insert(case.id().to_owned(), file.clone());
                cases.push(case);
            }
            Err(e) => errors.push(e),
        }
    }
    (cases, errors)
}

fn collect_yaml(dir: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<LoadError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(LoadError::whole_file(
                dir,
                format!("cannot read directory: {e}"),
            ));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_yaml(&path, files, errors);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
}

/// Loads and validates one case file. `cases_root` is the cases directory: the ID is the
/// path under it, and key paths are relative to it.
pub fn load_case(cases_root: &Path, path: &Path) -> Result<Case, LoadError> {
    load_case_with(cases_root, path, &Placeholders::default())
}

/// [`load_case`] with these placeholder values.
pub fn load_case_with(
    cases_root: &Path,
    path: &Path,
    placeholders: &Placeholders,
) -> Result<Case, LoadError> {
    let source = std::fs::read_to_string(path)
        .map_err(|e| LoadError::whole_file(path, format!("cannot read: {e}")))?;
    load_case_str_with(cases_root, path, &source, placeholders)
}

/// Like [`load_case`], from a string (the path gives the ID and the role's folder, and
/// is used for messages).
pub fn load_case_str(cases_root: &Path, path: &Path, source: &str) -> Result<Case, LoadError> {
    load_case_str_with(cases_root, path, source, &Placeholders::default())
}

/// The header every case file has, read in the first pass (other keys are passed over
/// here and checked by the role's strict pass). `role_case!` in `lib.rs` names the same
/// keys for the second pass.
#[derive(Deserialize)]
struct Header {
    /// Gone from the language: the ID comes from the path. Read only to say so.
    #[serde(default)]
    id: Option<Spanned<String>>,
    #[serde(default)]
    role: Option<Spanned<Role>>,
    title: String,
    spec: String,
    level: Level,
    description: String,
    #[serde(default)]
    timeout: Option<Dur>,
    #[serde(default)]
    covers: Option<Spanned<Vec<Spanned<String>>>>,
}

/// [`load_case_str`] with these placeholder values: every `${NAME.host}` / `${NAME.port}`
/// in the text is replaced before the YAML is parsed.
pub fn load_case_str_with(
    cases_root: &Path,
    path: &Path,
    original: &str,
    placeholders: &Placeholders,
) -> Result<Case, LoadError> {
    let substituted = placeholders
        .substitute(original)
        .map_err(|(line, column, message)| {
            LoadError::at_line(path, line, column, message, original)
        })?;
    let source = substituted.as_str();
    let rel = path.strip_prefix(cases_root).unwrap_or(path);
    let rel_path = rel.to_string_lossy().replace('\\', "/");
    let id = case_id(rel).map_err(|m| LoadError::whole_file(path, m))?;
    let header: Header = parse(path, source)?;
    if let Some(given) = &header.id {
        let rename = if given.value == id {
            String::new()
        } else {
            format!(
                " (this file says {:?}: to keep that ID, rename the file to match it)",
                given.value
            )
        };
        return Err(LoadError::at(
            path,
            given.referenced,
            format!(
                "`id:` is gone: a case's ID is its path, here {id:?}; delete this line{rename}"
            ),
            source,
        ));
    }
    let in_server_topic = rel
        .components()
        .next()
        .is_some_and(|c| c.as_os_str() == SERVER_TOPIC);
    let role = header.role.as_ref().map_or(Role::Client, |r| r.value);
    match (role, in_server_topic) {
        (Role::Server, false) => {
            let loc = header
                .role
                .as_ref()
                .map_or(Location::UNKNOWN, |r| r.referenced);
            return Err(LoadError::at(
                path,
                loc,
                format!("`role: server` cases live under cases/{SERVER_TOPIC}/<family>/"),
                source,
            ));
        }
        (Role::Client, true) => {
            return Err(LoadError::whole_file(
                path,
                format!("cases under cases/{SERVER_TOPIC}/ need `role: server`"),
            ));
        }
        (Role::Server, true) if rel.components().count() < 3 => {
            return Err(LoadError::whole_file(
                path,
                format!(
                    "server-role cases live in a family folder: cases/{SERVER_TOPIC}/<family>/NAME.yaml"
                ),
            ));
        }
        _ => {}
    }
    let group = rel
        .parent()
        .map(|p| {
            p.components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(".")
        })
        .unwrap_or_default();
    let covers = match header.covers {
        None => Vec::new(),
        Some(list) => covers_list(path, list, source)?,
    };
    let meta = Meta {
        id,
        path: path.to_owned(),
        rel_path,
        group,
        source: original.to_owned(),
        title: header.title,
        spec: header.spec,
        level: header.level,
        description: header.description,
        timeout: header.timeout,
        covers,
    };
    let check = validate::Checker::new(path, source);
    match role {
        Role::Client => {
            let mut case: ClientCase = parse(path, source)?;
            case.meta = meta;
            validate::client_case(&mut case, cases_root, &check)?;
            Ok(Case::Client(case))
        }
        Role::Server => {
            let mut case: ServerCase = parse(path, source)?;
            case.meta = meta;
            validate::server_case(&case, &check)?;
            Ok(Case::Server(case))
        }
    }
}

/// The form of a `covers:` list: at least one requirement ID, each given once (IDs are
/// trimmed). Whether the requirements exist is [`Requirements::check_case`]'s business.
fn covers_list(
    path: &Path,
    list: Spanned<Vec<Spanned<String>>>,
    source: &str,
) -> Result<Vec<Spanned<String>>, LoadError> {
    if list.value.is_empty() {
        return Err(LoadError::at(
            path,
            list.referenced,
            "`covers` is empty: name the requirements this case checks (IDs from cases/requirements.yaml)",
            source,
        ));
    }
    let mut out: Vec<Spanned<String>> = Vec::with_capacity(list.value.len());
    for mut item in list.value {
        item.value = item.value.trim().to_owned();
        if item.value.is_empty() {
            return Err(LoadError::at(
                path,
                item.referenced,
                "`covers` lists an empty requirement ID",
                source,
            ));
        }
        if out.iter().any(|c| c.value == item.value) {
            return Err(LoadError::at(
                path,
                item.referenced,
                format!("`covers` lists {:?} twice", item.value),
                source,
            ));
        }
        out.push(item);
    }
    Ok(out)
}

/// Parses YAML into `T`, turning a parse error into a located [`LoadError`].
pub(crate) fn parse<T: DeserializeOwned>(path: &Path, source: &str) -> Result<T, LoadError> {
    serde_saphyr::from_str(source).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        let rendered = e.to_string();
        let message = rendered
            .lines()
            .next()
            .unwrap_or("invalid YAML")
            .trim_start_matches("error: ")
            .to_owned();
        let message = match message.split_once(": ") {
            Some((head, rest)) if head.starts_with("line ") => rest.to_owned(),
            _ => message,
        };
        LoadError::at_line(path, line, column, message, source)
    })
}
