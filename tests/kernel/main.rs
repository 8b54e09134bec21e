//! The local kernel against the behaviour checklist (acceptance.md §8):
//! each test is named with its item number.

mod lifecycle;
mod monitors;
mod node_port;
mod ports;
mod spawn_cal;
mod stress;
mod threads;

#[path = "../support/wait.rs"]
mod wait;
pub use wait::{eventually, nothing, recv};

use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh node with a unique ID.
pub fn node() -> aemp::Node {
    static N: AtomicUsize = AtomicUsize::new(0);
    aemp::Node::new(format!("test/{}", N.fetch_add(1, Ordering::Relaxed))).unwrap()
}
