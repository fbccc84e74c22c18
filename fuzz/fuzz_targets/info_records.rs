//! Fuzz target `info_records`: see `wisp_fuzz::info_records` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wisp_fuzz::info_records::run(data));
