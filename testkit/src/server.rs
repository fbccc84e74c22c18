//! Starting and stopping the pinned third-party Wisp servers.

use std::fmt;
use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};

use crate::install::{PYTHON_BIN, WISP_JS_CLI};
use crate::{ensure_installed, workspace_root};

/// Total time a server gets to answer its first HTTP request.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between two readiness probes.
const READY_POLL: Duration = Duration::from_millis(20);
/// Upper bound for one readiness probe (connect, request, first bytes).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How many free ports are tried when a server dies while starting (for
/// example because another process took the port in between).
const START_ATTEMPTS: usize = 3;
/// How much of the log goes into error messages.
const LOG_TAIL_BYTES: usize = 8 * 1024;

/// Runs the real command (`"$@"`) with its standard input on `/dev/null`, and
/// beside it a watchdog that reads our end of a pipe on fd 3 and kills the
/// whole process group when that pipe closes: when the [`RealServer`] is
/// dropped, or when the test process exits in any way (even SIGKILL), so no
/// server outlives its test binary.
const WATCHDOG_WRAPPER: &str =
    r#"exec 3<&0; (cat <&3 >/dev/null 2>&1; kill -KILL 0) & exec "$@" 3<&- </dev/null"#;

/// Which pinned third-party Wisp server to run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// wisp-server-python (PyPI `wisp-python` 0.9.0): Wisp v1 only; TCP and
    /// UDP streams; started with `--allow-loopback --threads 1` so that it may
    /// connect to the loopback targets of this crate.
    WispPython,
    /// wisp-js (npm `@mercuryworkshop/wisp-js` 0.5.0): Wisp v1, and v2 (draft
    /// 6 order) when the WebSocket upgrade carries `Sec-WebSocket-Protocol`;
    /// started with `{"allow_loopback_ips": true}`.
    WispJs {
        /// Message of the day, sent in the v2 INFO packet (`wisp_motd`).
        motd: Option<String>,
    },
}

impl ServerKind {
    /// A short name for logs and messages: `wisp-python` or `wisp-js`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::WispPython => "wisp-python",
            Self::WispJs { .. } => "wisp-js",
        }
    }

    /// The program and arguments that start this server on `port`.
    fn command_line(&self, root: &Path, port: u16) -> (PathBuf, Vec<String>) {
        let port = port.to_string();
        match self {
            Self::WispPython => (
                root.join(PYTHON_BIN),
                [
                    "-m",
                    "wisp.server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port,
                    "--allow-loopback",
                    "--threads",
                    "1",
                ]
                .map(String::from)
                .to_vec(),
            ),
            Self::WispJs { motd } => {
                let mut options = String::from(r#"{"allow_loopback_ips":true"#);
                if let Some(motd) = motd {
                    options.push_str(r#","wisp_motd":"#);
                    options.push_str(&json_string(motd));
                }
                options.push('}');
                (
                    PathBuf::from("node"),
                    vec![
                        root.join(WISP_JS_CLI).display().to_string(),
                        "--host".into(),
                        "127.0.0.1".into(),
                        "--port".into(),
                        port,
                        "-O".into(),
                        options,
                    ],
                )
            }
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A running third-party Wisp server on `127.0.0.1`.
///
/// The process (and any worker it forked) runs in its own process group,
/// which is killed with SIGKILL when this value is dropped. Its standard
/// output and error go to a log file under the OS temporary directory, which
/// is removed on drop unless the thread is panicking (a failing test) or
/// `WISP_TESTKIT_KEEP_LOGS=1` is set.
#[derive(Debug)]
pub struct RealServer {
    kind: ServerKind,
    addr: SocketAddr,
    child: Child,
    pgid: u32,
    log_path: PathBuf,
}

enum StartError {
    /// The process exited before it was ready: worth another port.
    Died(String),
    /// Anything else.
    Fatal(String),
}

impl RealServer {
    /// Installs the pinned servers if needed (see [`ensure_installed`]),
    /// starts `kind` on a free loopback port and waits (at most 20 s) until it
    /// answers an HTTP request on that port.
    ///
    /// # Errors
    ///
    /// A description of the failure, with the tail of the server's log when
    /// the server died or never became ready.
    pub async fn start(kind: ServerKind) -> Result<RealServer, String> {
        tokio::task::spawn_blocking(ensure_installed)
            .await
            .map_err(|e| format!("installing the servers panicked: {e}"))??;
        let root = workspace_root();
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            match Self::start_on(&kind, &root, port).await {
                Ok(server) => return Ok(server),
                Err(StartError::Died(message)) => failures.push(message),
                Err(StartError::Fatal(message)) => return Err(message),
            }
        }
        Err(failures.join("\n\n"))
    }

    async fn start_on(kind: &ServerKind, root: &Path, port: u16) -> Result<Self, StartError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let log_path = log_path(kind, port).map_err(StartError::Fatal)?;
        let log = File::create(&log_path)
            .map_err(|e| StartError::Fatal(format!("creating {}: {e}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(|e| StartError::Fatal(format!("cloning {}: {e}", log_path.display())))?;
        let (program, args) = kind.command_line(root, port);
        let child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG_WRAPPER)
            .arg("wisp-testkit-server")
            .arg(&program)
            .args(&args)
            .current_dir(root)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                StartError::Fatal(format!("starting {kind} ({}): {e}", program.display()))
            })?;
        let Some(pgid) = child.id() else {
            return Err(StartError::Fatal(format!("{kind} exited at once")));
        };
        let mut server = RealServer {
            kind: kind.clone(),
            addr,
            child,
            pgid,
            log_path,
        };
        server.wait_ready().await.map(|()| server)
    }

    /// Polls until the server answers HTTP, it exits, or the time is up.
    async fn wait_ready(&mut self) -> Result<(), StartError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let command = {
            let (program, args) = self.kind.command_line(&workspace_root(), self.addr.port());
            format!("{} {}", program.display(), args.join(" "))
        };
        loop {
            if let Some(status) = self.exit_status() {
                return Err(StartError::Died(format!(
                    "{} exited ({status}) before it was ready; command: {}\nlog {}:\n{}",
                    self.kind,
                    command,
                    self.log_path.display(),
                    self.log_tail()
                )));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(StartError::Fatal(format!(
                    "{} was not ready on {} within {READY_TIMEOUT:?}; command: {}\nlog {}:\n{}",
                    self.kind,
                    self.addr,
                    command,
                    self.log_path.display(),
                    self.log_tail()
                )));
            }
            if answers_http(self.addr, remaining.min(PROBE_TIMEOUT)).await {
                // The port may belong to someone else if our process died.
                if self.exit_status().is_none() {
                    return Ok(());
                }
                continue;
            }
            sleep(READY_POLL).await;
        }
    }

    fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Which server this is.
    pub fn kind(&self) -> &ServerKind {
        &self.kind
    }

    /// The server's listening address (`127.0.0.1:P`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The WebSocket URL to connect a Wisp client to: `ws://127.0.0.1:P/`.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// The process id of the server (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pgid
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none()
    }

    /// The file receiving the server's standard output and error.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last few kilobytes of the server's log (for failure messages).
    pub fn log_tail(&self) -> String {
        read_tail(&self.log_path)
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        kill_process_group(self.pgid);
        let _ = self.child.start_kill();
        let _ = self.child.try_wait();
        let keep = std::thread::panicking()
            || std::env::var_os("WISP_TESTKIT_KEEP_LOGS").is_some_and(|v| v == "1");
        if !keep {
            let _ = fs::remove_file(&self.log_path);
        }
    }
}

