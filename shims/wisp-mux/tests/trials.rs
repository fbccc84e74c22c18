//! The way a Rust client's own crate embeds the suite: the published wisp-mux 5.1.0
//! client in process, through the `ClientUnderTest` trait, as one libtest trial per
//! client-role case, each judged against the committed baseline
//! (`harness/baselines/clients/wisp-mux-5.1.0.yaml`).
//!
//! ```text
//! cargo test -p shim-wisp-mux --test trials                  # every case
//! cargo test -p shim-wisp-mux --test trials -- handshake.    # an ID prefix
//! ```

use std::path::Path;
use std::sync::Arc;

use libtest_mimic::Arguments;
use shim_wisp_mux::WispMuxClient;
use wisp_harness::ClientSubject;
use wisp_harness::shim::client_trials;

fn main() {
    let mut args = Arguments::from_args();
    // Most cases wait on the network, not the CPU.
    args.test_threads.get_or_insert(16);
    let baseline = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../harness/baselines/clients/wisp-mux-5.1.0.yaml");
    let subject = ClientSubject::new(Arc::new(WispMuxClient), "in process");
    let trials = match client_trials(subject, Some(&baseline)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    libtest_mimic::run(&args, trials).exit();
}
