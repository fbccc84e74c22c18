//! `wisp-bench`: runs the comparison and prints a Markdown report.
//!
//! ```text
//! cargo run -p wisp-bench --release                # the full benchmark (about 3 minutes)
//! cargo run -p wisp-bench --release -- --smoke     # the CI correctness smoke (seconds)
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use wisp_bench::clients::Kind;
use wisp_bench::{Config, RuntimeMode};

/// Benchmarks wisp-client against wisp-mux 5.1.0 and raw tokio-websockets.
#[derive(Parser, Debug)]
#[command(name = "wisp-bench")]
struct Args {
    /// Short correctness run for CI: exits non-zero on any loss, reordering, corruption or
    /// failed run; timings are not checked.
    #[arg(long)]
    smoke: bool,
    /// Clients, comma-separated (ours, wisp-mux, raw-best, raw, raw-default).
    #[arg(long, value_delimiter = ',')]
    clients: Option<Vec<String>>,
    /// Stream-count series, comma-separated.
    #[arg(long, value_delimiter = ',')]
    streams: Option<Vec<usize>>,
    /// Payload lengths in bytes, comma-separated.
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// Runs per (client, streams, size).
    #[arg(long)]
    runs: Option<usize>,
    /// Measured seconds per run.
    #[arg(long)]
    duration: Option<f64>,
    /// Fairness window in milliseconds.
    #[arg(long)]
    window_ms: Option<u64>,
    /// Probe streams per multi-stream run.
    #[arg(long)]
    probes: Option<usize>,
    /// Per-stream credit the server grants (packets).
    #[arg(long)]
    buffer: Option<u32>,
    /// Idle streams for the memory and open-rate measurement (0 skips it).
    #[arg(long)]
    idle_streams: Option<usize>,
    /// Runtime arrangement: split (one 1-worker runtime per side) or shared (one 2-worker).
    #[arg(long)]
    runtime: Option<String>,
    /// Also write the raw results as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Internal: run the idle-stream measurement for one client and print it as JSON.
    #[arg(long, hide = true)]
    idle_child: Option<String>,
    /// Instruction counts instead of the wall-clock bench: runs every scenario under
    /// valgrind's callgrind, prints the table and fails when ours' instructions per MiB
    /// exceed the committed figures by more than 5 % (WISP_BENCH_UPDATE=1 rewrites them).
    #[arg(long)]
    instructions: bool,
    /// MiB of payload measured per instruction-count scenario.
    #[arg(long, default_value_t = 8.0)]
    instr_mib: f64,
    /// Runs per instruction-count scenario.
    #[arg(long, default_value_t = 1)]
    instr_runs: usize,
    /// The committed instruction-count figures.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/instructions.json"))]
    instr_file: std::path::PathBuf,
    /// Internal: run one instruction-count scenario (client:streams:size:per_round).
    #[arg(long, hide = true)]
    instr_child: Option<String>,
    /// Internal: the binary that serves the instruction-count client.
    #[arg(long, hide = true)]
    instr_server_exe: Option<std::path::PathBuf>,
    /// Internal: run the instruction-count sink server until standard input closes.
    #[arg(long, hide = true)]
    instr_server: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.instr_server {
        return exit(wisp_bench::instr::serve_sink().map(|()| true));
    }
    if let Some(spec) = &args.instr_child {
        let Some(spec) = wisp_bench::instr::ChildSpec::parse(spec) else {
            eprintln!("bad --instr-child {spec:?}");
            return ExitCode::from(2);
        };
        let server = match &args.instr_server_exe {
            Some(p) => p.clone(),
            None => match std::env::current_exe() {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            },
        };
        return exit(wisp_bench::instr::run_child(spec, &server).map(|r| {
            println!("{}", serde_json::to_string(&r).unwrap_or_default());
            true
        }));
    }
    if args.instructions {
        let exe = match std::env::current_exe() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        if cfg!(debug_assertions) {
            eprintln!(
                "note: a debug build; the committed figures are of a release build (--release)"
            );
        }
        let opts = wisp_bench::instr::GateOptions {
            exe,
            file: args.instr_file.clone(),
            mib: args.instr_mib.max(0.01),
            runs: args.instr_runs.max(1),
            update: std::env::var("WISP_BENCH_UPDATE").is_ok_and(|v| v == "1"),
        };
        return exit(wisp_bench::instr::gate(&opts));
    }
    let mut cfg = if args.smoke {
        Config::smoke()
    } else {
        Config::full()
    };
    if let Some(rt) = &args.runtime {
        cfg.runtime = match rt.as_str() {
            "split" => RuntimeMode::Split,
            "shared" => RuntimeMode::Shared,
            other => {
                eprintln!("unknown runtime {other:?} (split, shared)");
                return ExitCode::from(2);
            }
        };
    }
    if let Some(n) = args.idle_streams {
        cfg.idle_streams = n;
    }

