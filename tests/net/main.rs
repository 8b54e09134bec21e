//! The network against the behaviour checklist (acceptance.md §8): nodes
//! in one process on 127.0.0.1, and child processes where one must die.
//! Each test is named with its item number: 17-19, 41-48, 55, 70-82
//! (73: self-connection only; seeds come with discovery).

mod basics;
mod lanes;
mod lifecycle;
mod liveness;
mod monitors;
mod nodes;
mod process;
mod robustness;
mod tls;

#[path = "../support/cert.rs"]
mod cert;
#[path = "../support/wait.rs"]
mod wait;
pub use wait::{eventually, nothing, recv, LIMIT};

use aemp::{Config, Node};
use crossbeam_channel::Receiver;
use std::time::Duration;

/// A config for a test node: listening on 127.0.0.1 (port from the OS),
/// secret `s`, short timeouts.
pub fn cfg(tag: &str) -> Config {
    Config::new(format!("{tag}/%u"))
        .bind("127.0.0.1:0")
        .secret("s")
        .monitor_timeout(Duration::from_secs(3))
        .connect_interval(Duration::from_millis(200))
}

/// `c` with its node ID pattern replaced.
pub fn with_id(mut c: Config, id: &str) -> Config {
    c.node_id = id.to_string();
    c
}

pub fn node(tag: &str) -> Node {
    let _ = env_logger::builder().is_test(true).try_init();
    Node::with_config(cfg(tag)).unwrap()
}

pub fn addr(n: &Node) -> String {
    n.listen_addrs()[0].to_string()
}

/// Two nodes that know each other's address.
pub fn pair() -> (Node, Node) {
    let (a, b) = (node("a"), node("b"));
    introduce(&a, &b);
    (a, b)
}

pub fn introduce(a: &Node, b: &Node) {
    a.add_address(b.id(), &addr(b)).unwrap();
    b.add_address(a.id(), &addr(a)).unwrap();
}

/// A port on `n` forwarding every message into a channel.
pub fn sink(n: &Node) -> (aemp::PortId, Receiver<aemp::Message>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let p = n.port_fn(move |m| {
        let _ = tx.send(m);
    });
    (p, rx)
}
