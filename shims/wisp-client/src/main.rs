//! `shim-wisp-client`: this workspace's client under the shim protocol (harness/SHIM.md).
//!
//! ```text
//! wisp-conformance client --shim target/debug/shim-wisp-client
//! ```

fn main() -> std::process::ExitCode {
    wisp_harness::shim::serve_stdio(&shim_wisp_client::OurClient)
}
