//! `wisp-mock-server --scenario FILE [--listen 127.0.0.1:0]`: serves one scenario's server
//! script to the first client that connects (any Wisp client, for testing by hand), then
//! prints the verdict of the script and the decoded trace.
//!
//! Exit codes: 0 the script held, 1 a step failed, 2 the scenario could not be loaded or
//! the socket could not be bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use wisp_cases::{Case, load_case};
use wisp_mock_server::replay::{MockServer, Script};

/// Serve one Wisp conformance scenario to a client.
#[derive(Debug, Parser)]
#[command(name = "wisp-mock-server", version, about)]
struct Args {
    /// The case file (cases/<topic>/NAME.yaml).
    #[arg(long)]
    scenario: PathBuf,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The cases directory (key paths are relative to it; default: two levels above the
    /// scenario file).
    #[arg(long)]
    cases: Option<PathBuf>,
    /// How long to keep recording after the script ends, waiting for the client to close.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    linger: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    wisp_cases::values::Dur::parse(s).map(|d| d.0)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let root = args.cases.clone().unwrap_or_else(|| {
        args.scenario
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    });
    let case = match load_case(&root, &args.scenario) {
        Ok(Case::Client(c)) => c,
        Ok(Case::Server(s)) => {
            eprintln!(
                "error: {} is a server-role case: the harness plays it against a server (`wisp-conformance server URL`)",
                s.meta.id
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        let server = match MockServer::bind(args.listen, Script::from_case(&case)).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", args.listen);
                return ExitCode::from(2);
            }
        };
        match server.url() {
            Ok(url) => println!(
                "case {}: {}\nlistening on {url}",
                case.meta.id, case.meta.title
            ),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
        let trace = server.trace();
        let outcome = server.run(tokio::time::Instant::now()).await;
        if let Some(idle) = outcome.idle {
            let _ = tokio::time::timeout(args.linger, idle).await;
        }
        let rendered = trace.lock().map(|t| t.render()).unwrap_or_default();
        println!("\n{rendered}");
        match outcome.result {
            Ok(()) => {
                println!("verdict: OK (the server script held; check the client side yourself)");
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("verdict: FAILED: {e}");
                ExitCode::from(1)
            }
        }
    })
}
