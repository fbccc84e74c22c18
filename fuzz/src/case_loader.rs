//! Target `case_loader`: the YAML case loader (`wisp_cases::load_case_str_with`), for both
//! roles, and the requirements file parser (`Requirements::parse`).
//!
//! Input: one selector byte, then the YAML text (inputs that are not UTF-8 are skipped:
//! the loaders take a `&str`). The selector picks the path the text is loaded as (a
//! client topic, a server family, a file outside any topic, or the requirements file),
//! because the path decides the case's ID and role. Key paths resolve against the real
//! `cases/` directory, so cases naming `keys/alice.pem` load their keys.
//!
//! A loaded case then goes through what the runners read first: its timeout and group,
//! each requirement it claims to cover (against the real `cases/requirements.yaml`),
//! `Script::from_case`, the description of every pattern, and every `times` count.

use std::path::PathBuf;
use std::sync::OnceLock;

// Import paths (the only lines to update when the crates move).
use wisp_cases::client::ServerStep;
use wisp_cases::requirements::Requirements;
use wisp_cases::server::ClientStep;
use wisp_cases::{Case, Placeholders, REQUIREMENTS_FILE, load_case_str_with};
use wisp_mock_server::pattern::describe;
use wisp_mock_server::replay::Script;

/// The folders (relative to `cases/`) a case is loaded from, by selector; the selector
/// one past the end parses the text as the requirements file.
pub const FOLDERS: &[&str] = &[
    "auth",
    "extensions",
    "flow",
    "handshake",
    "robustness",
    "streams",
    "server/auth",
    "server/close",
    "server/flow",
    "server/handshake",
    "server/motd",
    "server/robustness",
    "server/tcp",
    "server/udp",
    "",
];

/// The selector byte for `folder` (for corpus generators).
pub fn selector(folder: &str) -> Option<u8> {
    FOLDERS
        .iter()
        .position(|f| *f == folder)
        .and_then(|i| u8::try_from(i).ok())
}

/// The selector byte that parses the text as the requirements file.
pub fn requirements_selector() -> u8 {
    u8::try_from(FOLDERS.len()).unwrap_or(u8::MAX)
}

/// The real `cases/requirements.yaml`, parsed once.
fn requirements() -> &'static Requirements {
    static REQUIREMENTS: OnceLock<Requirements> = OnceLock::new();
    REQUIREMENTS.get_or_init(|| {
        Requirements::load(&crate::cases_dir().join(REQUIREMENTS_FILE))
            .expect("cases/requirements.yaml loads")
    })
}

/// The stand-in placeholder values a case loads with, made once (building them formats
/// and inserts two strings per target name: about a hundredth of a run).
fn placeholders() -> &'static Placeholders {
    static PLACEHOLDERS: OnceLock<Placeholders> = OnceLock::new();
    PLACEHOLDERS.get_or_init(Placeholders::default)
}

/// Loads the case (or requirements file) in `data`.
pub fn run(data: &[u8]) {
    let Some((&sel, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let root = crate::cases_dir();
    let sel = usize::from(sel) % (FOLDERS.len() + 1);
    let Some(folder) = FOLDERS.get(sel) else {
        let path = root.join(REQUIREMENTS_FILE);
        if let Err(errors) = Requirements::parse(&path, text) {
            let _ = errors.iter().map(ToString::to_string).count();
        }
        return;
    };
    let path: PathBuf = root.join(folder).join("fuzz.yaml");
    let case = match load_case_str_with(&root, &path, text, placeholders()) {
        Ok(case) => case,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let meta = case.meta();
    let _ = (case.timeout(), case.id(), &meta.group);
    for id in meta.covered_ids() {
        let _ = requirements().claim(id, case.role());
    }
    match &case {
        Case::Client(c) => {
            let _ = Script::from_case(c);
            for step in &c.server {
                if let ServerStep::Expect(p) = &step.value {
                    let _ = describe(p);
                }
            }
        }
        Case::Server(s) => {
            let _ = s.family();
            for step in &s.script {
                match &step.value {
                    ClientStep::Expect(p) => {
                        let _ = describe(p);
                    }
                    ClientStep::ExpectNone(n) => {
                        let _ = describe(&n.pattern);
                    }
                    ClientStep::Send(p) => {
                        if let Some(t) = p.times {
                            let _ = (t.count(0), t.count(u32::MAX), t.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}
