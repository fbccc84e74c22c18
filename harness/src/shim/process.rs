//! The shim protocol over a process's stdin/stdout: [`ShimProcess`] drives any program
//! that speaks it (one process per case), and [`serve_stdio`] is the program side for a
//! Rust [`ClientUnderTest`].
//!
//! Every wait is bounded and nothing a shim prints can panic the harness: a line that is
//! not a protocol message, a process that exits before `done` or one that never answers
//! ends the case as a harness error, with the shim's stderr tail.

use std::io::Write as _;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use super::protocol::{Event, Hello, Plan, Request};
use super::{BoxFuture, ClientUnderTest, EventSink, Finish};

/// The longest line a shim may print (a read's data is hex, so keep room for 1 MiB).
const MAX_LINE: usize = 4 * 1024 * 1024;
/// How long a shim has to answer `describe`.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(20);

/// A shim program: `CMD ARGS`, run by `sh -c "exec CMD ARGS"` (so quoting works as in a
/// shell and the process the harness kills is the shim itself), one process per case.
#[derive(Clone, Debug)]
pub struct ShimProcess {
    command: String,
}

impl ShimProcess {
    /// A shim started with this shell command line.
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            command: command.into(),
        }
    }

    /// The command line.
    pub fn command(&self) -> &str {
        &self.command
    }

    fn spawn(&self) -> Result<Child, String> {
        Command::new("sh")
            .arg("-c")
            .arg(format!("exec {}", self.command))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start the shim `{}`: {e}", self.command))
    }
}

/// Writes one request as a JSON line.
async fn send(stdin: &mut ChildStdin, request: &Request) -> Result<(), String> {
    let mut line = serde_json::to_string(request).map_err(|e| e.to_string())?;
    line.push('\n');
    stdin
        .write_all(line.as_bytes())
        .await
        .map_err(|e| format!("cannot write to the shim's stdin: {e}"))?;
    stdin
        .flush()
        .await
        .map_err(|e| format!("cannot write to the shim's stdin: {e}"))
}

/// Parses one line the shim printed.
fn parse(line: &str) -> Result<Event, String> {
    serde_json::from_str(line).map_err(|e| {
        let mut shown: String = line.chars().take(200).collect();
        if shown.len() < line.len() {
            shown.push_str("...");
        }
        format!("the shim printed a line that is not a protocol message ({e}): {shown:?}")
    })
}

/// Reads lines of at most [`MAX_LINE`] bytes.
struct Lines<R> {
    reader: BufReader<R>,
    buf: Vec<u8>,
}

impl<R: tokio::io::AsyncRead + Unpin> Lines<R> {
    fn new(r: R) -> Self {
        Self {
            reader: BufReader::new(r),
            buf: Vec::new(),
        }
    }

    /// The next line (`None` at EOF); an over-long line is an error.
    async fn next(&mut self) -> Result<Option<String>, String> {
        self.buf.clear();
        loop {
            let chunk = self
                .reader
                .fill_buf()
                .await
                .map_err(|e| format!("cannot read the shim's output: {e}"))?;
            if chunk.is_empty() {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                break;
            }
            match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    self.buf.extend_from_slice(&chunk[..i]);
                    self.reader.consume(i + 1);
                    break;
                }
                None => {
                    let n = chunk.len();
                    self.buf.extend_from_slice(chunk);
                    self.reader.consume(n);
                }
            }
            if self.buf.len() > MAX_LINE {
                return Err(format!("the shim printed a line over {MAX_LINE} bytes"));
            }
        }
        let text = String::from_utf8_lossy(&self.buf);
        Ok(Some(text.trim_end_matches('\r').to_owned()))
    }
}

/// Collects the shim's stderr into the sink.
fn drain_stderr(child: &mut Child, sink: &EventSink) -> Option<tokio::task::JoinHandle<()>> {
    let stderr = child.stderr.take()?;
    let sink = sink.clone();
    Some(tokio::spawn(async move {
        let mut lines = Lines::new(stderr);
        while let Ok(Some(line)) = lines.next().await {
            sink.stderr(line);
        }
    }))
}

/// How the process ended, for messages (waits a moment for it).
async fn exit_status(child: &mut Child) -> String {
    match tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
        Ok(Ok(status)) => status.to_string(),
        Ok(Err(e)) => format!("unknown status ({e})"),
        Err(_) => "still running".to_owned(),
    }
}

impl ClientUnderTest for ShimProcess {
    fn hello(&self) -> BoxFuture<'_, Result<Hello, String>> {
        Box::pin(async move {
            let mut child = self.spawn()?;
            let (sink, _rx) = EventSink::new();
            let stderr = drain_stderr(&mut child, &sink);
            let mut stdin = child.stdin.take().ok_or("no stdin")?;
            let stdout = child.stdout.take().ok_or("no stdout")?;
            let mut lines = Lines::new(stdout);
            let answer = tokio::time::timeout(DESCRIBE_TIMEOUT, async {
                send(&mut stdin, &Request::Describe).await?;
                loop {
                    match lines.next().await? {
                        Some(line) if line.trim().is_empty() => {}
                        Some(line) => match parse(&line)? {
                            Event::Hello(h) => return Ok(h),
                            Event::Log { .. } => {}
                            other => return Err(format!("expected a hello line, got {other:?}")),
                        },
                        None => {
                            return Err(format!(
                                "the shim exited ({}) without a hello line",
                                exit_status(&mut child).await
                            ));
                        }
                    }
                }
            })
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "the shim did not answer `describe` within {}s",
                    DESCRIBE_TIMEOUT.as_secs()
                ))
            });
            drop(stdin);
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
            if let Some(task) = stderr {
                let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
            }
            answer.map_err(|e| with_tail(e, &sink.stderr_tail()))
        })
    }

    fn run<'a>(
        &'a self,
        plan: Plan,
        events: EventSink,
        finish: Finish,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut child = self.spawn()?;
            let stderr = drain_stderr(&mut child, &events);
            let result = converse(&mut child, plan, &events, finish).await;
            if result.is_err()
                && let Some(task) = stderr
            {
                // Let the last stderr lines in (the process is gone or going).
                let _ = tokio::time::timeout(Duration::from_millis(500), task).await;
            }
            result
        })
    }
}

