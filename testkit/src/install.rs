//! Installation of the pinned servers into `<repo>/.tools/`.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::workspace_root;

/// Files whose contents decide the marker name. Must match `PIN_FILES` in
/// `scripts/install-servers.sh` (same files, same order).
const PIN_FILES: [&str; 4] = [
    "scripts/install-servers.sh",
    "tools/wisp-python/requirements.txt",
    "tools/wisp-js/package.json",
    "tools/wisp-js/package-lock.json",
];

/// Files that must exist besides the marker. Must match `ENTRY_POINTS` in the
/// script.
pub(crate) const PYTHON_BIN: &str = ".tools/venv/bin/python";
pub(crate) const WISP_JS_CLI: &str =
    ".tools/wisp-js/node_modules/@mercuryworkshop/wisp-js/src/bin/server_cli.mjs";

/// Upper bound for waiting on the lock plus running the script.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const POLL: Duration = Duration::from_millis(100);

/// Set once this process has seen a complete installation.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Makes sure the pinned servers are installed under `<repo>/.tools/`.
///
/// If the marker file `.tools/installed-<hash of the pin files>` (or one of
/// the server entry points) is missing, runs `scripts/install-servers.sh`
/// while holding an exclusive lock on `.tools/.install.lock`, so that test
/// binaries running concurrently install only once. Waiting for the lock and
/// running the script are together bounded by 10 minutes.
///
/// With the environment variable `WISP_TESTKIT_NO_INSTALL=1` it only checks
/// and returns an error when the installation is missing or outdated.
///
/// # Errors
///
/// A description of what failed, including the script's output when it ran
/// and failed.
pub fn ensure_installed() -> Result<(), String> {
    if INSTALLED.load(Ordering::Acquire) {
        return Ok(());
    }
    let root = workspace_root();
    let marker = marker_path(&root)?;
    if is_installed(&root, &marker) {
        INSTALLED.store(true, Ordering::Release);
        return Ok(());
    }
    if std::env::var_os("WISP_TESTKIT_NO_INSTALL").is_some_and(|v| v == "1") {
        return Err(format!(
            "the pinned Wisp servers are not installed ({} is missing) and \
             WISP_TESTKIT_NO_INSTALL=1 forbids installing: run scripts/install-servers.sh",
            marker.display()
        ));
    }

    let deadline = Instant::now() + INSTALL_TIMEOUT;
    let tools = root.join(".tools");
    fs::create_dir_all(&tools).map_err(|e| format!("creating {}: {e}", tools.display()))?;
    let lock_path = tools.join(".install.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("opening {}: {e}", lock_path.display()))?;
    acquire(&lock, &lock_path, deadline)?;

    // Another process may have installed while we waited for the lock.
    let result = if is_installed(&root, &marker) {
        Ok(())
    } else {
        run_script(&root, deadline).and_then(|()| {
            if is_installed(&root, &marker) {
                Ok(())
            } else {
                Err(format!(
                    "scripts/install-servers.sh succeeded but {} is still missing",
                    marker.display()
                ))
            }
        })
    };
    // Closing the file releases the lock; unlock explicitly all the same.
    let _ = lock.unlock();
    drop(lock);
    if result.is_ok() {
        INSTALLED.store(true, Ordering::Release);
    }
    result
}

/// `.tools/installed-<first 16 hex digits of sha256(concatenated pin files)>`,
/// computed exactly as the script does.
fn marker_path(root: &Path) -> Result<PathBuf, String> {
    let mut hasher = Sha256::new();
    for file in PIN_FILES {
        let path = root.join(file);
        let bytes = fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        hasher.update(&bytes);
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(root
        .join(".tools")
        .join(format!("installed-{}", &hex[..16])))
}

fn is_installed(root: &Path, marker: &Path) -> bool {
    marker.is_file() && root.join(PYTHON_BIN).exists() && root.join(WISP_JS_CLI).exists()
}

fn acquire(lock: &File, lock_path: &Path, deadline: Instant) -> Result<(), String> {
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) => {
                if Instant::now() >= deadline {
                    return Err(format!(
                        "timed out waiting for the install lock {}",
                        lock_path.display()
                    ));
                }
                std::thread::sleep(POLL);
            }
            Err(TryLockError::Error(e)) => {
                return Err(format!("locking {}: {e}", lock_path.display()));
            }
        }
    }
}

/// Runs the install script in its own process group, killing the group if
/// the deadline passes. Its output goes to `.tools/install-servers.out`.
fn run_script(root: &Path, deadline: Instant) -> Result<(), String> {
    use std::os::unix::process::CommandExt;

    let script = root.join("scripts/install-servers.sh");
    let out_path = root.join(".tools/install-servers.out");
    let out =
        File::create(&out_path).map_err(|e| format!("creating {}: {e}", out_path.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cloning {}: {e}", out_path.display()))?;
    let mut child = Command::new("bash")
        .arg(&script)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", script.display()))?;
    let output = || fs::read_to_string(&out_path).unwrap_or_default();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(format!(
                    "{} failed ({status}):\n{}",
                    script.display(),
                    output()
                ));
            }
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for {}: {e}", script.display())),
        }
        if Instant::now() >= deadline {
            crate::server::kill_process_group(child.id());
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{} did not finish within {INSTALL_TIMEOUT:?}:\n{}",
                script.display(),
                output()
            ));
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_name_has_sixteen_hex_digits() {
        let marker = marker_path(&workspace_root()).unwrap();
        let name = marker.file_name().unwrap().to_str().unwrap();
        let hash = name.strip_prefix("installed-").unwrap();
        assert_eq!(hash.len(), 16);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
    }

    #[test]
    fn pin_files_match_the_script() {
        let script = fs::read_to_string(workspace_root().join(PIN_FILES[0])).unwrap();
        let block = script
            .split_once("PIN_FILES=(\n")
            .and_then(|(_, rest)| rest.split_once("\n)"))
            .map(|(block, _)| block)
            .expect("PIN_FILES=( ... ) block in the script");
        let listed: Vec<&str> = block.lines().map(str::trim).collect();
        assert_eq!(listed, PIN_FILES);
        for entry in [PYTHON_BIN, WISP_JS_CLI] {
            assert!(script.contains(&format!("  {entry}\n")), "{entry}");
        }
    }

    #[test]
    fn marker_hash_matches_the_script() {
        // The script hashes with `cat PIN_FILES | sha256sum | cut -c1-16`.
        let root = workspace_root();
        let output = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "cat {} | sha256sum | cut -c1-16",
                PIN_FILES.join(" ")
            ))
            .current_dir(&root)
            .output()
            .unwrap();
        assert!(output.status.success());
        let expected = String::from_utf8(output.stdout).unwrap();
        let marker = marker_path(&root).unwrap();
        assert_eq!(
            marker.file_name().unwrap().to_str().unwrap(),
            format!("installed-{}", expected.trim())
        );
    }
}
