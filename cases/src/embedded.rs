//! The case files, `requirements.yaml` and the test keys, embedded in the library at build
//! time (`build.rs`), so a tool installed away from the checkout (`cargo install`, a copied
//! binary) still runs every case. The loader reads directories, so [`extract`] writes the
//! files into one; [`cases_dir`] does that once per content, under the system's temporary
//! directory.

use std::io;
use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// A short fingerprint of the embedded files (FNV-1a over paths and contents), so each
/// build's files get a directory of their own.
pub fn fingerprint() -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (path, bytes) in FILES {
        for b in path
            .as_bytes()
            .iter()
            .chain([0u8].iter())
            .chain(bytes.iter())
        {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// Writes every embedded file under `dir` (creating directories). A file already there
/// with the same contents is left alone; others are written to a temporary name and
/// renamed, so concurrent runs never read a half-written file.
///
/// # Errors
///
/// A directory or file that cannot be written.
pub fn extract(dir: &Path) -> io::Result<()> {
    for (rel, bytes) in FILES {
        let path = dir.join(rel);
        if std::fs::read(&path).is_ok_and(|b| b == *bytes) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(())
}

/// A directory holding the embedded files:
/// `<temp dir>/wisp-conformance-cases-<version>-<fingerprint>`, written on first use.
///
/// # Errors
///
/// When the files cannot be written there.
pub fn cases_dir() -> io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "wisp-conformance-cases-{}-{}",
        env!("CARGO_PKG_VERSION"),
        fingerprint()
    ));
    extract(&dir)?;
    Ok(dir)
}
