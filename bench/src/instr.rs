//! The instruction-count benchmark: client-side instructions per MiB of payload delivered,
//! counted by valgrind's callgrind, which repeats to a fraction of a percent on a busy
//! machine where wall-clock ratios move by ±15 %.
//!
//! Each scenario ([`SCENARIOS`]) is one process of this binary run under
//! `valgrind --tool=callgrind` ([`gate`] starts them):
//!
//! - **Client only.** The process under valgrind is the client alone. It starts the sink
//!   server ([`serve_sink`], the same [`Server`] as the wall-clock bench) as a child
//!   process, which valgrind does not follow (`--trace-children=no`, its default): the
//!   server runs natively, in its own process, and none of its instructions is counted.
//!   The kernel's work (system calls, loopback TCP) is not counted either: callgrind counts
//!   user-space instructions. System calls are counted separately (`--collect-systime`).
//! - **Steady state only.** The client runs on one current-thread tokio runtime (one OS
//!   thread, so the schedule is the same from run to run). It connects, opens its streams
//!   and sends one warm-up round with collection off; then [`measured_phase`] runs the
//!   measured rounds, and only instructions executed while that function is on the stack
//!   are counted (`--collect-atstart=no --toggle-collect=`[`TOGGLE`]). Spawned tasks run
//!   inside it too, since the runtime polls them from its `block_on`.
//! - **Delivered, not just written.** The server acknowledges every round's last payload
//!   of each stream with a DATA packet carrying its integrity error count (see
//!   [`crate::server`]); the measured phase ends when every stream has read its
//!   acknowledgements, so every payload counted has reached the server intact.
//!
//! The committed figures are in `bench/instructions.json`; [`gate`] fails when ours'
//! instructions per MiB exceed them by more than [`TOLERANCE`].

use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::clients::{self, Kind, RawBest, Target};
use crate::server::Server;

/// How much ours' instructions per MiB may exceed the committed figure before [`gate`]
/// fails.
pub const TOLERANCE: f64 = 0.05;

/// The callgrind `--toggle-collect` pattern naming [`measured_phase`].
pub const TOGGLE: &str = "wisp_bench::instr::measured_phase*";

/// glibc settings for the counted client: valgrind counts each byte a `rep movsb` or
/// `rep stosb` moves as one instruction, so glibc's `memcpy`/`memset` are kept on their
/// vector loops (which they use below 2 KiB anyway) to count a copy like the other
/// vectorised passes over the payload (the masking) instead of 16-32 times as much.
pub const GLIBC_TUNABLES: &str = "glibc.cpu.x86_rep_movsb_threshold=1099511627776:\
                                  glibc.cpu.x86_rep_stosb_threshold=1099511627776";

/// Measured rounds per scenario (after one warm-up round).
pub const ROUNDS: u64 = 4;

/// How long one scenario's process may run before it gives up (exit status 3).
pub const CHILD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Per-stream credit the sink server grants (as in the wall-clock bench).
const BUFFER: u32 = 128;

const MIB: f64 = 1024.0 * 1024.0;

/// One measured client, stream count and payload length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// The client.
    pub kind: Kind,
    /// Streams writing at once.
    pub streams: usize,
    /// Payload bytes per write (one DATA packet each).
    pub size: usize,
}

/// The scenarios of the gate: ours at 1 × 1 KiB, 1 × 60 KiB and 64 × 1 KiB, and raw-best
/// (one stream, no multiplexing) at 1 KiB and 60 KiB, to which both of ours' 1 KiB
/// scenarios are compared.
pub const SCENARIOS: [Scenario; 5] = [
    Scenario::new(Kind::Ours, 1, 1024),
    Scenario::new(Kind::Ours, 1, 60 * 1024),
    Scenario::new(Kind::Ours, 64, 1024),
    Scenario::new(Kind::RawBest, 1, 1024),
    Scenario::new(Kind::RawBest, 1, 60 * 1024),
];

impl Scenario {
    /// A scenario.
    pub const fn new(kind: Kind, streams: usize, size: usize) -> Self {
        Self {
            kind,
            streams,
            size,
        }
    }

    fn label(&self) -> String {
        format!("{} {} x {} B", self.kind.name(), self.streams, self.size)
    }
}

/// What the child process is told to run: a scenario and the volume of a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildSpec {
    /// The scenario.
    pub scenario: Scenario,
    /// Payloads per stream per round (the server acknowledges each round).
    pub per_round: u64,
}

