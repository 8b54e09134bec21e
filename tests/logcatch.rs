//! Gathered logs (`aemp::logcatch`) across processes: this test binary
//! re-runs itself with `AEMP_LC_CHILD` set and `--ignored --exact child`
//! as a caught node (logging a tick every 20 ms) or as a catcher (a
//! global node printing each record it catches as a `CAUGHT` line).
//! Children are killed and reaped on drop.

#[path = "support/wait.rs"]
mod wait;

use aemp::logcatch::{self, Caught};
use aemp::{Config, Node, NodeId};
use crossbeam_channel::Receiver;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};
use wait::{eventually, LIMIT};

fn cfg(id: &str) -> Config {
    Config::new(id)
        .bind("127.0.0.1:0")
        .secret("lc")
        .monitor_timeout(Duration::from_secs(3))
        .connect_interval(Duration::from_millis(200))
}

fn addr(n: &Node) -> String {
    n.listen_addrs()[0].to_string()
}

/// A global node of its own (its address is its seed).
fn global(id: &str) -> Node {
    global_with(cfg(id))
}

fn global_with(cfg: Config) -> Node {
    let n = Node::with_config(cfg).unwrap();
    n.add_seed(&addr(&n)).unwrap();
    n
}

/// The tests where this process is caught take turns: the records of the
/// whole process go to every catcher of it, and one test's burst would
/// fill the others' queues.
fn caught_alone() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// The forwarding logger for this process (no local output).
fn install_forwarder() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| logcatch::install(None, log::LevelFilter::Off).unwrap());
}

/// Waits up to `limit` for a value satisfying `f`, skipping others.
fn wait_for<T: std::fmt::Debug>(
    rx: &Receiver<T>,
    limit: Duration,
    mut f: impl FnMut(&T) -> bool,
) -> T {
    let end = Instant::now() + limit;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(v) if f(&v) => return v,
            Ok(_) => {}
            Err(_) => panic!("nothing matching arrived within {limit:?}"),
        }
    }
}

/// A child process: a caught node or a catcher.
struct ChildNode {
    child: Child,
    node: NodeId,
    addr: String,
    /// Its output lines after `READY`.
    lines: Receiver<String>,
}

impl ChildNode {
    /// A caught node (`id` may use `%u`) seeded at `seed`, logging
    /// `tick TOKEN N` (warn, target `lc_test`) every 20 ms.
    fn caught(id: &str, seed: &str, token: &str) -> ChildNode {
        ChildNode::start(&[
            ("AEMP_LC_CHILD", "caught"),
            ("AEMP_LC_ID", id),
            ("AEMP_LC_SEED", seed),
            ("AEMP_LC_TOKEN", token),
        ])
    }

    /// A global node catching everything (level 9).
    fn catcher() -> ChildNode {
        ChildNode::start(&[("AEMP_LC_CHILD", "catcher")])
    }

    fn start(env: &[(&str, &str)]) -> ChildNode {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--ignored",
            "--exact",
            "child",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                // libtest prints the test name on the same line first.
                let at = ["READY ", "CAUGHT "]
                    .iter()
                    .filter_map(|k| line.find(k))
                    .min();
                if let Some(at) = at {
                    if tx.send(line[at..].to_string()).is_err() {
                        return;
                    }
                }
            }
        });
        let ready = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the child node did not start");
        let parts: Vec<&str> = ready.split(' ').collect();
        assert_eq!(parts[0], "READY", "{ready}");
        ChildNode {
            child,
            node: parts[1].parse().unwrap(),
            addr: parts[2].to_string(),
            lines,
        }
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, signal) },
            0
        );
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too.
        self.kill9();
    }
}

