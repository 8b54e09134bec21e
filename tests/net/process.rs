//! Nodes in child processes: this test binary re-runs itself with
//! `AEMP_NET_CHILD` set, and the `child_node` test then serves as the
//! child node until it is killed.

use super::*;
use aemp::msg;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A child node process; killed and reaped on drop.
struct ChildNode {
    child: Child,
    node: aemp::NodeId,
    addr: String,
    echo: aemp::PortId,
}

impl ChildNode {
    fn start() -> ChildNode {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "process::child_node",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("AEMP_NET_CHILD", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                // libtest prints the test name on the same line first.
                if let Some(at) = line.find("READY ") {
                    let _ = tx.send(line[at + 6..].to_string());
                }
            }
        });
        let mut child = ChildNode {
            child,
            node: "none".parse().unwrap(),
            addr: String::new(),
            echo: "none#x".parse().unwrap(),
        };
        let ready = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("child node did not start");
        let parts: Vec<&str> = ready.split(' ').collect();
        child.node = parts[0].parse().unwrap();
        child.addr = parts[1].to_string();
        child.echo = parts[2].parse().unwrap();
        child
    }

    fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The child node: an echo port (`[reply_port, msg...]` → `msg...` to it).
#[test]
fn child_node() {
    if std::env::var_os("AEMP_NET_CHILD").is_none() {
        return;
    }
    let n = node("child");
    let node = n.clone();
    let echo = n.port_fn(move |m| {
        if let Some(Ok(reply)) = m.first().map(aemp::PortId::try_from) {
            node.snd(&reply, m[1..].iter().cloned().collect());
        }
    });
    println!("READY {} {} {}", n.id(), addr(&n), echo);
    // Until killed (or, as a safety net, for a minute).
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn kill_9_fires_each_monitor_once_43() {
    let mut child = ChildNode::start();
    let a = node("parent");
    a.add_address(&child.node, &child.addr).unwrap();
    let (reply, rx) = sink(&a);
    a.snd(&child.echo, msg![&reply, "hi"]);
    assert_eq!(recv(&rx), msg!["hi"]);
    let (tx, fired) = crossbeam_channel::unbounded();
    let mut guards = Vec::new();
    for (i, port) in [
        child.echo.clone(),
        child.echo.clone(),
        child.node.node_port(),
    ]
    .into_iter()
    .enumerate()
    {
        let tx = tx.clone();
        guards.push(a.mon(&port, move |r| tx.send((i, r)).unwrap()));
    }
    // Make sure the monitors are in place on the child before it dies.
    a.snd(&child.echo, msg![&reply, "sync"]);
    assert_eq!(recv(&rx), msg!["sync"]);
    child.kill9();
    let mut got: Vec<usize> = (0..3)
        .map(|_| {
            let (i, r) = recv(&fired);
            assert_eq!(r.kind(), Some("transport_error"), "{r}");
            assert_eq!(r[1], child.node.as_str());
            i
        })
        .collect();
    got.sort();
    assert_eq!(got, vec![0, 1, 2]);
    nothing(&fired, 300);
    assert_eq!(a.node_is_up(&child.node), Some(false));
}