impl ChildSpec {
    /// A spec whose rounds carry about `round_bytes` of payload over all streams.
    pub fn new(scenario: Scenario, round_bytes: usize) -> Self {
        let per_round = round_bytes
            .div_ceil(scenario.streams * scenario.size)
            .max(1) as u64;
        Self {
            scenario,
            per_round,
        }
    }

    /// The command-line form, `client:streams:size:per_round`.
    pub fn to_arg(&self) -> String {
        let s = &self.scenario;
        format!(
            "{}:{}:{}:{}",
            s.kind.name(),
            s.streams,
            s.size,
            self.per_round
        )
    }

    /// Parses [`ChildSpec::to_arg`].
    pub fn parse(arg: &str) -> Option<Self> {
        let mut it = arg.split(':');
        let kind = Kind::parse(it.next()?)?;
        let streams = it.next()?.parse().ok().filter(|&n| n > 0)?;
        let size = it
            .next()?
            .parse()
            .ok()
            .filter(|&n| (16..=65531).contains(&n))?;
        let per_round = it.next()?.parse().ok().filter(|&n| n > 0)?;
        if it.next().is_some() || !matches!(kind, Kind::Ours | Kind::RawBest) {
            return None;
        }
        Some(Self {
            scenario: Scenario::new(kind, streams, size),
            per_round,
        })
    }

    /// Payload bytes of the measured rounds.
    pub fn measured_bytes(&self) -> u64 {
        ROUNDS * self.per_round * (self.scenario.streams * self.scenario.size) as u64
    }
}

/// Runs the sink server until standard input closes (the `--instr-server` mode): prints
/// `listening <addr>` on standard output, then serves on a 1-worker runtime.
pub fn serve_sink() -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let server = rt
        .block_on(Server::start(BUFFER))
        .map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening {}", server.addr()).map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    drop(out);
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    Ok(())
}

/// The sink server child process; killed when dropped.
struct SinkServer {
    child: Child,
    addr: std::net::SocketAddr,
}

impl SinkServer {
    fn spawn(exe: &Path) -> Result<Self, String> {
        let mut child = Command::new(exe)
            .arg("--instr-server")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting the sink server {}: {e}", exe.display()))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok());
        match addr {
            Some(addr) => Ok(Self { child, addr }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("the sink server did not start: {line:?}"))
            }
        }
    }
}

impl Drop for SinkServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a child measured (printed as one JSON line).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChildResult {
    /// Payloads delivered in the measured rounds, all streams.
    pub payloads: u64,
    /// Payload bytes delivered in the measured rounds.
    pub bytes: u64,
}

/// The phase callgrind counts: everything the runtime runs while `phase` is driven.
/// [`TOGGLE`] names this function; it must not be inlined or renamed.
#[inline(never)]
pub fn measured_phase(
    rt: &tokio::runtime::Runtime,
    phase: Pin<Box<dyn Future<Output = Result<(), String>> + '_>>,
) -> Result<(), String> {
    rt.block_on(phase)
}

/// Runs one scenario in this process (the `--instr-child` mode, under valgrind): starts
/// the sink server from `server_exe`, connects, warms up for one round, runs the measured
/// rounds in [`measured_phase`] and closes.
pub fn run_child(spec: ChildSpec, server_exe: &Path) -> Result<ChildResult, String> {
    // Every wait below is bounded by this: a scenario takes a few seconds under valgrind.
    std::thread::spawn(|| {
        std::thread::sleep(CHILD_TIMEOUT);
        eprintln!("the scenario did not finish within {CHILD_TIMEOUT:?}");
        std::process::exit(3);
    });
    let server = SinkServer::spawn(server_exe)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let s = spec.scenario;
    let target = Target {
        addr: server.addr,
        token: "instr".into(),
        payload_len: s.size,
        ack_every: spec.per_round,
    };
    let k = spec.per_round;
    match s.kind {
        Kind::Ours => {
            let mut conn = rt.block_on(OursConn::open(&target, s.streams))?;
            rt.block_on(conn.round(k, 1))?;
            measured_phase(&rt, Box::pin(conn.round(ROUNDS * k, ROUNDS)))?;
            rt.block_on(conn.close());
        }
        Kind::RawBest => {
            let mut sender = rt.block_on(RawBest::connect(&target))?;
            rt.block_on(raw_best_round(&mut sender, k, 1))?;
            measured_phase(
                &rt,
                Box::pin(raw_best_round(&mut sender, ROUNDS * k, 1 + ROUNDS)),
            )?;
            rt.block_on(sender.close());
        }
        other => {
            return Err(format!(
                "no instruction-count scenario for {}",
                other.name()
            ));
        }
    }
    drop(rt);
    drop(server);
    Ok(ChildResult {
        payloads: ROUNDS * k * s.streams as u64,
        bytes: spec.measured_bytes(),
    })
}

