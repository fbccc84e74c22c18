//! Fuzz target `case_loader`: see `wisp_fuzz::case_loader` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wisp_fuzz::case_loader::run(data));
