//! Target `case_loader`: the YAML case loader (`load_case_str_with`), for both roles.
//!
//! Input: one selector byte, then the YAML text (inputs that are not UTF-8 are skipped:
//! the loader takes a `&str`). The selector picks the path the text is loaded as (a
//! client topic, a server family, or a file outside any topic), because the topic decides
//! the role and the ID prefix the loader demands. Key paths resolve against the real
//! `cases/` directory, so cases naming `keys/alice.pem` load their keys.
//!
//! A loaded case then goes through what the runners read first: its timeout and family,
//! `Script::from_case`, the description of every pattern, and every `times` count.

use std::path::PathBuf;

// Import paths (the only lines to update when the crates move).
use wisp_mock_server::client_script::{ClientStep, Placeholders};
use wisp_mock_server::pattern::describe;
use wisp_mock_server::replay::Script;
use wisp_mock_server::scenario::{ServerStep, load_case_str_with};

/// The folders (relative to `cases/`) a case is loaded from, by selector.
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

/// Loads the case in `data`.
pub fn run(data: &[u8]) {
    let Some((&sel, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let root = crate::cases_dir();
    let folder = FOLDERS[usize::from(sel) % FOLDERS.len()];
    let path: PathBuf = root.join(folder).join("fuzz.yaml");
    let case = match load_case_str_with(&root, &path, text, &Placeholders::default()) {
        Ok(case) => case,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = (case.timeout(), case.family(), case.is_server_role());
    let _ = Script::from_case(&case);
    for step in &case.file.server {
        if let ServerStep::Expect(p) = &step.value {
            let _ = describe(p);
        }
    }
    for step in &case.file.script {
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
