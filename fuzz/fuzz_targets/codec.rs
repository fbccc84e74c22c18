//! Fuzz target `codec`: see `wisp_fuzz::codec` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wisp_fuzz::codec::run(data));