/// Sends `n` payloads and waits until `acks` acknowledgements in all have arrived.
async fn raw_best_round(sender: &mut RawBest, n: u64, acks: u64) -> Result<(), String> {
    for _ in 0..n {
        sender.send().await?;
    }
    sender.wait_acks(acks).await
}

/// Ours' connection and its streams, each with its next sequence number.
struct OursConn {
    mux: wisp_client::ClientMux,
    driver: tokio::task::JoinHandle<()>,
    streams: Vec<(wisp_client::MuxStreamTokioIo, u64)>,
    size: usize,
}

impl OursConn {
    async fn open(target: &Target, n: usize) -> Result<Self, String> {
        let (mux, driver) = clients::connect_ours(target).await?;
        let mut streams = Vec::with_capacity(n);
        for _ in 0..n {
            let stream = mux
                .new_stream(wisp_client::proto::StreamType::TCP, "bench.invalid", 9)
                .await
                .map_err(|e| e.to_string())?;
            streams.push((stream.into_tokio_io(), 0));
        }
        Ok(Self {
            mux,
            driver,
            streams,
            size: target.payload_len,
        })
    }

    /// Every stream, in its own task as in the wall-clock bench, writes `n` payloads and
    /// then reads `acks` acknowledgements.
    async fn round(&mut self, n: u64, acks: u64) -> Result<(), String> {
        let size = self.size;
        let tasks: Vec<_> = std::mem::take(&mut self.streams)
            .into_iter()
            .map(|(mut io, seq)| {
                tokio::spawn(async move {
                    let mut buf = vec![0x5a; size];
                    let end = seq + n;
                    let seq = clients::write_payloads(&mut io, &mut buf, seq, |s| s < end).await?;
                    let mut ack = [0u8; 8];
                    for _ in 0..acks {
                        io.read_exact(&mut ack)
                            .await
                            .map_err(|e| format!("reading an acknowledgement: {e}"))?;
                        let errors = clients::ack_errors(&ack)?;
                        if errors > 0 {
                            return Err(format!("the server counted {errors} integrity errors"));
                        }
                    }
                    Ok::<_, String>((io, seq))
                })
            })
            .collect();
        for t in tasks {
            self.streams.push(t.await.map_err(|e| e.to_string())??);
        }
        Ok(())
    }

    async fn close(self) {
        drop(self.streams);
        let _ = self.mux.close().await;
        drop(self.mux);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), self.driver).await;
    }
}

/// One scenario's figure in `bench/instructions.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Figure {
    /// Client name.
    pub client: String,
    /// Streams.
    pub streams: usize,
    /// Payload bytes per write.
    pub size: usize,
    /// MiB of payload in the measured rounds.
    pub payload_mib: f64,
    /// Counted instructions of each run.
    pub instructions: Vec<u64>,
    /// Median over the runs of instructions per MiB of payload delivered.
    pub instructions_per_mib: f64,
    /// System calls per MiB (median over the runs), when callgrind counted them.
    pub syscalls_per_mib: Option<f64>,
    /// Instructions per MiB over raw-best's at the same payload size (ours only).
    pub vs_raw_best: Option<f64>,
}

impl Figure {
    fn is(&self, s: &Scenario) -> bool {
        self.client == s.kind.name() && self.streams == s.streams && self.size == s.size
    }

    /// Largest relative difference between two runs (0 with one run).
    pub fn spread(&self) -> f64 {
        let lo = self.instructions.iter().copied().min().unwrap_or(0) as f64;
        let hi = self.instructions.iter().copied().max().unwrap_or(0) as f64;
        if lo > 0.0 { hi / lo - 1.0 } else { 0.0 }
    }
}

/// The contents of `bench/instructions.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Figures {
    /// What the file is.
    pub about: String,
    /// The command that wrote it.
    pub command: String,
    /// `valgrind --version`.
    pub valgrind: String,
    /// Cores and CPU model of the machine that measured.
    pub machine: String,
    /// The per-scenario figures.
    pub scenarios: Vec<Figure>,
}

