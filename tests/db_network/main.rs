//! The distributed database over the network (acceptance §1.12, §1.13,
//! §3.2): several nodes in one process on 127.0.0.1, checklist items
//! 83-101 by name. The protocol alone, on simulated networks, is tested
//! in `tests/db_protocol`.
//!
//! - `api.rs`: the `db_*`/`grp_*` API, guards, validation.
//! - `topology.rs`: globals, fail-over, splits, seeds, discovery.
//! - `process.rs`: a slave in a child process killed with SIGKILL.

mod api;
mod process;
mod topology;

use aemp::{Config, Node};
use std::time::{Duration, Instant};

/// Test timeouts: short, so losses are noticed fast.
pub const MT: Duration = Duration::from_millis(1500);
pub const WAIT: Duration = Duration::from_secs(10);

pub fn cfg(tag: &str) -> Config {
    let _ = env_logger::builder().is_test(true).try_init();
    Config::new(format!("{tag}/%u"))
        .bind("127.0.0.1:0")
        .secret("s")
        .monitor_timeout(MT)
        .connect_interval(Duration::from_millis(100))
}

pub fn addr(n: &Node) -> String {
    n.listen_addrs()[0].to_string()
}

/// A seed node (global once someone uses it).
pub fn seed() -> Node {
    Node::with_config(cfg("seed")).unwrap()
}

/// A node with the given seeds.
pub fn slave(tag: &str, seeds: &[&Node]) -> Node {
    Node::with_config(cfg(tag).seeds(seeds.iter().map(|s| addr(s)))).unwrap()
}

/// Polls `f` until it returns `Some`, or panics after [`WAIT`].
pub fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `n` has a master.
pub fn has_master(n: &Node) {
    until("a master", || n.db_master());
}