    if let Some(kind) = &args.idle_child {
        let Some(kind) = Kind::parse(kind) else {
            eprintln!("unknown client {kind:?}");
            return ExitCode::from(2);
        };
        let rts = match wisp_bench::Runtimes::new(cfg.runtime) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        return match wisp_bench::idle::run_child(kind, cfg.idle_streams, &rts, cfg.runtime) {
            Ok(r) => {
                println!("{}", serde_json::to_string(&r).unwrap_or_default());
                // Skip the runtimes' orderly shutdown: the held streams are gone already.
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }

    if let Some(clients) = &args.clients {
        let mut kinds = Vec::new();
        for c in clients {
            match Kind::parse(c) {
                Some(k) => kinds.push(k),
                None => {
                    eprintln!("unknown client {c:?} (ours, wisp-mux, raw-best, raw, raw-default)");
                    return ExitCode::from(2);
                }
            }
        }
        cfg.clients = kinds;
    }
    if let Some(s) = args.streams {
        cfg.streams = s;
    }
    if let Some(s) = args.sizes {
        if s.iter().any(|&n| !(16..=65531).contains(&n)) {
            eprintln!("payload sizes must be 16..=65531 bytes");
            return ExitCode::from(2);
        }
        cfg.sizes = s;
    }
    if let Some(r) = args.runs {
        cfg.runs = r.max(1);
    }
    if let Some(d) = args.duration {
        cfg.duration = Duration::from_secs_f64(d);
    }
    if let Some(w) = args.window_ms {
        cfg.window = Duration::from_millis(w.max(1));
    }
    if let Some(p) = args.probes {
        cfg.probes = p;
    }
    if let Some(b) = args.buffer {
        cfg.buffer = b;
    }

    eprintln!("wisp-bench: {cfg:?}");
    let report = match wisp_bench::run(&cfg, None) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("benchmark failed to start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", wisp_bench::report::markdown(&report));
    println!(
        "Machine: {}; runtime {:?}; server credit {} packets per stream; {:.0} s.",
        wisp_bench::machine(),
        cfg.runtime,
        report.buffer,
        report.wall_secs
    );
    if let Some(path) = &args.json
        && let Err(e) = std::fs::write(
            path,
            serde_json::to_string_pretty(&JsonOut {
                summary: wisp_bench::report::summary(&report),
                report: &report,
            })
            .unwrap_or_default(),
        )
    {
        eprintln!("writing {}: {e}", path.display());
    }
    let failures = report.failures();
    if failures.is_empty() {
        eprintln!("wisp-bench: no loss, no reordering, no failed run");
        ExitCode::SUCCESS
    } else {
        for f in &failures {
            eprintln!("FAILED: {f}");
        }
        ExitCode::FAILURE
    }
}

/// The JSON results: the throughput table's medians and ratios, then every run.
#[derive(serde::Serialize)]
struct JsonOut<'a> {
    summary: Vec<wisp_bench::report::SummaryRow>,
    #[serde(flatten)]
    report: &'a wisp_bench::Report,
}

/// Success, a failed check (already reported), or an error to print.
fn exit(result: Result<bool, String>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("wisp-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
