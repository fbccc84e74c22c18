//! The published wisp-mux 5.1.0 client matches its committed baseline
//! (`harness/baselines/clients/wisp-mux-5.1.0.yaml`), driven as a shim process and, the
//! way a Rust project embeds the suite in its own `cargo test`, in process through the
//! `ClientUnderTest` trait.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use shim_wisp_mux::WispMuxClient;
use wisp_harness::ClientSubject;
use wisp_harness::shim::assert_client_baseline;

fn baseline() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../harness/baselines/clients/wisp-mux-5.1.0.yaml")
}

#[test]
fn the_shim_process_matches_the_baseline() {
    let subject = ClientSubject::shim(env!("CARGO_BIN_EXE_shim-wisp-mux"));
    if let Err(e) = assert_client_baseline(subject, &baseline(), 16) {
        panic!("{e}");
    }
}

#[test]
fn the_trait_in_process_matches_the_baseline() {
    let subject = ClientSubject::new(Arc::new(WispMuxClient), "in process");
    if let Err(e) = assert_client_baseline(subject, &baseline(), 16) {
        panic!("{e}");
    }
}
