//! Listen mode (`wisp-conformance listen ADDR`): judge a Wisp client that cannot be
//! driven by the harness (a browser page, a closed app) by serving every client-role case
//! at its own URL and judging what the connecting client puts on the wire.
//!
//! Each case is served at `ws://ADDR/<case-id>/` by the mock server
//! ([`wisp_mock_server::replay::serve`], the same replay the in-process suite uses); a
//! plain HTTP `GET /` lists the URLs. The client under test connects to a case's URL and
//! does what the case's `client:` section describes (its README row says what that is);
//! the script's judging steps (the packets the client must send, the CLOSE reasons, how
//! and when it ends the connection, silences) are its verdict, through the engine's
//! judge (the case's level: must FAILED, should NON-STRICT, may INFORMATIONAL). The
//! client's API outcome (errors it reports, data it read) cannot be seen from here: each
//! report row lists those expectations as not judged, and a case whose point is only the
//! API outcome ([`needs_shim`]) is UNSUPPORTED, "needs a shim"
//! (`wisp-conformance client --shim`). A case no client connected to is IGNORED. The last
//! attempt at a case counts.
//!
//! The run ends on Ctrl-C, after the bound, or (for scripted use) once every case in
//! [`ListenOptions::until`] has a result; then the usual report is written.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use wisp_cases::client::ServerStep;
use wisp_cases::{ClientCase, Role};
use wisp_mock_server::replay::{Io, Prefixed, Script, read_request_head, serve_with_reset};
use wisp_mock_server::trace::{SharedTrace, Trace};

use crate::engine::{CaseRun, finish};
use crate::report::{SubjectInfo, SuiteReport};

/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 64;

/// How a listen run ends.
#[derive(Clone, Debug, Default)]
pub struct ListenOptions {
    /// End after this long (None: only Ctrl-C, the caller's stop or `until` end it).
    pub bound: Option<Duration>,
    /// End as soon as each of these case IDs has a result (empty: never).
    pub until: Vec<String>,
}

/// Whether a case can only be judged by the client's API outcome: its script judges
/// nothing the client sends, or the case is about the error the client reports and the
/// script does not watch how the client ends the connection (`expect_eof`,
/// `expect_close_ws`) or stays silent (`expect_nothing`).
pub fn needs_shim(case: &ClientCase) -> bool {
    let mut judges = false;
    let mut watches_end = false;
    for step in &case.server {
        match step.value {
            ServerStep::Expect(_) => judges = true,
            ServerStep::ExpectCloseWs | ServerStep::ExpectEof | ServerStep::ExpectNothing(_) => {
                judges = true;
                watches_end = true;
            }
            _ => {}
        }
    }
    !judges || (case.expect.error.is_some() && !watches_end)
}

/// The API-side expectations of a case that listen mode cannot check.
fn api_only(case: &ClientCase) -> Vec<String> {
    let e = &case.expect;
    let mut out = Vec::new();
    if let Some(err) = &e.error {
        out.push(format!("error {err}"));
    }
    if e.downgraded.is_some() {
        out.push("downgraded".to_owned());
    }
    if e.version.is_some() {
        out.push("version".to_owned());
    }
    if e.extensions.is_some() {
        out.push("extensions".to_owned());
    }
    if e.motd.is_some() {
        out.push("motd".to_owned());
    }
    for alias in e.streams.keys() {
        out.push(format!("streams.{alias}"));
    }
    if e.mux_result.is_some() {
        out.push("mux_result".to_owned());
    }
    out
}

/// One finished attempt at a case.
struct Attempt {
    index: usize,
    failures: Vec<String>,
    transcript: String,
    duration: Duration,
}

/// The listening server, before clients connect.
#[derive(Debug)]
pub struct CaseServer {
    listener: TcpListener,
    cases: Vec<ClientCase>,
}