impl Figures {
    fn find(&self, s: &Scenario) -> Option<&Figure> {
        self.scenarios.iter().find(|f| f.is(s))
    }
}

/// How to run the gate.
#[derive(Clone, Debug)]
pub struct GateOptions {
    /// This binary (a release build): run under valgrind as the client, natively as the
    /// server.
    pub exe: PathBuf,
    /// The committed figures.
    pub file: PathBuf,
    /// MiB of payload measured per scenario (after a warm-up round of a quarter of it).
    pub mib: f64,
    /// Runs per scenario.
    pub runs: usize,
    /// Write the measured figures to `file` instead of checking against it.
    pub update: bool,
}

/// The one-line command that refreshes the committed figures.
pub const UPDATE_COMMAND: &str =
    "WISP_BENCH_UPDATE=1 cargo run -p wisp-bench --release --locked -- --instructions";

/// Measures every scenario under callgrind, prints the table, and checks ours against the
/// committed figures (or rewrites them with `update`). `Ok(false)` when the check failed.
pub fn gate(opts: &GateOptions) -> Result<bool, String> {
    let valgrind = Command::new("valgrind")
        .arg("--version")
        .output()
        .map_err(|e| {
            format!("valgrind is needed for the instruction counts (apt-get install valgrind): {e}")
        })?;
    let valgrind = String::from_utf8_lossy(&valgrind.stdout).trim().to_owned();
    let dir = std::env::temp_dir().join(format!("wisp-bench-instr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let round_bytes = (opts.mib * MIB / ROUNDS as f64).round() as usize;
    let started = std::time::Instant::now();
    let mut measured = Vec::new();
    let mut result = Ok(());
    for s in SCENARIOS {
        let spec = ChildSpec::new(s, round_bytes);
        let mut counts = Vec::new();
        let mut syscalls = Vec::new();
        for run in 0..opts.runs {
            let out = dir.join(format!(
                "callgrind.{}-{}-{}.{run}",
                s.kind.name(),
                s.streams,
                s.size
            ));
            match callgrind(opts, spec, &out) {
                Ok((ir, sys)) => {
                    eprintln!(
                        "[{:>5.1}s] {} run {}: {ir} instructions{}",
                        started.elapsed().as_secs_f64(),
                        s.label(),
                        run + 1,
                        sys.map(|n| format!(", {n} system calls"))
                            .unwrap_or_default()
                    );
                    counts.push(ir);
                    syscalls.extend(sys);
                }
                Err(e) => {
                    result = Err(format!("{}: {e}", s.label()));
                    break;
                }
            }
        }
        if result.is_err() {
            break;
        }
        let mib = spec.measured_bytes() as f64 / MIB;
        let per_mib = |v: &[u64]| {
            let v: Vec<f64> = v.iter().map(|&n| n as f64 / mib).collect();
            crate::report::median_min_max(&v).0
        };
        measured.push(Figure {
            client: s.kind.name().to_owned(),
            streams: s.streams,
            size: s.size,
            payload_mib: mib,
            instructions_per_mib: per_mib(&counts),
            syscalls_per_mib: (!syscalls.is_empty()).then(|| per_mib(&syscalls)),
            vs_raw_best: None,
            instructions: counts,
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    let best: Vec<(usize, f64)> = measured
        .iter()
        .filter(|f| f.client == Kind::RawBest.name())
        .map(|f| (f.size, f.instructions_per_mib))
        .collect();
    for f in &mut measured {
        if f.client != Kind::RawBest.name() {
            f.vs_raw_best = best
                .iter()
                .find(|(size, _)| *size == f.size)
                .map(|(_, b)| f.instructions_per_mib / b);
        }
    }
    let figures = Figures {
        about: "Client-side user-space instructions per MiB of payload delivered, counted by \
                callgrind; see bench/README.md. Refresh with the command below."
            .into(),
        command: UPDATE_COMMAND.into(),
        valgrind,
        machine: crate::machine(),
        scenarios: measured,
    };
    let committed = if opts.update {
        None
    } else {
        let text = std::fs::read_to_string(&opts.file).map_err(|e| {
            format!(
                "{}: {e} (write it with `{UPDATE_COMMAND}`)",
                opts.file.display()
            )
        })?;
        Some(
            serde_json::from_str::<Figures>(&text)
                .map_err(|e| format!("{}: {e}", opts.file.display()))?,
        )
    };
    let (table, failures) = table(&figures, committed.as_ref());
    println!("{table}");
    eprintln!(
        "instruction counts: {} scenarios x {} run(s) in {:.0} s",
        SCENARIOS.len(),
        opts.runs,
        started.elapsed().as_secs_f64()
    );
    if opts.update {
        let text = serde_json::to_string_pretty(&figures).map_err(|e| e.to_string())?;
        std::fs::write(&opts.file, text + "\n")
            .map_err(|e| format!("{}: {e}", opts.file.display()))?;
        eprintln!("wrote {}", opts.file.display());
        return Ok(true);
    }
    for f in &failures {
        eprintln!("FAILED: {f}");
    }
    if !failures.is_empty() {
        eprintln!(
            "If the change is worth it, refresh the committed figures with `{UPDATE_COMMAND}` \
             and say why in the commit message."
        );
    }
    Ok(failures.is_empty())
}

/// Runs one scenario under callgrind; returns the counted instructions and system calls.
fn callgrind(
    opts: &GateOptions,
    spec: ChildSpec,
    out: &Path,
) -> Result<(u64, Option<u64>), String> {
    let output = Command::new("valgrind")
        .env("GLIBC_TUNABLES", GLIBC_TUNABLES)
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg("--collect-atstart=no")
        .arg(format!("--toggle-collect={TOGGLE}"))
        .arg("--collect-systime=nsec")
        .arg(&opts.exe)
        .arg("--instr-child")
        .arg(spec.to_arg())
        .arg("--instr-server-exe")
        .arg(&opts.exe)
        .output()
        .map_err(|e| format!("running valgrind: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("exited with {}:\n{stderr}", output.status));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result: ChildResult = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| format!("no result from the client:\n{stdout}\n{stderr}"))?;
    if result.bytes != spec.measured_bytes() {
        return Err(format!(
            "measured {} bytes, expected {}",
            result.bytes,
            spec.measured_bytes()
        ));
    }
    let text = std::fs::read_to_string(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let (ir, sys) = totals(&text).ok_or_else(|| format!("no totals in {}", out.display()))?;
    if ir == 0 {
        return Err(format!(
            "no instruction was counted: does {TOGGLE} still name the measured phase?"
        ));
    }
    Ok((ir, sys))
}

/// The instruction and system-call totals of a callgrind output file.
pub fn totals(text: &str) -> Option<(u64, Option<u64>)> {
    let events: Vec<&str> = text
        .lines()
        .find_map(|l| l.strip_prefix("events:"))?
        .split_whitespace()
        .collect();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("totals:"))
        .or_else(|| text.lines().find_map(|l| l.strip_prefix("summary:")))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let get = |name: &str| {
        events
            .iter()
            .position(|e| *e == name)
            .map(|i| values.get(i).copied().unwrap_or(0))
    };
    Some((get("Ir")?, get("sysCount")))
}

/// The Markdown table of `measured` (against `committed` when given) and the gate's
/// failures.
pub fn table(measured: &Figures, committed: Option<&Figures>) -> (String, Vec<String>) {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    let _ = writeln!(
        out,
        "### Instructions per MiB delivered (callgrind, client process only)\n"
    );
    let _ = writeln!(
        out,
        "| client | streams | payload | MiB | instructions / MiB | runs | instructions / packet | system calls / MiB | / raw-best | committed | change |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for s in SCENARIOS {
        let Some(f) = measured.find(&s) else {
            continue;
        };
        let best = measured.find(&Scenario::new(Kind::RawBest, 1, s.size));
        let vs_best = best
            .filter(|_| s.kind != Kind::RawBest)
            .map(|b| format!("{:.2}x", f.instructions_per_mib / b.instructions_per_mib))
            .unwrap_or_else(|| "—".into());
        let old = committed.and_then(|c| c.find(&s));
        let (old_cell, change) = match old {
            Some(o) => (
                format!("{:.0}", o.instructions_per_mib),
                format!(
                    "{:+.2} %",
                    (f.instructions_per_mib / o.instructions_per_mib - 1.0) * 100.0
                ),
            ),
            None => ("—".into(), "—".into()),
        };
        let runs = f
            .instructions
            .iter()
            .map(|n| format!("{:.0}", *n as f64 / f.payload_mib))
            .collect::<Vec<_>>()
            .join(" / ");
        let packets_per_mib = MIB / s.size as f64;
        let _ = writeln!(
            out,
            "| {} | {} | {} B | {:.2} | {:.0} | {runs} (spread {:.2} %) | {:.0} | {} | {vs_best} | {old_cell} | {change} |",
            f.client,
            f.streams,
            f.size,
            f.payload_mib,
            f.instructions_per_mib,
            f.spread() * 100.0,
            f.instructions_per_mib / packets_per_mib,
            f.syscalls_per_mib
                .map_or_else(|| "—".into(), |n| format!("{n:.1}")),
        );
        if s.kind == Kind::Ours
            && let Some(c) = committed
        {
            match old {
                Some(o) if f.instructions_per_mib > o.instructions_per_mib * (1.0 + TOLERANCE) => {
                    failures.push(format!(
                        "{}: {:.0} instructions per MiB, {:.1} % over the committed {:.0} (tolerance {:.0} %)",
                        s.label(),
                        f.instructions_per_mib,
                        (f.instructions_per_mib / o.instructions_per_mib - 1.0) * 100.0,
                        o.instructions_per_mib,
                        TOLERANCE * 100.0
                    ));
                }
                Some(o) if f.instructions_per_mib < o.instructions_per_mib * (1.0 - TOLERANCE) => {
                    notes.push(format!(
                        "{} is {:.1} % under its committed figure: refresh the figures if the \
                         gain is meant to stay.",
                        s.label(),
                        (1.0 - f.instructions_per_mib / o.instructions_per_mib) * 100.0
                    ));
                }
                Some(_) => {}
                None => failures.push(format!(
                    "{}: no committed figure in the file measured on {}",
                    s.label(),
                    c.machine
                )),
            }
        }
    }
    for n in notes {
        let _ = writeln!(out, "\nNote: {n}");
    }
    (out, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_specs_round_trip_and_reject_nonsense() {
        for s in SCENARIOS {
            let spec = ChildSpec::new(s, 2 << 20);
            assert_eq!(ChildSpec::parse(&spec.to_arg()), Some(spec));
            assert!(spec.measured_bytes() >= ROUNDS * (2 << 20));
        }
        for bad in [
            "",
            "ours",
            "ours:1:1024",
            "raw:1:1024:4",
            "ours:0:1024:4",
            "ours:1:8:4",
            "ours:1:1024:4:5",
        ] {
            assert_eq!(ChildSpec::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn totals_reads_the_events_named_in_the_header() {
        let text = "version: 1\nevents: Ir sysCount sysTime\nfn=x\n1 2 3 4\ntotals: 1234 56 789\n";
        assert_eq!(totals(text), Some((1234, Some(56))));
        let text = "events: Ir\nsummary: 99\n";
        assert_eq!(totals(text), Some((99, None)));
        assert_eq!(totals("events: Ir\n"), None);
        assert_eq!(totals("totals: 5\n"), None);
    }

    fn figures(ours: f64) -> Figures {
        let f = |client: &str, streams, size, per_mib: f64| Figure {
            client: client.into(),
            streams,
            size,
            payload_mib: 8.0,
            instructions: vec![(per_mib * 8.0) as u64],
            instructions_per_mib: per_mib,
            syscalls_per_mib: None,
            vs_raw_best: None,
        };
        Figures {
            about: String::new(),
            command: String::new(),
            valgrind: String::new(),
            machine: "test".into(),
            scenarios: vec![
                f("ours", 1, 1024, ours),
                f("ours", 1, 61440, ours),
                f("ours", 64, 1024, ours),
                f("raw-best", 1, 1024, 1000.0),
                f("raw-best", 1, 61440, 1000.0),
            ],
        }
    }

    #[test]
    fn the_gate_fails_only_above_the_tolerance() {
        let committed = figures(2000.0);
        let (_, failures) = table(&figures(2099.0), Some(&committed));
        assert!(failures.is_empty(), "{failures:?}");
        let (table, failures) = table(&figures(2101.0), Some(&committed));
        assert_eq!(failures.len(), 3, "{failures:?}");
        assert!(table.contains("| 2.10x |"), "{table}");
        // Raw-best growing is not a failure of ours.
        let mut slower_best = figures(2000.0);
        for f in &mut slower_best.scenarios {
            if f.client == "raw-best" {
                f.instructions_per_mib *= 2.0;
            }
        }
        assert!(super::table(&slower_best, Some(&committed)).1.is_empty());
    }
}