/// The `run` conversation with a started shim.
async fn converse(
    child: &mut Child,
    plan: Plan,
    events: &EventSink,
    finish: Finish,
) -> Result<(), String> {
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = Lines::new(stdout);
    send(&mut stdin, &Request::Run(Box::new(plan))).await?;
    let mut finish = Some(Box::pin(finish.wait()));
    loop {
        let line = match finish.as_mut() {
            Some(f) => tokio::select! {
                line = lines.next() => line?,
                info = f => {
                    finish = None;
                    // A shim that already exited cannot hear it; EOF says the rest.
                    let _ = send(&mut stdin, &Request::Finish(info)).await;
                    continue;
                }
            },
            None => lines.next().await?,
        };
        let Some(line) = line else {
            return Err(format!(
                "the shim exited ({}) before `done`",
                exit_status(child).await
            ));
        };
        if line.trim().is_empty() {
            continue;
        }
        let event = parse(&line)?;
        let done = event == Event::Done;
        events.send(event);
        if done {
            return Ok(());
        }
    }
}

/// `message`, then the stderr tail, if any.
pub(crate) fn with_tail(message: String, tail: &[String]) -> String {
    if tail.is_empty() {
        message
    } else {
        format!(
            "{message}\nshim stderr (last lines):\n  {}",
            tail.join("\n  ")
        )
    }
}

/// Writes one event as a JSON line on stdout.
fn print(event: &Event) {
    if let Ok(line) = serde_json::to_string(event) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// The program side of the protocol for a Rust client: reads requests from stdin, runs
/// them on `client`, prints the events on stdout (one JSON line each). Returns when the
/// request is answered or stdin closes; a shim's `main` is one call:
///
/// ```no_run
/// # struct MyClient;
/// # impl wisp_harness::shim::ClientUnderTest for MyClient {
/// #     fn hello(&self) -> wisp_harness::shim::BoxFuture<'_, Result<wisp_harness::shim::Hello, String>> { Box::pin(async { Err("a stand-in for a real client".to_owned()) }) }
/// #     fn run<'a>(&'a self, _: wisp_harness::shim::Plan, _: wisp_harness::shim::EventSink, _: wisp_harness::shim::Finish) -> wisp_harness::shim::BoxFuture<'a, Result<(), String>> { Box::pin(async { Err("a stand-in for a real client".to_owned()) }) }
/// # }
/// fn main() -> std::process::ExitCode {
///     wisp_harness::shim::serve_stdio(&MyClient)
/// }
/// ```
pub fn serve_stdio(client: &dyn ClientUnderTest) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(serve(client))
    }));
    // Exit at once: tasks a hanging client left behind (and the thread blocked on stdin)
    // must not keep the process alive.
    let code = match result {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("{e}");
            2
        }
        Err(_) => {
            eprintln!("the shim panicked");
            101
        }
    };
    std::process::exit(code)
}

async fn serve(client: &dyn ClientUnderTest) -> Result<(), String> {
    let mut lines = Lines::new(tokio::io::stdin());
    let request = loop {
        match lines.next().await? {
            Some(l) if l.trim().is_empty() => {}
            Some(l) => {
                break serde_json::from_str::<Request>(&l)
                    .map_err(|e| format!("not a request ({e}): {l}"))?;
            }
            None => return Ok(()),
        }
    };
    match request {
        Request::Describe => {
            print(&Event::Hello(client.hello().await?));
            Ok(())
        }
        Request::Finish(_) => Err("`finish` before `run`".to_owned()),
        Request::Run(plan) => {
            let (sink, mut rx) = EventSink::new();
            let (fire, finish) = Finish::new();
            let mut fire = Some(fire);
            let mut run = client.run(*plan, sink, finish);
            let mut stdin_open = true;
            let result = loop {
                tokio::select! {
                    r = &mut run => break r,
                    Some(e) = rx.recv() => print(&e),
                    line = lines.next(), if stdin_open => match line {
                        Ok(Some(l)) => {
                            if let Ok(Request::Finish(info)) = serde_json::from_str(&l)
                                && let Some(fire) = fire.take()
                            {
                                let _ = fire.send(info);
                            }
                        }
                        // The harness went away: finish now.
                        Ok(None) | Err(_) => {
                            stdin_open = false;
                            drop(fire.take());
                        }
                    },
                }
            };
            // The run is over: print what it reported last.
            while let Ok(e) = rx.try_recv() {
                print(&e);
            }
            result
        }
    }
}
