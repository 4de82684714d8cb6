//! Arbitrary bytes as everything a server sends: start-up and authentication, then a
//! scripted session of simple and extended queries, COPY, errors, notifications and
//! transactions (see `pglite_client_fuzz_harness::session`). Nothing may panic, hang
//! or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pglite_client_fuzz_harness::replay_session(data);
});
