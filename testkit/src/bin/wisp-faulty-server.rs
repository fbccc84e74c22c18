//! `wisp-faulty-server`: a Wisp server that misbehaves on request, as a
//! process (the library's `wisp_testkit::faulty::FaultyServer`).
//!
//! Every fault of `FaultConfig` is a flag. The server prints its URL on
//! stdout once it listens and logs what it does to stderr. With
//! `--crash-on`, a matching packet makes the process exit with status 101;
//! with `--freeze-on` it stays alive but answers nothing. A conformance suite
//! can start it as `wisp-faulty-server --port {port} ...` and restart it
//! after a crash.

use std::process::ExitCode;

fn main() -> ExitCode {
    wisp_testkit::faulty::cli::main(std::env::args_os())
}
