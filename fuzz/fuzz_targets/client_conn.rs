//! Fuzz target `client_conn`: see `wisp_fuzz::client_conn` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wisp_fuzz::client_conn::run(data));
