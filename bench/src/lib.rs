//! The Wisp client benchmark: `wisp_client::ClientMux`, the published `wisp-mux` 5.1.0
//! client and raw tokio-websockets senders ([`clients`]), side by side in one process
//! against one lossless in-process discard server ([`server`]); and the client-side
//! instruction counts of ours and `raw-best` under callgrind, with their gate ([`instr`]).
//! See `bench/README.md` for what is measured, how, and the latest results.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;

pub mod clients;
pub mod idle;
pub mod instr;
pub mod report;
pub mod server;
pub mod wire;

use clients::{Kind, Target};
use server::Server;

/// How client and server share the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeMode {
    /// One 1-worker tokio runtime (one OS thread) for all client tasks and another for the
    /// server: like two machines joined by loopback TCP. The default.
    Split,
    /// One 2-worker tokio runtime shared by client and server tasks.
    Shared,
}

/// The runtimes a run uses: the client's, the server's and a small one for the
/// orchestrator (timers and sampling, on the main thread).
#[derive(Debug)]
pub struct Runtimes {
    /// Runs every client task.
    pub client: tokio::runtime::Runtime,
    /// Runs the server.
    pub server: tokio::runtime::Runtime,
    /// Drives the orchestrator with `block_on`.
    pub main: tokio::runtime::Runtime,
}

impl Runtimes {
    /// Builds the runtimes for `mode`. In shared mode client and server handles point at
    /// the same runtime.
    pub fn new(mode: RuntimeMode) -> std::io::Result<Self> {
        let worker = |name: &str, n: usize| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(n)
                .thread_name(name)
                .enable_all()
                .build()
        };
        let main = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(match mode {
            RuntimeMode::Split => Self {
                client: worker("bench-client", 1)?,
                server: worker("bench-server", 1)?,
                main,
            },
            RuntimeMode::Shared => {
                // Two handles to one runtime: build one and keep a second, idle, 1-worker
                // runtime for the server handle so the struct stays uniform.
                let shared = worker("bench-shared", 2)?;
                Self {
                    client: shared,
                    server: worker("bench-unused", 1)?,
                    main,
                }
            }
        })
    }

    /// The runtime the server runs on.
    pub fn server_rt(&self, mode: RuntimeMode) -> &tokio::runtime::Runtime {
        match mode {
            RuntimeMode::Split => &self.server,
            RuntimeMode::Shared => &self.client,
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Clients to compare.
    pub clients: Vec<Kind>,
    /// Stream counts (series).
    pub streams: Vec<usize>,
    /// Payload lengths.
    pub sizes: Vec<usize>,
    /// Runs per (client, streams, size).
    pub runs: usize,
    /// Measured time per run.
    pub duration: Duration,
    /// Time before measuring starts.
    pub warmup: Duration,
    /// Fairness window.
    pub window: Duration,
    /// Probe streams opened per multi-stream run.
    pub probes: usize,
    /// Per-stream credit the server grants, in packets.
    pub buffer: u32,
    /// Idle streams for the memory and open-rate measurement (0: skip).
    pub idle_streams: usize,
    /// Runtime arrangement.
    pub runtime: RuntimeMode,
    /// Bound on the drain after a run (every sent payload must arrive within it).
    pub drain_timeout: Duration,
    /// How long a probe stream may take to open and deliver its first DATA before it
    /// counts as not delivered.
    pub probe_timeout: Duration,
    /// How long the client may take to close after a run (longer is noted, not a failure).
    pub close_timeout: Duration,
    /// A run during which other processes used more than this many cores is repeated.
    pub max_foreign_cpu: f64,
    /// How often a disturbed run is repeated at most.
    pub max_retries: u32,
}

impl Config {
    /// The full benchmark.
    pub fn full() -> Self {
        Self {
            clients: vec![
                Kind::Ours,
                Kind::WispMux,
                Kind::RawBest,
                Kind::Raw,
                Kind::RawDefault,
            ],
            streams: vec![1, 64],
            sizes: vec![1024, 16 * 1024, 60 * 1024],
            runs: 3,
            duration: Duration::from_secs(2),
            warmup: Duration::from_millis(300),
            window: Duration::from_millis(250),
            probes: 4,
            buffer: 128,
            idle_streams: 10_000,
            runtime: RuntimeMode::Split,
            drain_timeout: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(15),
            max_foreign_cpu: 0.25,
            max_retries: 4,
        }
    }

    /// The CI smoke mode: every client, every size and both series, briefly; checks
    /// correctness (loss, reordering, corruption, probes, idle streams), not timings.
    pub fn smoke() -> Self {
        Self {
            runs: 1,
            duration: Duration::from_millis(300),
            warmup: Duration::from_millis(50),
            window: Duration::from_millis(100),
            probes: 1,
            idle_streams: 500,
            probe_timeout: Duration::from_secs(3),
            max_retries: 0,
            close_timeout: Duration::from_secs(2),
            ..Self::full()
        }
    }
}

/// One measured run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunResult {
    /// Client name.
    pub client: String,
    /// Bulk streams.
    pub streams: usize,
    /// Payload length.
    pub size: usize,
    /// Delivered MiB/s over the measured interval.
    pub mib_s: f64,
    /// Per window: the smallest per-stream share of the fair rate (bytes of the stream /
    /// (all bytes / streams)). Empty for one stream.
    pub window_min_share: Vec<f64>,
    /// Probe latencies: from the `new_stream` call to the server's receipt of the probe's
    /// first DATA, in ms (`None`: the probe failed or took longer than the probe bound).
    pub probe_ms: Vec<Option<f64>>,
    /// Probe `new_stream` call durations in ms.
    pub probe_open_call_ms: Vec<f64>,
    /// Payloads sent by writers but never received by the server.
    pub lost: u64,
    /// Integrity violations the server counted (sequence, length, protocol).
    pub errors: u64,
    /// Failures of the run itself (timeouts, client errors), with the server's error log.
    pub failures: Vec<String>,
    /// How the WebSocket ended when it did not end with a close handshake (for example
    /// wisp-mux 5.1.0 drops the TCP connection): informational, not a failure.
    pub transport_end: Option<String>,
    /// Set when closing the client after the run did not finish in time (informational).
    pub close_note: Option<String>,
    /// Set when a comparison client (not ours) did not open its streams in time: a
    /// defect of that client (wisp-mux 5.1.0 starves stream opens while other streams
    /// write), reported in the run's notes, not a failure of the benchmark. For our
    /// client it is a failure.
    pub stall_note: Option<String>,
    /// Busy fraction of the client thread(s) while measuring (split runtime mode).
    pub client_cpu: f64,
    /// Busy fraction of the server thread while measuring (split runtime mode).
    pub server_cpu: f64,
    /// Cores' worth of CPU that other processes (and interrupt work not charged to this
    /// process) used while measuring: how disturbed the run was.
    pub foreign_cpu: f64,
    /// Earlier attempts of this run discarded because `foreign_cpu` was over the bound.
    pub disturbed_attempts: u32,
}

