//! Nodes in child processes: this test binary re-runs itself with
//! `AEMP_NET_CHILD` set and `--ignored --exact process::child_node`, which
//! then serves as the child node until it is killed (`child_node` is
//! ignored, so a normal run never takes it for a test). With
//! `AEMP_NET_CHILD_NOFILE=N` the child first lowers its file descriptor
//! limit to N; with `AEMP_NET_CHILD_DAEMON=1` it serves until SIGINT or
//! SIGTERM (`Node::wait_for_termination`), then ends with status 0.

use super::*;
use aemp::msg;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A child node process; killed and reaped on drop.
pub struct ChildNode {
    child: Child,
    pub node: aemp::NodeId,
    pub addr: String,
    /// `[reply_port, msg...]` → `msg...` to the reply port.
    pub echo: aemp::PortId,
}

impl ChildNode {
    pub fn start() -> ChildNode {
        ChildNode::start_with(None, false)
    }

    /// A child node serving until SIGINT or SIGTERM, like a daemon.
    pub fn start_daemon() -> ChildNode {
        ChildNode::start_with(None, true)
    }

    /// A child node whose file descriptor limit is `nofile`, if given.
    fn start_with(nofile: Option<u64>, daemon: bool) -> ChildNode {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        if let Some(n) = nofile {
            cmd.env("AEMP_NET_CHILD_NOFILE", n.to_string());
        }
        if daemon {
            cmd.env("AEMP_NET_CHILD_DAEMON", "1");
        }
        let mut child = cmd
            .args([
                "--ignored",
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

    /// Stops the child (SIGSTOP) and waits until the kernel says it is
    /// stopped: from then on it runs no code (its kernel still accepts
    /// connections and buffers bytes).
    pub fn stop(&self) {
        self.signal(libc::SIGSTOP);
        let stat = format!("/proc/{}/stat", self.child.id());
        eventually(|| {
            // The state follows the command name in parentheses.
            std::fs::read_to_string(&stat).is_ok_and(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
            })
        });
    }

    /// Sends the child `signal` (e.g. `libc::SIGSTOP`).
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, signal) },
            0
        );
    }

    /// A node of this process that knows the child's address, with a
    /// sink port.
    pub fn parent(&self) -> (Node, aemp::PortId, Receiver<aemp::Message>) {
        let a = node("parent");
        a.add_address(&self.node, &self.addr).unwrap();
        let (reply, rx) = sink(&a);
        (a, reply, rx)
    }

    /// Waits (at most [`LIMIT`]) for the child to end by itself.
    pub fn exit_status(&mut self) -> std::process::ExitStatus {
        let mut status = None;
        eventually(|| {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status.unwrap()
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
#[ignore = "the child process of the tests in process.rs"]
fn child_node() {
    assert!(
        std::env::var_os("AEMP_NET_CHILD").is_some(),
        "child_node is the child process of the tests in process.rs"
    );
    if let Some(n) = std::env::var("AEMP_NET_CHILD_NOFILE")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        let lim = libc::rlimit {
            rlim_cur: n,
            rlim_max: n,
        };
        // SAFETY: setrlimit with a valid struct, for this process.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    }
    let n = node("child");
    let node = n.clone();
    let echo = n.port_fn(move |m| {
        if let Some(Ok(reply)) = m.first().map(aemp::PortId::try_from) {
            node.snd(&reply, m[1..].iter().cloned().collect());
        }
    });
    // A daemon catches the signals before it says it is ready, so that a
    // SIGTERM right after READY is not lost.
    let termination = std::env::var_os("AEMP_NET_CHILD_DAEMON")
        .is_some()
        .then(|| n.catch_termination().unwrap());
    println!("READY {} {} {}", n.id(), addr(&n), echo);
    if let Some(termination) = termination {
        let signal = termination.wait().unwrap();
        assert_eq!(signal, Some(libc::SIGTERM));
        assert!(n.is_shut_down());
        return;
    }
    // Until killed (or, as a safety net, for a minute).
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn kill_9_fires_each_monitor_once_43() {
    let mut child = ChildNode::start();
    let (a, reply, rx) = child.parent();
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

/// A node out of file descriptors keeps its listener: once descriptors are
/// free again, a client already waiting in the kernel's accept queue is
/// greeted, without another connection having to arrive first.
#[test]
fn accept_resumes_after_running_out_of_file_descriptors() {
    use std::io::Read;
    let child = ChildNode::start_with(Some(64), false);
    // More connections than the child has descriptors: it accepts until
    // EMFILE, the rest wait in its accept queue.
    let hogs: Vec<std::net::TcpStream> = (0..80)
        .map(|_| std::net::TcpStream::connect(&child.addr).unwrap())
        .collect();
    let mut waiting = std::net::TcpStream::connect(&child.addr).unwrap();
    let mut buf = [0u8; 256];
    waiting
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        waiting.read(&mut buf).is_err(),
        "greeted although the child should be out of descriptors"
    );
    drop(hogs);
    waiting.set_read_timeout(Some(LIMIT)).unwrap();
    let n = waiting
        .read(&mut buf)
        .expect("no greeting after descriptors were freed");
    assert!(
        buf[..n].starts_with(b"aemp;"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}
