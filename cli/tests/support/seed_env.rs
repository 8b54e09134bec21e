//! A temporary HOME whose rc file describes a seed on a free 127.0.0.1
//! port, for the tests that run the `aemp` binary against a network
//! (included with `#[path = "support/seed_env.rs"] mod seed_env;`, after
//! `support/run.rs` as `mod run`).

#![allow(dead_code)]

use crate::run::{aemp_command, run_bounded, Out, Proc};
use aemp::{Config, Node};
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a test waits for the network to show what it wants.
const WAIT: Duration = Duration::from_secs(10);

/// A 127.0.0.1 port nothing listens on (for now).
pub fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap().to_string();
    drop(l);
    a
}

/// A temporary HOME with an rc file: secret `s`, seeds `[seed]`, profile
/// `seed` (node ID `seed`, listening on the seed address).
pub struct Env {
    pub dir: tempfile::TempDir,
    pub rc: PathBuf,
    pub seed: String,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let rc = dir.path().join("aemp-rc");
        let seed = free_port();
        let text = json!({
            "version": 1, "secret": "s", "monitor_timeout": 5, "seeds": [seed],
            "profile": {"seed": {"nodeid": "seed", "binds": [seed]}}
        });
        std::fs::write(&rc, text.to_string()).unwrap();
        Env { dir, rc, seed }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        aemp_command(&self.rc, self.dir.path(), args)
    }

    /// Runs `aemp ARGS` to its end (killed after 30 s).
    pub fn run(&self, args: &[&str]) -> Out {
        run_bounded(self.cmd(args), Duration::from_secs(30))
    }

    /// Runs `aemp ARGS` until `good` accepts its output (at most 10 s).
    pub fn run_until(&self, args: &[&str], good: impl Fn(&Out) -> bool) -> Out {
        let start = Instant::now();
        loop {
            let out = self.run(args);
            if good(&out) {
                return out;
            }
            assert!(start.elapsed() < WAIT, "never as wanted: {out:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `aemp run profile seed`: the global node.
    pub fn seed(&self) -> Proc {
        let mut p = Proc::start(self.cmd(&["run", "profile", "seed"]));
        let line = p.line().expect("aemp run printed nothing within 10 s");
        assert_eq!(line, format!("seed listening on {}", self.seed));
        p
    }

    /// A node in this process joining through the seed.
    pub fn node(&self, tag: &str) -> Node {
        let n = Node::with_config(
            Config::new(format!("{tag}/%u"))
                .bind("127.0.0.1:0")
                .secret("s")
                .seeds([self.seed.as_str()])
                .monitor_timeout(Duration::from_secs(5)),
        )
        .unwrap();
        let start = Instant::now();
        while n.db_master().map(|m| m.to_string()) != Some("seed".into()) {
            assert!(start.elapsed() < WAIT, "{} found no master", n.id());
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    }
}