impl CaseServer {
    /// Listens on `addr` (port 0 picks one) and serves `cases` there.
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub async fn bind(addr: SocketAddr, cases: Vec<ClientCase>) -> std::io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
            cases,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves every case until `stop`, the bound, or `options.until` is complete; then
    /// waits (at most each case's step timeout) for the connections still running, and
    /// judges. Every case of the server is in the report, in order.
    pub async fn run(self, options: &ListenOptions, stop: impl Future<Output = ()>) -> SuiteReport {
        let started = Instant::now();
        let url = format!(
            "ws://{}/",
            self.local_addr().map(|a| a.to_string()).unwrap_or_default()
        );
        let by_id: Arc<BTreeMap<String, usize>> = Arc::new(
            self.cases
                .iter()
                .enumerate()
                .map(|(i, c)| (c.meta.id.clone(), i))
                .collect(),
        );
        let scripts: Arc<Vec<Script>> =
            Arc::new(self.cases.iter().map(Script::from_case).collect());
        let (tx, mut rx) = mpsc::unbounded_channel::<Attempt>();
        let mut results: BTreeMap<usize, Attempt> = BTreeMap::new();
        let mut tasks = JoinSet::new();
        let mut stop = std::pin::pin!(stop);
        let bound = async {
            match options.bound {
                Some(b) => tokio::time::sleep(b).await,
                None => std::future::pending().await,
            }
        };
        let mut bound = std::pin::pin!(bound);
        let complete = |results: &BTreeMap<usize, Attempt>| {
            !options.until.is_empty()
                && options
                    .until
                    .iter()
                    .all(|id| by_id.get(id).is_some_and(|i| results.contains_key(i)))
        };
        loop {
            if complete(&results) {
                break;
            }
            tokio::select! {
                () = &mut stop => break,
                () = &mut bound => break,
                Some(a) = rx.recv() => { results.insert(a.index, a); }
                accepted = self.listener.accept() => {
                    let Ok((tcp, _)) = accepted else { continue };
                    if tasks.len() >= MAX_CONNECTIONS {
                        // A flood of connections is refused, not queued without bound.
                        drop(tcp);
                        continue;
                    }
                    let _ = tcp.set_nodelay(true);
                    let (by_id, scripts, tx, url) = (by_id.clone(), scripts.clone(), tx.clone(), url.clone());
                    tasks.spawn(async move {
                        // A duplicate of the socket's descriptor, for `reset_tcp`.
                        let reset = tcp.as_fd().try_clone_to_owned().ok();
                        if let Some(a) =
                            connection(Box::new(tcp), reset, &by_id, &scripts, &url).await
                        {
                            let _ = tx.send(a);
                        }
                    });
                }
                // Reap finished connection tasks.
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        drop(tx);
        // The connections still running get their step timeout to finish.
        let grace = self
            .cases
            .iter()
            .map(|c| c.server_options.step_timeout.0)
            .max()
            .unwrap_or(Duration::from_secs(5));
        let _ =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        tasks.abort_all();
        while let Ok(a) = rx.try_recv() {
            results.insert(a.index, a);
        }
        let mut reports = Vec::new();
        for (i, case) in self.cases.iter().enumerate() {
            let attempt = results.remove(&i);
            let case_url = format!("{url}{}/", case.meta.id);
            let not_judged = api_only(case);
            let mut run = CaseRun::default();
            let mut duration = Duration::ZERO;
            if let Some(a) = attempt {
                duration = a.duration;
                run.transcript = a.transcript;
                if !not_judged.is_empty() {
                    let _ = writeln!(
                        run.transcript,
                        "== listen ==\nnot judged here (the client's API outcome): {}",
                        not_judged.join(", ")
                    );
                }
                run.failures = a.failures;
                if needs_shim(case) {
                    run.unsupported = Some(format!(
                        "needs a shim: judged only by the client's API outcome ({}); run it with wisp-conformance client --shim",
                        not_judged.join(", ")
                    ));
                }
            } else if needs_shim(case) {
                run.unsupported = Some(format!(
                    "needs a shim: judged only by the client's API outcome ({})",
                    not_judged.join(", ")
                ));
            } else {
                let mut report = crate::report::CaseReport::new(&case.meta, Role::Client);
                report.ignored = Some(format!("no client connected to {case_url}"));
                reports.push(report);
                continue;
            }
            let mut report = finish(&case.meta, Role::Client, None, run, duration);
            if report.verdict != wisp_cases::Verdict::Unsupported && !not_judged.is_empty() {
                report.reasons.push(format!(
                    "not judged in listen mode: {}",
                    not_judged.join(", ")
                ));
            }
            reports.push(report);
        }
        SuiteReport {
            subject: SubjectInfo::Listen(format!("{url}<case-id>/")),
            cases: reports,
            not_applicable: Vec::new(),
            duration: started.elapsed(),
        }
    }
}

/// Serves one connection: the case its path names, or the list of URLs for `GET /`, or
/// 404. Returns the attempt when a case was played.
async fn connection(
    mut io: Box<dyn Io>,
    reset: Option<OwnedFd>,
    by_id: &BTreeMap<String, usize>,
    scripts: &[Script],
    url: &str,
) -> Option<Attempt> {
    let head = tokio::time::timeout(Duration::from_secs(10), read_request_head(&mut io))
        .await
        .ok()?
        .ok()?;
    let path = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_default();
    let id = path.trim_matches('/');
    let Some(&index) = by_id.get(id) else {
        let body = if id.is_empty() {
            let mut b = String::from("Wisp conformance cases, one URL each:\n");
            for case_id in by_id.keys() {
                let _ = writeln!(b, "{url}{case_id}/");
            }
            b
        } else {
            format!("no case {id:?} here; GET / lists the cases\n")
        };
        let status = if id.is_empty() {
            "200 OK"
        } else {
            "404 Not Found"
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ =
            tokio::time::timeout(Duration::from_secs(5), io.write_all(response.as_bytes())).await;
        return None;
    };
    let script = &scripts[index];
    let trace: SharedTrace = Arc::new(Mutex::new(Trace::default()));
    let started = Instant::now();
    let outcome = serve_with_reset(
        Prefixed::new(head, io),
        reset,
        script,
        trace.clone(),
        tokio::time::Instant::now(),
    )
    .await;
    // What the client sends after the script is recorded until it ends the connection
    // (bounded).
    if let Some(idle) = outcome.idle {
        let abort = idle.abort_handle();
        if tokio::time::timeout(script.options.step_timeout.0, idle)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
    let failures = match outcome.result {
        Ok(()) => Vec::new(),
        Err(f) => vec![f.to_string()],
    };
    let wire = trace.lock().map(|t| t.render()).unwrap_or_default();
    Some(Attempt {
        index,
        failures,
        transcript: format!("== wire (mock server, listen mode) ==\n{wire}"),
        duration: started.elapsed(),
    })
}

/// `wisp-conformance listen ADDR`: serves `cases` on `addr` until Ctrl-C or the bound,
/// then returns the report. `on_listen` gets the bound address once clients can connect.
///
/// # Errors
///
/// The runtime cannot start or the address cannot be bound.
pub fn run_blocking(
    addr: SocketAddr,
    cases: Vec<ClientCase>,
    options: &ListenOptions,
    on_listen: impl FnOnce(SocketAddr),
) -> Result<SuiteReport, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    runtime.block_on(async {
        let server = CaseServer::bind(addr, cases)
            .await
            .map_err(|e| format!("listening on {addr}: {e}"))?;
        on_listen(server.local_addr().unwrap_or(addr));
        let stop = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        Ok(server.run(options, stop).await)
    })
}
