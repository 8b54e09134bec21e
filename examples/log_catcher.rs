//! Gathered logs (AnyEvent::MP::LogCatcher): a catcher node receives the
//! log records of the other nodes of its network. Here both nodes live in
//! this process for the demonstration (a real network has them in
//! separate processes, e.g. `aemp run` nodes watched with `aemp log`).
//! Runs on its own and exits.
//!
//! ```text
//! cargo run --example log_catcher
//! ```

use aemp::{logcatch, Config, Node};
use std::time::{Duration, Instant};

fn main() -> aemp::Result<()> {
    // The process's logger, installed through aemp's forwarder (here with
    // no local output: `Some(Box::new(env_logger))` would keep one).
    logcatch::install(None, log::LevelFilter::Off).expect("no logger set yet");

    // The catcher is a global node (its own address is its seed) ...
    let catcher = Node::with_config(Config::new("catcher").bind("127.0.0.1:0").secret("demo"))?;
    let seed = catcher.listen_addrs()[0].to_string();
    catcher.add_seed(&seed)?;
    // ... catching every other node's records at info (7) and better.
    let (tx, rx) = crossbeam_channel::unbounded();
    logcatch::catch_with(&catcher, Some(7), move |c| {
        let _ = tx.send(c);
    })?;

    // A worker joins; the catcher finds it in the database's 'l family
    // and attaches a sink on it.
    let worker = Node::with_config(
        Config::new("worker")
            .bind("127.0.0.1:0")
            .secret("demo")
            .seeds([seed.as_str()]),
    )?;
    let end = Instant::now() + Duration::from_secs(10);
    while logcatch::sinks().is_empty() {
        assert!(Instant::now() < end, "the catcher did not connect");
        std::thread::sleep(Duration::from_millis(10));
    }

    for job in 1..=3 {
        log::warn!(target: "worker::jobs", "job {job} done");
    }
    log::debug!(target: "worker::jobs", "not wanted: below info");

    // Records of this process (the worker's sink forwards them all):
    // print the worker's jobs as the catcher received them.
    let mut jobs = 0;
    while jobs < 3 {
        let c = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a record within 10 s");
        println!(
            "{} <{}> {}",
            c.origin(),
            logcatch::level_name(c.level),
            c.text
        );
        if c.context == "worker::jobs" {
            assert!(c.text.starts_with("job "), "{c:?}");
            jobs += 1;
        }
    }
    println!("forwarded: {:?}", logcatch::sinks());

    logcatch::catch(&catcher, None)?;
    worker.shutdown();
    catcher.shutdown();
    Ok(())
}
