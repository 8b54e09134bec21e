//! A slave in a child process, killed with SIGKILL: this binary re-runs
//! itself with `AEMP_DB_CHILD=<seed address>` and `--ignored --exact
//! process::child_slave`, which then serves as that slave until it is
//! killed. `child_slave` is ignored, so a normal run never takes it for a
//! test; run alone without the variable it fails.

use super::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The child's entry point (not a test of its own; see the module docs).
#[test]
#[ignore = "the child process of killed_slave_keys_gone_within_monitor_timeout_92"]
fn child_slave() {
    let seed = std::env::var("AEMP_DB_CHILD")
        .expect("child_slave is the child of killed_slave_keys_gone_within_monitor_timeout_92");
    let n = Node::with_config(cfg("child").seeds([seed])).unwrap();
    let p = n.port();
    n.db_reg("fchild", &p).unwrap().forget();
    n.db_set("fchild", "plain", "v").unwrap().forget();
    until("registered", || {
        (n.db_keys_wait("fchild", WAIT).ok()?.len() == 2).then_some(())
    });
    println!("READY {}", n.id());
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn killed_slave_keys_gone_within_monitor_timeout_92() {
    let s = seed();
    let watcher = slave("w", &[&s]);
    let mut child = Killed(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "process::child_slave",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("AEMP_DB_CHILD", addr(&s))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = child.0.stdout.take().unwrap();
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if line.contains("READY ") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("child did not start");
    let (etx, erx) = crossbeam_channel::unbounded();
    let _g = watcher
        .db_mon("fchild", move |ev| {
            let _ = etx.send(ev.clone());
        })
        .unwrap();
    until("both keys at the watcher", || {
        (erx.recv_timeout(WAIT).ok()?.fam.len() == 2).then_some(())
    });
    let t = Instant::now();
    let _ = child.0.kill(); // SIGKILL
    let _ = child.0.wait();
    let ev = erx.recv_timeout(WAIT).expect("no deletion seen");
    let elapsed = t.elapsed();
    assert_eq!(ev.del.len(), 2, "{ev:?}");
    assert!(ev.fam.is_empty());
    assert!(elapsed <= MT, "took {elapsed:?}");
    assert!(watcher.db_keys_wait("fchild", WAIT).unwrap().is_empty());
}