/// The machine, for reports: `N cores, <CPU model>` (from `/proc/cpuinfo`).
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!(
        "{} cores, {model}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}

/// CPU seconds (user + system) used so far by this process's threads whose name starts
/// with `prefix` (from `/proc/self/task/*/stat`, in clock ticks of 10 ms).
pub fn thread_cpu_secs(prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut ticks = 0u64;
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // After the name: state is field 3 of the line; utime and stime are 14 and 15.
        let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
        let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
        ticks += utime + stime;
    }
    ticks as f64 / 100.0
}

/// Busy CPU seconds of the whole machine (all cores, from `/proc/stat`) and of this process
/// (from `/proc/self/stat`), so a run can tell how much CPU other processes took meanwhile.
pub fn machine_and_own_cpu_secs() -> (f64, f64) {
    let machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().next()?.to_owned();
            let v: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|f| f.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal ...
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            Some((total - idle) as f64 / 100.0)
        })
        .unwrap_or(0.0);
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let close = stat.rfind(')')?;
            let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) as f64 / 100.0)
        })
        .unwrap_or(0.0);
    (machine, own)
}

/// Runs one (client, streams, size) measurement.
pub fn run_once(
    rts: &Runtimes,
    cfg: &Config,
    server: &Server,
    kind: Kind,
    streams: usize,
    size: usize,
    token: &str,
) -> RunResult {
    let target = Target {
        addr: server.addr(),
        token: token.to_owned(),
        payload_len: size,
        ack_every: 0,
    };
    let registered = server.expect(token);
    let session = {
        let _guard = rts.client.enter();
        clients::start(kind, target, streams)
    };
    let mut result = RunResult {
        client: kind.name().to_owned(),
        streams,
        size,
        mib_s: 0.0,
        window_min_share: Vec::new(),
        probe_ms: Vec::new(),
        probe_open_call_ms: Vec::new(),
        lost: 0,
        errors: 0,
        failures: Vec::new(),
        transport_end: None,
        close_note: None,
        stall_note: None,
        client_cpu: 0.0,
        server_cpu: 0.0,
        foreign_cpu: 0.0,
        disturbed_attempts: 0,
    };
    rts.main.block_on(async {
        let clients::Session {
            stop,
            probes,
            ready,
            sent,
            release,
            done,
        } = session;
        let mut reg = match tokio::time::timeout(Duration::from_secs(10), registered).await {
            Ok(Ok(reg)) => reg,
            _ => {
                stop.stop();
                let outcome = tokio::time::timeout(Duration::from_secs(5), done).await;
                drop(release);
                result
                    .failures
                    .push(format!("no connection reached the server ({outcome:?})"));
                return;
            }
        };
        let stats = reg.stats.clone();
        let ids = match tokio::time::timeout(Duration::from_secs(30), ready).await {
            Ok(Ok(ids)) => ids,
            _ => {
                stop.stop();
                let outcome = tokio::time::timeout(Duration::from_secs(5), done).await;
                let note = format!("streams did not open within 30 s ({outcome:?})");
                if kind == clients::Kind::Ours {
                    result.failures.push(note);
                } else {
                    result.stall_note = Some(note);
                }
                return;
            }
        };
        tokio::time::sleep(cfg.warmup).await;

        let t0 = Instant::now();
        let machine0 = machine_and_own_cpu_secs();
        let cpu0 = (
            thread_cpu_secs("bench-client"),
            thread_cpu_secs("bench-server"),
        );
        let bytes0 = stats.bytes.load(Ordering::Relaxed);
        let mut last = stats.bytes_of(&ids);
        let windows = (cfg.duration.as_secs_f64() / cfg.window.as_secs_f64())
            .round()
            .max(1.0) as usize;
        let probe_every = if cfg.probes > 0 && kind.is_mux() && streams > 1 {
            (windows / cfg.probes).max(1)
        } else {
            usize::MAX
        };
        let mut pending_probes = Vec::new();
        for w in 0..windows {
            if w % probe_every == probe_every / 2 && pending_probes.len() < cfg.probes {
                let (tx, rx) = tokio::sync::oneshot::channel();
                if probes.send(tx).is_ok() {
                    pending_probes.push(rx);
                }
            }
            tokio::time::sleep_until((t0 + cfg.window * (w as u32 + 1)).into()).await;
            let now = stats.bytes_of(&ids);
            if ids.len() > 1 {
                let delta: Vec<u64> = now.iter().zip(&last).map(|(a, b)| a - b).collect();
                let total: u64 = delta.iter().sum();
                if total > 0 {
                    let fair = total as f64 / ids.len() as f64;
                    let min = delta.iter().copied().min().unwrap_or(0) as f64 / fair;
                    if min < 0.5 && std::env::var_os("WISP_BENCH_DEBUG").is_some() {
                        eprintln!(
                            "window {w}: per-stream KiB {:?}",
                            delta.iter().map(|d| d / 1024).collect::<Vec<_>>()
                        );
                    }
                    result.window_min_share.push(min);
                }
            }
            last = now;
        }
        let elapsed = t0.elapsed().as_secs_f64();
        let bytes1 = stats.bytes.load(Ordering::Relaxed);
        result.client_cpu = (thread_cpu_secs("bench-client") - cpu0.0) / elapsed;
        let machine1 = machine_and_own_cpu_secs();
        result.foreign_cpu =
            ((machine1.0 - machine0.0) - (machine1.1 - machine0.1)).max(0.0) / elapsed;
        result.server_cpu = (thread_cpu_secs("bench-server") - cpu0.1) / elapsed;
        result.mib_s = (bytes1 - bytes0) as f64 / elapsed / (1024.0 * 1024.0);

        // Probe results: each answer gives the id and the call time; the server reports
        // when the probe's first DATA arrived.
        let mut started = Vec::new();
        for rx in pending_probes {
            match tokio::time::timeout(cfg.probe_timeout, rx).await {
                Ok(Ok(Ok((id, t, answered)))) => started.push((id, t, answered)),
                Ok(Ok(Err(e))) => {
                    result.failures.push(format!("probe open failed: {e}"));
                    result.probe_ms.push(None);
                }
                _ => result.probe_ms.push(None),
            }
        }
        let mut seen = BTreeMap::new();
        for &(id, t, answered) in &started {
            result
                .probe_open_call_ms
                .push((answered - t).as_secs_f64() * 1e3);
            let deadline = t + cfg.probe_timeout;
            while !seen.contains_key(&id) {
                match tokio::time::timeout_at(deadline.into(), reg.probes.recv()).await {
                    Ok(Some(p)) => {
                        seen.insert(p.id, p);
                    }
                    _ => break,
                }
            }
            result
                .probe_ms
                .push(seen.get(&id).map(|p| (p.data_at - t).as_secs_f64() * 1e3));
        }

        // Stop, then the loss check: every payload a writer completed must arrive while
        // the connection is still open.
        stop.stop();
        let sent = match tokio::time::timeout(cfg.drain_timeout, sent).await {
            Ok(Ok(sent)) => sent,
            _ => {
                let why = match tokio::time::timeout(Duration::from_secs(1), done).await {
                    Ok(Ok(Err(e))) => format!("client failed: {e}"),
                    other => format!("client did not stop within the drain bound: {other:?}"),
                };
                result.failures.push(why);
                return;
            }
        };
        let deadline = Instant::now() + cfg.drain_timeout;
        loop {
            let missing: u64 = sent
                .iter()
                .map(|&(id, n)| n.saturating_sub(stats.packets_of(id)))
                .sum();
            if missing == 0 {
                break;
            }
            if Instant::now() > deadline || stats.ended.load(Ordering::Acquire) {
                result.lost = missing;
                result
                    .failures
                    .push(format!("{missing} payloads sent but never received"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let extra: u64 = sent
            .iter()
            .map(|&(id, n)| stats.packets_of(id).saturating_sub(n))
            .sum();
        if extra > 0 {
            result.failures.push(format!(
                "{extra} payloads received that no writer completed"
            ));
        }
        let _ = release.send(());
        match tokio::time::timeout(cfg.close_timeout, done).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => result.failures.push(format!("client failed: {e}")),
            other => result.close_note = Some(format!("closing did not finish: {other:?}")),
        }
        // Wait for the connection to end so its CLOSEs are checked too.
        let end = Instant::now() + Duration::from_secs(10);
        while !stats.ended.load(Ordering::Acquire) && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if let Some(e) = stats
            .transport_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            result.transport_end = Some(e);
        }
        result.errors = stats.errors.load(Ordering::Relaxed);
        if result.errors > 0 {
            let log = stats.error_log.lock().unwrap_or_else(|e| e.into_inner());
            result
                .failures
                .push(format!("server integrity errors: {:?}", *log));
        }
    });
    result
}

/// Everything one benchmark invocation measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Throughput runs, in the order they ran.
    pub runs: Vec<RunResult>,
    /// Idle-stream measurements, one per client.
    pub idle: Vec<idle::IdleResult>,
    /// Failures of idle children.
    pub idle_failures: Vec<String>,
    /// Per-stream credit the server granted.
    pub buffer: u32,
    /// Seconds the whole invocation took.
    pub wall_secs: f64,
}

impl Report {
    /// Every correctness failure: loss, integrity errors, run failures, failed probes and
    /// failed idle children.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.runs {
            for f in &r.failures {
                out.push(format!("{} x{} {} B: {f}", r.client, r.streams, r.size));
            }
            let failed_probes = r.probe_ms.iter().filter(|p| p.is_none()).count();
            // A probe that never arrives is a defect of the client, not of the bench:
            // reported in the table, and a failure only for our own client.
            if failed_probes > 0 && r.client == Kind::Ours.name() {
                out.push(format!(
                    "{} x{} {} B: {failed_probes} probe streams never delivered",
                    r.client, r.streams, r.size
                ));
            }
        }
        out.extend(self.idle_failures.iter().cloned());
        out
    }
}