/// Sends SIGKILL to every process in the process group `pgid`.
pub(crate) fn kill_process_group(pgid: u32) {
    let group = format!("-{pgid}");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", "--", &group])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if killed.is_err() {
        // No kill(1) binary: use the shell's builtin.
        let _ = std::process::Command::new("sh")
            .args(["-c", "kill -9 \"$1\"", "sh", &group])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Whether something on `addr` answers an HTTP request within `limit`.
async fn answers_http(addr: SocketAddr, limit: Duration) -> bool {
    let probe = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 7];
        stream.read_exact(&mut head).await.ok()?;
        Some(&head == b"HTTP/1.")
    };
    matches!(timeout(limit, probe).await, Ok(Some(true)))
}

/// A loopback port that was free a moment ago: bind port 0, read the port,
/// drop the listener.
fn free_port() -> Result<u16, String> {
    let mut last_error = None;
    for _ in 0..5 {
        match StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()) {
            Ok(addr) => return Ok(addr.port()),
            Err(e) => last_error = Some(e),
        }
    }
    Err(format!(
        "no free loopback port: {}",
        last_error.map_or_else(String::new, |e| e.to_string())
    ))
}

fn log_path(kind: &ServerKind, port: u16) -> Result<PathBuf, String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join("wisp-testkit");
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(dir.join(format!(
        "{}-{}-{n}-{port}.log",
        kind.name(),
        std::process::id()
    )))
}

fn read_tail(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(LOG_TAIL_BYTES);
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_string_escapes() {
        assert_eq!(json_string("hello"), r#""hello""#);
        assert_eq!(json_string("a\"b\\c\nd\u{1}é"), r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn wisp_js_options() {
        let root = Path::new("/r");
        let (_, args) = ServerKind::WispJs { motd: None }.command_line(root, 1);
        assert_eq!(args.last().unwrap(), r#"{"allow_loopback_ips":true}"#);
        let (_, args) = ServerKind::WispJs {
            motd: Some("hi".into()),
        }
        .command_line(root, 1);
        assert_eq!(
            args.last().unwrap(),
            r#"{"allow_loopback_ips":true,"wisp_motd":"hi"}"#
        );
    }

    #[test]
    fn free_port_is_free() {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        StdTcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }
}
