//! Fuzzes the certs-folder loader with one file replaced by the input. The first byte of an
//! input selects the file and the rest is its content. The `tumbler_fuzz` crate docs describe
//! the checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tumbler_fuzz::check_input(data));
