//! Embeds the case files, `requirements.yaml` and the test keys (everything under this
//! crate's directory but `src/`, `tests/` and `target/`, with the extensions the loader
//! reads) into the library as `wisp_cases::embedded::FILES`, so a tool installed away
//! from the checkout still has them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The files embedded: what the loader reads (cases, requirements, keys).
const EXTENSIONS: &[&str] = &["yaml", "pem"];
/// Directories of the crate that hold no case data.
const SKIP: &[&str] = &["src", "tests", "target"];

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e))
        {
            out.push(path);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("the crate directory")
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if SKIP.contains(&name) || name.starts_with('.') {
                continue;
            }
            println!("cargo::rerun-if-changed={}", path.display());
            collect(&path, &mut files);
        } else if path.extension().and_then(|e| e.to_str()) == Some("yaml") {
            println!("cargo::rerun-if-changed={}", path.display());
            files.push(path);
        }
    }
    files.sort();
    let mut code = String::from(
        "/// Every embedded file: (path relative to the cases directory, contents).\npub static FILES: &[(&str, &[u8])] = &[\n",
    );
    for f in &files {
        let rel = f
            .strip_prefix(&root)
            .expect("under the crate")
            .to_string_lossy()
            .replace('\\', "/");
        let _ = writeln!(
            code,
            "    ({rel:?}, include_bytes!({:?})),",
            f.display().to_string()
        );
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("embedded.rs");
    std::fs::write(out, code).expect("write embedded.rs");
}
