//! The published wisp-mux 5.1.0 client, driven as a shim process, matches its committed
//! baseline (`harness/baselines/clients/wisp-mux-5.1.0.yaml`). `tests/trials.rs` drives it
//! in process through the `ClientUnderTest` trait, one trial per case.

use std::path::{Path, PathBuf};

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
