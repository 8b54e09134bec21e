//! `aemp log` and the log catcher service of `aemp run`
//! (AnyEvent::MP::LogCatcher), driving the real binary against an `aemp
//! run` seed (a global node) and a library node in this process that
//! logs through aemp's forwarder, all on 127.0.0.1. Every child is killed
//! and reaped; every wait is bounded.

use aemp::{Config, Node};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "support/run.rs"]
mod run;
#[path = "support/seed_env.rs"]
mod seed_env;
use run::Proc;
use seed_env::Env;

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn log_prints_the_records_of_the_networks_nodes_and_run_has_the_catch_service() {
    let env = Env::new();
    // The seed also catches everything at info and better, as a service,
    // and shows it on its stderr (AEMP_VERBOSE=7).
    let mut cmd = env.cmd(&[
        "run",
        "profile",
        "seed",
        "services",
        r#"[["AnyEvent::MP::LogCatcher::catch", 7]]"#,
    ]);
    cmd.env("AEMP_VERBOSE", "7");
    let mut seed = Proc::start(cmd);
    assert_eq!(
        seed.line().as_deref(),
        Some(format!("seed listening on {}", env.seed).as_str())
    );

    // A library node of this process, logging through the forwarder.
    aemp::logcatch::install(None, log::LevelFilter::Off).unwrap();
    let lib = Node::with_config(
        Config::new("lib/%u")
            .bind("127.0.0.1:0")
            .secret("s")
            .seeds([env.seed.as_str()]),
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let ticking = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                log::warn!(target: "cli_log", "hello from lib {i}");
                i += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    let mut logs = Proc::start(env.cmd(&["log", "info"]));
    let me = format!("[{}", lib.id());
    // The library node's records, and the seed's (an aemp run node): it
    // logs that it propagates to the new catcher.
    let (mut from_lib, mut from_seed) = (false, false);
    let end = Instant::now() + WAIT;
    while !(from_lib && from_seed) {
        let left = end.saturating_duration_since(Instant::now());
        let Some(l) = logs.line_within(left) else {
            panic!("within {WAIT:?}: from lib {from_lib}, from the seed {from_seed}");
        };
        from_lib |= l.starts_with(&me) && l.contains(" warn cli_log: hello from lib ");
        from_seed |= l.starts_with("[seed") && l.contains(" info aemp::logcatch: propagating");
    }
    assert_eq!(logs.wait(Some(libc::SIGTERM)), Some(0));
    let err = logs.stderr();
    assert!(!err.contains("panicked"), "{err}");

    stop.store(true, Ordering::Relaxed);
    ticking.join().unwrap();
    assert_eq!(seed.wait(Some(libc::SIGTERM)), Some(0));
    let err = seed.stderr();
    assert!(err.contains(&me) && err.contains("hello from lib"), "{err}");
}

#[test]
fn log_refuses_a_bad_level() {
    let env = Env::new();
    let out = env.run(&["log", "loud"]).fails(2);
    assert!(out.stderr.contains("LEVEL \"loud\""), "{out:?}");
    let out = env.run(&["log", "7", "extra"]).fails(2);
    assert!(out.stderr.contains("extra"), "{out:?}");
    let out = env.run(&["log", "--help"]).ok();
    assert!(out.stdout.contains("[NODE] LEVEL CONTEXT: TEXT"), "{out:?}");
}
