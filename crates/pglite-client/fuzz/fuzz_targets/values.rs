//! A type selector byte and arbitrary bytes as one binary-format result value: every
//! `FromSql` conversion through `Row::try_get`, `Row::get_text` and the JSON
//! rendering (see `pglite_client_fuzz_harness::check_value`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pglite_client_fuzz_harness::check_value(data);
});
