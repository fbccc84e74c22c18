//! Fuzz target `server_packets`: see `wisp_fuzz::server_packets` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wisp_fuzz::server_packets::run(data));
