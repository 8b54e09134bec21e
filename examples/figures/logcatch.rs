//! Gathered logs: what a log call costs on a node whose catcher stopped
//! reading (SIGSTOP), beside the same calls with no catcher.
//!
//! - `logcatch_burst_100k_ms`: 100,000 `log::info!` calls on a node caught
//!   (at level 9) by a catcher process that is stopped, its queue and the
//!   connection already full: each call finds the sink's queue full and
//!   counts a drop (the logger still formats it for its own output); it
//!   never waits.
//! - `baseline_log_burst_100k_ms`: the same calls with no catcher
//!   attached, the logger formatting each record and discarding it.
//! - `logcatch_burst_100k_dropped`: records the stalled catcher's sink
//!   dropped (and counted) during the burst.

use super::{median, start_peer, Figure, Group};
use aemp::{logcatch, Config, Node};
use std::sync::Once;
use std::time::{Duration, Instant};

const SECRET: &str = "fig-logcatch";
const BURST: u64 = 100_000;

/// The peer process: a global node catching everything, discarding it.
pub fn peer_main() {
    let node = Node::with_config(
        Config::new("fig-catcher/%u")
            .bind("127.0.0.1:0")
            .secret(SECRET),
    )
    .expect("catcher node");
    let addr = node.listen_addrs()[0].to_string();
    node.add_seed(&addr).expect("own seed");
    logcatch::catch_with(&node, Some(9), |_| {}).expect("catch");
    println!("READY {} {addr}", node.id());
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
        line.clear();
    }
}

/// A logger that formats each record and throws it away.
struct Discard;

impl log::Log for Discard {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        std::hint::black_box(record.args().to_string());
    }
    fn flush(&self) {}
}

fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        logcatch::install(Some(Box::new(Discard)), log::LevelFilter::Info)
            .expect("the figures set no other logger")
    });
}

fn burst_ms() -> f64 {
    let t = Instant::now();
    for i in 0..BURST {
        log::info!(target: "fig_burst", "record {i} of the burst, about a line of text");
    }
    t.elapsed().as_secs_f64() * 1e3
}

/// (burst ms, dropped) with a stopped catcher.
fn stalled(runs: usize) -> (f64, f64) {
    let (mut child, fields) = start_peer("--logcatch-peer");
    let catcher = fields[0].clone();
    let node = Node::with_config(
        Config::new("fig-caught/%u")
            .bind("127.0.0.1:0")
            .secret(SECRET)
            .seeds([fields[1].clone()])
            .tick(Duration::from_secs(600)),
    )
    .expect("caught node");
    let sink = || {
        logcatch::sinks()
            .into_iter()
            .find(|s| s.port.node() == catcher)
    };
    let end = Instant::now() + Duration::from_secs(20);
    while sink().is_none() {
        assert!(Instant::now() < end, "the catcher did not connect");
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGSTOP) };
    // Fill the connection and the queue first: until the sink's thread
    // no longer gets anything out (blocked on the full connection).
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let sent = sink().map_or(0, |s| s.forwarded);
        burst_ms();
        std::thread::sleep(Duration::from_millis(200));
        let s = sink().expect("the sink stays attached");
        if s.dropped > 0 && s.forwarded == sent {
            break;
        }
        assert!(Instant::now() < end, "the stopped catcher never filled up");
    }
    let before = sink().map_or(0, |s| s.dropped);
    let ms = median(runs, burst_ms);
    let dropped = (sink().map_or(0, |s| s.dropped) - before) as f64 / runs.max(1) as f64;
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
    let _ = child.kill();
    let _ = child.wait();
    node.shutdown();
    (ms, dropped)
}

pub fn groups(quick: bool) -> Vec<Group> {
    let runs = if quick { 5 } else { 11 };
    vec![Group::new("logcatch_burst", move || {
        install();
        let baseline = median(runs, burst_ms);
        let (ms, dropped) = stalled(runs);
        vec![
            Figure::new("logcatch_burst_100k_ms", ms, "ms"),
            Figure::new("baseline_log_burst_100k_ms", baseline, "ms"),
            Figure::new("logcatch_burst_100k_dropped", dropped, "records"),
        ]
    })]
}