/// The child process (see the file's notes); not a test of its own.
#[test]
#[ignore = "the child process of the tests in this file"]
fn child() {
    let role = std::env::var("AEMP_LC_CHILD").expect("run by the tests of this file");
    let say = |line: String| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    if role == "catcher" {
        // A long tick: resumed after a long SIGSTOP, it must not take its
        // silent peers for dead.
        let n = global_with(cfg("lc-catcher/%u").tick(Duration::from_secs(120)));
        logcatch::catch_with(&n, Some(9), move |c: Caught| {
            let text: String = c.text.chars().take(80).collect();
            say(format!(
                "CAUGHT {} {} {} {}",
                c.node, c.level, c.context, text
            ));
        })
        .unwrap();
        println!("READY {} {}", n.id(), addr(&n));
        std::thread::sleep(Duration::from_secs(120));
        return;
    }
    install_forwarder();
    let var = |k: &str| std::env::var(k).unwrap();
    let n = Node::with_config(cfg(&var("AEMP_LC_ID")).seeds([var("AEMP_LC_SEED")])).unwrap();
    println!("READY {} {}", n.id(), addr(&n));
    let token = var("AEMP_LC_TOKEN");
    for i in 0..6000 {
        log::warn!(target: "lc_test", "tick {token} {i}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The records caught by `node` (at `level`), into a channel.
fn catch_into(node: &Node, level: u8) -> Receiver<Caught> {
    let (tx, rx) = crossbeam_channel::unbounded();
    logcatch::catch_with(node, Some(level), move |c| {
        let _ = tx.send(c);
    })
    .unwrap();
    rx
}

#[test]
fn a_catcher_shows_the_records_of_three_node_processes() {
    let seed = global("lc-seed/%u");
    let caught = catch_into(&seed, 7);
    let children: Vec<ChildNode> = ["one", "two", "three"]
        .iter()
        .map(|t| ChildNode::caught("lc-child/%u", &addr(&seed), t))
        .collect();
    let mut missing: Vec<(NodeId, String)> = children
        .iter()
        .zip(["one", "two", "three"])
        .map(|(c, t)| (c.node.clone(), format!("tick {t} ")))
        .collect();
    let end = Instant::now() + 3 * LIMIT;
    while !missing.is_empty() {
        let left = end.saturating_duration_since(Instant::now());
        let c = caught
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no records from {missing:?}"));
        assert_ne!(c.node, seed.id().as_str(), "a catcher never catches itself");
        if let Some(i) = missing
            .iter()
            .position(|(n, t)| c.node == n.as_str() && c.text.starts_with(t.as_str()))
        {
            assert_eq!((c.level, c.context.as_str()), (5, "lc_test"), "{c:?}");
            assert!(
                c.line().starts_with(&format!("[{}", c.node)),
                "{}",
                c.line()
            );
            missing.remove(i);
        }
    }
    logcatch::catch(&seed, None).unwrap();
}

#[test]
fn a_node_that_dies_and_comes_back_is_caught_again() {
    let seed = global("lc-seed/%u");
    let caught = catch_into(&seed, 9);
    let id = format!("lc-back-{}", std::process::id());
    let mut first = ChildNode::caught(&id, &addr(&seed), "first");
    wait_for(&caught, 3 * LIMIT, |c| {
        c.node == id && c.text.starts_with("tick first ")
    });
    first.kill9();
    let _second = ChildNode::caught(&id, &addr(&seed), "second");
    wait_for(&caught, 3 * LIMIT, |c| {
        c.node == id && c.text.starts_with("tick second ")
    });
}

/// A node of this process caught by `catcher`; waits until the sink is
/// attached. The tick is long: the stalled-catcher test must not see
/// the catcher declared dead.
fn caught_by(catcher: &ChildNode) -> Node {
    install_forwarder();
    let n = Node::with_config(
        cfg("lc-parent/%u")
            .seeds([catcher.addr.clone()])
            .tick(Duration::from_secs(120)),
    )
    .unwrap();
    eventually(|| sink_of(catcher).is_some());
    n
}

fn sink_of(catcher: &ChildNode) -> Option<logcatch::SinkStats> {
    logcatch::sinks()
        .into_iter()
        .find(|s| s.port.node() == catcher.node.as_str())
}

#[test]
fn a_catcher_that_dies_detaches_its_sinks() {
    let _turn = caught_alone();
    let mut catcher = ChildNode::catcher();
    let _node = caught_by(&catcher);
    log::warn!(target: "lc_detach", "hello detach");
    wait_for(&catcher.lines, 3 * LIMIT, |l| l.contains("hello detach"));
    catcher.kill9();
    eventually(|| sink_of(&catcher).is_none());
}

#[test]
fn a_stalled_catcher_costs_dropped_records_that_are_counted_and_reported() {
    let _turn = caught_alone();
    let catcher = ChildNode::catcher();
    let _node = caught_by(&catcher);
    log::warn!(target: "lc_stall", "hello stall");
    wait_for(&catcher.lines, 3 * LIMIT, |l| l.contains("hello stall"));
    catcher.signal(libc::SIGSTOP);
    // Log until the catcher's queue overflows: the loopback buffers and
    // the connection's high water fill first. Each call returns at once
    // (a blocked call would hang here, and fail the time limit).
    let pad = "x".repeat(1000);
    let end = Instant::now() + 3 * LIMIT;
    let mut n = 0u64;
    while sink_of(&catcher).is_some_and(|s| s.dropped == 0) {
        for _ in 0..1000 {
            log::warn!(target: "lc_stall", "burst {n} {pad}");
            n += 1;
        }
        assert!(Instant::now() < end, "no record dropped after {n} records");
    }
    let stats = sink_of(&catcher).expect("still attached");
    assert!(stats.dropped > 0 && logcatch::dropped() >= stats.dropped);
    catcher.signal(libc::SIGCONT);
    let line = wait_for(&catcher.lines, 6 * LIMIT, |l| {
        l.contains("log records dropped")
    });
    // "CAUGHT NODE 5 aemp::logcatch N log records dropped: ..."
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(words[2..4], ["5", "aemp::logcatch"], "{line}");
    let reported: u64 = words[4].parse().unwrap();
    assert!(reported > 0 && reported <= logcatch::dropped(), "{line}");
}

#[test]
fn a_catcher_of_two_nodes_of_one_process_gets_each_record_once() {
    let _turn = caught_alone();
    let catcher = ChildNode::catcher();
    install_forwarder();
    let twin = || {
        Node::with_config(
            cfg("lc-twin/%u")
                .seeds([catcher.addr.clone()])
                .tick(Duration::from_secs(120)),
        )
        .unwrap()
    };
    let (a, _b) = (twin(), twin());
    let of_catcher = || -> Vec<logcatch::SinkStats> {
        logcatch::sinks()
            .into_iter()
            .filter(|s| s.port.node() == catcher.node.as_str())
            .collect()
    };
    eventually(|| of_catcher().len() == 2);
    let sinks = of_catcher();
    assert_eq!(sinks.iter().filter(|s| s.active).count(), 1, "{sinks:?}");
    log::warn!(target: "lc_twin", "twin one");
    wait_for(&catcher.lines, 3 * LIMIT, |l| l.contains("twin one"));
    let standby = of_catcher().into_iter().find(|s| !s.active).unwrap();
    assert_eq!(standby.forwarded, 0, "only the active sink sends");
    // One node leaves: the other's sink is (or becomes) the active one.
    a.shutdown();
    eventually(|| {
        let s = of_catcher();
        s.len() == 1 && s[0].active
    });
    log::warn!(target: "lc_twin", "twin two");
    wait_for(&catcher.lines, 3 * LIMIT, |l| l.contains("twin two"));
}
