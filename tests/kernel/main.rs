//! The local kernel against the behaviour checklist (acceptance.md §8):
//! each test is named with its item number.

mod monitors;
mod node_port;
mod ports;
mod spawn_cal;
mod stress;
mod threads;

use crossbeam_channel::Receiver;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A fresh node with a unique ID.
pub fn node() -> aemp::Node {
    static N: AtomicUsize = AtomicUsize::new(0);
    aemp::Node::new(format!("test/{}", N.fetch_add(1, Ordering::Relaxed))).unwrap()
}

/// The next value, or a failed test after 5 s.
pub fn recv<T>(rx: &Receiver<T>) -> T {
    rx.recv_timeout(Duration::from_secs(5))
        .expect("nothing arrived within 5 s")
}

/// Asserts that nothing arrives within `ms` milliseconds.
pub fn nothing<T: std::fmt::Debug>(rx: &Receiver<T>, ms: u64) {
    if let Ok(v) = rx.recv_timeout(Duration::from_millis(ms)) {
        panic!("unexpected arrival: {v:?}");
    }
}

/// Waits until `cond` holds (at most 5 s).
pub fn eventually(mut cond: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(
            std::time::Instant::now() < end,
            "condition not met within 5 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}
