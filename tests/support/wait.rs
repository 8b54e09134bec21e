//! Bounded waits shared by the integration test binaries (included with
//! `#[path = "../support/wait.rs"] mod wait;`): no test waits forever.

#![allow(dead_code)]

use crossbeam_channel::Receiver;
use std::time::{Duration, Instant};

/// How long any single wait may take before the test fails.
pub const LIMIT: Duration = Duration::from_secs(10);

/// The next value, or a failed test after [`LIMIT`].
pub fn recv<T>(rx: &Receiver<T>) -> T {
    rx.recv_timeout(LIMIT)
        .unwrap_or_else(|_| panic!("nothing arrived within {LIMIT:?}"))
}

/// Asserts that nothing arrives within `ms` milliseconds.
pub fn nothing<T: std::fmt::Debug>(rx: &Receiver<T>, ms: u64) {
    if let Ok(v) = rx.recv_timeout(Duration::from_millis(ms)) {
        panic!("unexpected arrival: {v:?}");
    }
}

/// Waits until `cond` holds (at most [`LIMIT`]).
pub fn eventually(mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < end, "condition not met within {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}
