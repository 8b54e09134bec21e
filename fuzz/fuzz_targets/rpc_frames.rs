//! The RPC channel's frame reader and payload decoders (what a parent
//! reads from a worker and a worker from its parent) must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    aemp::rpc::fuzz_frames(data);
});
