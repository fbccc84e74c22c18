//! `--spawn "CMD {port}"`: the harness starts the server under test itself, on a free
//! port, keeps the tail of its stderr for the reports, and restarts it after a crash or a
//! freeze ([`super::health`]).
//!
//! The command runs under `sh -c` (so it may use shell syntax) in a process group of its
//! own, with `{port}` replaced by the port chosen; stopping it kills the whole group, so a
//! wrapper (`npx`, `python -m`) does not leave the real server behind.

use std::collections::VecDeque;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Lines of the server's stderr kept (the oldest are dropped).
const STDERR_LINES: usize = 200;
/// How many of them a case report shows.
pub(crate) const STDERR_TAIL: usize = 20;
/// How long a stopped server has to exit.
const STOP_BOUND: Duration = Duration::from_secs(5);

/// The placeholder of the port in `--spawn` and in the URL.
pub const PORT_PLACEHOLDER: &str = "{port}";

/// A free TCP port on loopback (free a moment ago: the server binds it next).
pub(crate) fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("--spawn: cannot find a free port: {e}"))
}

/// The server process the harness started.
pub(crate) struct Spawned {
    command: String,
    child: Child,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// The task reading stderr (it ends at EOF).
    reader: Option<tokio::task::JoinHandle<()>>,
    /// How many times it was started.
    pub(crate) starts: usize,
}

impl Spawned {
    /// Starts `command` (`{port}` already replaced).
    pub(crate) fn start(command: &str) -> Result<Self, String> {
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let (child, reader) = launch(command, &stderr)?;
        Ok(Self {
            command: command.to_owned(),
            child,
            stderr,
            reader,
            starts: 1,
        })
    }

    /// Whether the process has exited, and how.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `bound` for the process to exit (a crashing server may need a moment).
    pub(crate) async fn wait_exit(&mut self, bound: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(bound, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Once the process has exited: waits up to `bound` for its last stderr lines.
    pub(crate) async fn drain_stderr(&mut self, bound: Duration) {
        if let Some(reader) = self.reader.as_mut() {
            let _ = tokio::time::timeout(bound, reader).await;
        }
    }

    /// The last `n` lines the server wrote on stderr.
    pub(crate) fn stderr_tail(&self, n: usize) -> Vec<String> {
        let lines = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        lines
            .iter()
            .skip(lines.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    /// Kills the process group and waits (bounded) for the process to end.
    pub(crate) async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            // The whole group: the shell, and whatever it started.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
        }
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(STOP_BOUND, self.child.wait()).await;
    }

    /// Stops the process and starts the command again (same port).
    pub(crate) async fn restart(&mut self) -> Result<(), String> {
        self.stop().await;
        self.push_marker(format!(
            "--- restarted by wisp-conformance (start {}) ---",
            self.starts + 1
        ));
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
        (self.child, self.reader) = launch(&self.command, &self.stderr)?;
        self.starts += 1;
        Ok(())
    }

    fn push_marker(&self, line: String) {
        push(&self.stderr, line);
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // kill_on_drop kills the shell; the group goes with a best-effort kill.
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn push(lines: &Mutex<VecDeque<String>>, line: String) {
    let mut lines = lines.lock().unwrap_or_else(|e| e.into_inner());
    if lines.len() == STDERR_LINES {
        lines.pop_front();
    }
    lines.push_back(line);
}

type Launched = (Child, Option<tokio::task::JoinHandle<()>>);

fn launch(command: &str, stderr: &Arc<Mutex<VecDeque<String>>>) -> Result<Launched, String> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("--spawn: cannot start `sh -c {command:?}`: {e}"))?;
    let reader = child.stderr.take().map(|err| {
        let lines = stderr.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(err).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                push(&lines, line);
            }
        })
    });
    Ok((child, reader))
}