/// A run's CPU time per MiB delivered, client and server threads: unlike the throughput,
/// it hardly moves when other processes take the cores, so runs on a busy machine can still
/// be compared by it.
fn cpu_per_mib(r: &RunResult) -> String {
    let per = |cpu: f64| {
        if r.mib_s > 0.0 {
            cpu * 1000.0 / r.mib_s
        } else {
            f64::NAN
        }
    };
    format!(
        "CPU ms/MiB client {:.3} server {:.3}",
        per(r.client_cpu),
        per(r.server_cpu)
    )
}

/// Runs the throughput series in this process and the idle measurements in child
/// processes (`exe` is this binary, re-executed with `--idle-child`).
pub fn run(cfg: &Config, exe: Option<&std::path::Path>) -> Result<Report, String> {
    let start = Instant::now();
    let rts = Runtimes::new(cfg.runtime).map_err(|e| e.to_string())?;
    let server = rts
        .server_rt(cfg.runtime)
        .block_on(Server::start(cfg.buffer))
        .map_err(|e| e.to_string())?;
    let mut runs = Vec::new();
    let mut n = 0;
    for &streams in &cfg.streams {
        for &size in &cfg.sizes {
            for run in 0..cfg.runs {
                for &kind in &cfg.clients {
                    // Raw has no streams: it runs once per size, in the first series.
                    if !kind.is_mux() && streams != cfg.streams[0] {
                        continue;
                    }
                    // On a shared machine another process can take a core mid-run; such a
                    // run is repeated (up to `max_retries` times), and the count is kept.
                    let mut disturbed = 0;
                    let r = loop {
                        n += 1;
                        let token = format!("run{n}");
                        let mut r = run_once(&rts, cfg, &server, kind, streams, size, &token);
                        r.disturbed_attempts = disturbed;
                        if r.foreign_cpu <= cfg.max_foreign_cpu
                            || disturbed >= cfg.max_retries
                            || !r.failures.is_empty()
                        {
                            break r;
                        }
                        eprintln!(
                            "[{:>6.1}s] {} streams={streams} size={size}: other processes used {:.2} cores, repeating ({})",
                            start.elapsed().as_secs_f64(),
                            r.client,
                            r.foreign_cpu,
                            cpu_per_mib(&r)
                        );
                        disturbed += 1;
                    };
                    eprintln!(
                        "[{:>6.1}s] {:<8} streams={:<3} size={:<6} run={} {:>8.1} MiB/s cpu client {:.2} server {:.2} others {:.2} ({}){}{}{}",
                        start.elapsed().as_secs_f64(),
                        r.client,
                        streams,
                        size,
                        run + 1,
                        r.mib_s,
                        r.client_cpu,
                        r.server_cpu,
                        r.foreign_cpu,
                        cpu_per_mib(&r),
                        if r.window_min_share.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " min-share={:.2}",
                                r.window_min_share
                                    .iter()
                                    .copied()
                                    .fold(f64::INFINITY, f64::min)
                            )
                        },
                        if r.failures.is_empty() {
                            String::new()
                        } else {
                            format!(" FAILURES: {:?}", r.failures)
                        },
                        r.stall_note
                            .as_deref()
                            .map(|n| format!(" STALLED (a defect of this client): {n}"))
                            .unwrap_or_default()
                    );
                    runs.push(r);
                }
            }
        }
    }
    drop(server);
    drop(rts);
    let mut idle = Vec::new();
    let mut idle_failures = Vec::new();
    if cfg.idle_streams > 0 {
        let mut kinds = vec![Kind::Raw];
        kinds.extend(cfg.clients.iter().copied().filter(|k| k.is_mux()));
        for kind in kinds {
            match idle_in_child(exe, kind, cfg) {
                Ok(r) => {
                    eprintln!(
                        "[{:>6.1}s] idle {:<8} {} streams: {:.0} opens/s, {:.0} B/stream",
                        start.elapsed().as_secs_f64(),
                        r.client,
                        r.streams,
                        r.opens_per_sec(),
                        r.bytes_per_stream()
                    );
                    idle.push(r);
                }
                Err(e) => idle_failures.push(format!("idle {}: {e}", kind.name())),
            }
        }
    }
    Ok(Report {
        runs,
        idle,
        idle_failures,
        buffer: cfg.buffer,
        wall_secs: start.elapsed().as_secs_f64(),
    })
}

fn idle_in_child(
    exe: Option<&std::path::Path>,
    kind: Kind,
    cfg: &Config,
) -> Result<idle::IdleResult, String> {
    let exe = match exe {
        Some(e) => e.to_owned(),
        None => std::env::current_exe().map_err(|e| e.to_string())?,
    };
    let out = std::process::Command::new(exe)
        .arg("--idle-child")
        .arg(kind.name())
        .arg("--idle-streams")
        .arg(cfg.idle_streams.to_string())
        .arg("--runtime")
        .arg(match cfg.runtime {
            RuntimeMode::Split => "split",
            RuntimeMode::Shared => "shared",
        })
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "child exited with {}: {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| format!("no result from child: {stdout}"))?;
    serde_json::from_str(line).map_err(|e| e.to_string())
}
