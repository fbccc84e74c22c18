//! `shim-wisp-mux`: the published wisp-mux 5.1.0 client under the shim protocol
//! (harness/SHIM.md).
//!
//! ```text
//! wisp-conformance client --shim target/debug/shim-wisp-mux
//! ```

fn main() -> std::process::ExitCode {
    wisp_harness::shim::serve_stdio(&shim_wisp_mux::WispMuxClient)
}
