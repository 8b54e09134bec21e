//! The `aemp` tool's network commands, driving the real binary against an
//! `aemp run` child and against nodes in this process, all on 127.0.0.1
//! (acceptance.md §4.2; checklist items 111–113, and failing fast when no
//! node answers). Every child is killed and reaped; every wait is bounded.

use aemp::{Config, Message, Node, Reason};
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A temporary HOME with an rc file: secret `s`, profile `seed` (node ID
/// `seed`, listening on a dynamic port of 127.0.0.1).
struct Env {
    dir: tempfile::TempDir,
    rc: PathBuf,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let rc = dir.path().join("aemp-rc");
        std::fs::write(
            &rc,
            r#"{"version": 1, "secret": "s", "monitor_timeout": 5,
                "profile": {"seed": {"nodeid": "seed", "binds": ["127.0.0.1:0"]}}}"#,
        )
        .unwrap();
        Env { dir, rc }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        aemp_command(&self.rc, self.dir.path(), args)
    }

    /// Runs `aemp ARGS` to its end (killed after 30 s).
    fn run(&self, args: &[&str]) -> Out {
        run_bounded(self.cmd(args), Duration::from_secs(30))
    }

    /// `aemp run profile seed` (more configure arguments may follow).
    fn seed(&self, extra: &[&str]) -> RunNode {
        let mut args = vec!["run", "profile", "seed"];
        args.extend_from_slice(extra);
        RunNode::start(self.cmd(&args))
    }
}

#[path = "support/run.rs"]
mod run;
use run::{aemp_command, run_bounded, Out, Proc};

/// An `aemp run` child with the node ID and address it printed first;
/// killed and reaped on drop.
struct RunNode {
    proc: Proc,
    id: String,
    addr: String,
}

impl RunNode {
    fn start(cmd: Command) -> RunNode {
        let mut proc = Proc::start(cmd);
        let line = proc
            .line_within(Duration::from_secs(20))
            .expect("aemp run printed nothing within 20 s");
        let (id, addr) = line
            .split_once(" listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let (id, addr) = (id.to_string(), addr.split(", ").next().unwrap().to_string());
        RunNode { proc, id, addr }
    }

    /// Sends `signal` and waits for the exit code.
    fn stop(&mut self, signal: libc::c_int) -> Option<i32> {
        self.proc.wait(Some(signal))
    }

    /// Its standard error, once it has exited.
    fn stderr(&mut self) -> String {
        self.proc.stderr()
    }
}

/// A port that sends each message, minus its last element, to the port
/// that last element names.
fn echo_port(n: &Node) -> aemp::PortId {
    let node = n.clone();
    n.port_fn(move |mut m: Message| {
        let reply: aemp::PortId = (&m.pop().unwrap()).try_into().unwrap();
        node.snd(&reply, m);
    })
}

/// A node in this process with the rc file's secret.
fn local_node(tag: &str) -> Node {
    Node::with_config(
        Config::new(format!("{tag}/%u"))
            .bind("127.0.0.1:0")
            .secret("s")
            .monitor_timeout(Duration::from_secs(5)),
    )
    .unwrap()
}

fn addr(n: &Node) -> String {
    n.listen_addrs()[0].to_string()
}

/// A 127.0.0.1 port nothing listens on.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap().to_string();
    drop(l);
    a
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// 111: `aemp run profile seed` starts a node that others use as a seed:
/// a library node connects to it, and the tool finds it through the
/// `seeds` of the file. SIGTERM (and SIGINT) stop it cleanly.
#[test]
fn run_starts_a_seed_111() {
    let env = Env::new();
    let mut seed = env.seed(&[]);
    assert_eq!(seed.id, "seed");

    let n = local_node("c111");
    let (tx, rx) = crossbeam_channel::bounded(4);
    let _g = n
        .mon_nodes(move |id, up, _| {
            let _ = tx.send((id.to_string(), up));
        })
        .unwrap();
    n.connect(&seed.addr).unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        ("seed".to_string(), true)
    );

    env.run(&["seeds", &seed.addr]).ok();
    let out = env.run(&["cal", "seed", "time"]).ok();
    let t: f64 = out.stdout.trim().parse().unwrap();
    assert!((t - now()).abs() < 60.0, "{out:?}");

    assert_eq!(seed.stop(libc::SIGTERM), Some(0));
    let stderr = seed.stderr();
    assert!(!stderr.contains("panicked"), "{stderr}");

    let mut seed = env.seed(&[]);
    assert_eq!(seed.stop(libc::SIGINT), Some(0));
}

/// 112: `snd` delivers and confirms, `cal` prints the reply (`time`: a
/// number), `mon` prints the kill reason. (`eval` is never offered.)
#[test]
fn snd_cal_mon_112() {
    let env = Env::new();
    let seed = env.seed(&[]);
    let n = local_node("t112");
    let at = addr(&n);
    let (tx, rx) = crossbeam_channel::unbounded();
    let inbox = n.port_fn(move |m| tx.send(m).unwrap());
    let echo = echo_port(&n);

    // snd
    let out = env
        .run(&[
            "snd",
            "--connect",
            &at,
            inbox.as_str(),
            "a",
            "b",
            "{\"c\":1}",
        ])
        .ok();
    assert_eq!(out.stdout, "message sent successfully\n", "{out:?}");
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        Message::from(vec![json!("a"), json!("b"), json!({"c": 1})])
    );
    let missing = format!("{}#nope", n.id());
    let out = env.run(&["snd", "--connect", &at, &missing, "x"]).fails(1);
    assert!(out.stderr.contains("no_such_port"), "{out:?}");

    // cal
    let out = env
        .run(&["cal", "--connect", &seed.addr, "seed", "time"])
        .ok();
    let t: f64 = out.stdout.trim().parse().unwrap();
    assert!((t - now()).abs() < 60.0, "{out:?}");
    let out = env
        .run(&["cal", "--connect", &at, echo.as_str(), "x", "[1,2]"])
        .ok();
    assert_eq!(out.stdout, "\"x\",[1,2]\n");

    // mon: a port killed with a reason.
    let watched = n.port_fn(|_| {});
    let cmd = env.cmd(&["mon", "--connect", &at, watched.as_str()]);
    let waiter = std::thread::spawn(move || run_bounded(cmd, Duration::from_secs(30)));
    wait_for_monitor(&n);
    n.kil(&watched, Reason::die("bye")).unwrap();
    let out = waiter.join().unwrap().ok();
    assert_eq!(out.stdout, "\"die\",\"bye\"\n", "{out:?}");

    // mon of a node port: the node going away.
    let cmd = env.cmd(&["mon", "--connect", &seed.addr, "seed"]);
    let waiter = std::thread::spawn(move || run_bounded(cmd, Duration::from_secs(30)));
    std::thread::sleep(Duration::from_millis(1500));
    drop(seed);
    let out = waiter.join().unwrap().ok();
    assert!(
        out.stdout.starts_with("\"transport_error\",\"seed\""),
        "{out:?}"
    );
}

/// Options stand anywhere (after PORT and the data too), `--` ends them
/// (what follows is data even when it looks like an option), an unknown
/// option is a usage error, and `--json` (`-j`) sends numbers, lists and
/// objects, with a usage error naming a bad argument.
#[test]
fn options_anywhere_separator_and_json() {
    let env = Env::new();
    let n = local_node("ux");
    let at = addr(&n);
    let echo = echo_port(&n);
    let (tx, rx) = crossbeam_channel::unbounded();
    let inbox = n.port_fn(move |m| tx.send(m).unwrap());

    // After the positionals: the time-out is used, not sent as data.
    let closed = closed_port();
    let out = env
        .run(&[
            "cal",
            "seed",
            "ping",
            "--timeout",
            "1",
            "--connect",
            &closed,
        ])
        .fails(1);
    assert!(out.stderr.contains("within 1 s"), "{out:?}");
    assert!(out.took < Duration::from_secs(4), "{out:?}");
    let out = env
        .run(&["cal", echo.as_str(), "x", "--connect", &at, "--timeout=3"])
        .ok();
    assert_eq!(out.stdout, "\"x\"\n", "{out:?}");

    // `cal --connect AT ECHO ARGS...`
    let cal_echo = |args: &[&str]| {
        let mut line = vec!["cal", "--connect", &at, echo.as_str()];
        line.extend_from_slice(args);
        env.run(&line)
    };

    // `--`: the rest is data.
    let out = cal_echo(&["--", "--timeout", "1", "-j"]).ok();
    assert_eq!(out.stdout, "\"--timeout\",\"1\",\"-j\"\n", "{out:?}");

    // An unknown option, before or after PORT.
    for args in [
        vec!["cal", echo.as_str(), "--bogus", "--connect", &at],
        vec!["snd", "--connect", &at, echo.as_str(), "x", "--bogus"],
    ] {
        let out = env.run(&args).fails(2);
        assert!(
            out.stderr.contains("unknown option --bogus") && out.stderr.contains("after --"),
            "{out:?}"
        );
    }

    // --json: numbers, lists, objects, strings in quotes, true; a negative
    // number is data, not an option.
    let out = cal_echo(&["-j", "3", "-2.5", "[1,2,]", "{\"a\":1}", "\"s\"", "true"]).ok();
    assert_eq!(out.stdout, "3,-2.5,[1,2],{\"a\":1},\"s\",true\n", "{out:?}");
    env.run(&[
        "snd",
        inbox.as_str(),
        "3",
        "[4]",
        "--connect",
        &at,
        "--json",
    ])
    .ok();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        Message::from(vec![json!(3), json!([4])])
    );
    // Without it, 3 stays a string.
    env.run(&["snd", "--connect", &at, inbox.as_str(), "3"])
        .ok();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        Message::from(vec![json!("3")])
    );
    // A bad argument is named, and nothing is sent.
    let out = env
        .run(&[
            "snd",
            "--json",
            "--connect",
            &at,
            inbox.as_str(),
            "1",
            "abc",
        ])
        .fails(2);
    assert!(
        out.stderr
            .contains("snd: --json: the argument abc is not JSON"),
        "{out:?}"
    );
    // mon takes no --json.
    let out = env.run(&["mon", "--json", "seed"]).fails(2);
    assert!(out.stderr.contains("--json"), "{out:?}");
}

/// `snd`, `cal` and `mon` reach a port on a node that is not a seed: a
/// library node that joined through the seed (a global node), with only
/// the seed's address configured. The tool finds it through the master.
#[test]
fn snd_cal_mon_through_discovery() {
    let env = Env::new();
    let at = closed_port();
    env.run(&["seeds", &at]).ok();
    // Its own address is among its seeds: a global node.
    let binds = format!("[\"{at}\"]");
    let seed = RunNode::start(env.cmd(&["run", "nodeid", "gseed", "binds", &binds]));
    assert_eq!(
        (seed.id.as_str(), seed.addr.as_str()),
        ("gseed", at.as_str())
    );

    let n = Node::with_config(
        Config::new("joined/%u")
            .bind("127.0.0.1:0")
            .secret("s")
            .monitor_timeout(Duration::from_secs(5))
            .seeds([at.as_str()]),
    )
    .unwrap();
    let start = Instant::now();
    while n.db_master().as_ref().map(|m| m.as_str()) != Some("gseed") {
        assert!(start.elapsed() < Duration::from_secs(20), "no master");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!n
        .up_nodes()
        .iter()
        .any(|id| id.as_str().starts_with("aemp/")));

    let (tx, rx) = crossbeam_channel::unbounded();
    let inbox = n.port_fn(move |m| tx.send(m).unwrap());
    let echo = echo_port(&n);

    // snd, through the file's seeds.
    let out = env.run(&["snd", inbox.as_str(), "hi", "[1]"]).ok();
    assert_eq!(out.stdout, "message sent successfully\n", "{out:?}");
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        Message::from(vec![json!("hi"), json!([1])])
    );
    let missing = format!("{}#nope", n.id());
    let out = env.run(&["snd", &missing, "x"]).fails(1);
    assert!(out.stderr.contains("no_such_port"), "{out:?}");

    // cal, with --connect naming the seed.
    let out = env
        .run(&["cal", "--connect", &at, echo.as_str(), "x", "{\"y\":2}"])
        .ok();
    assert_eq!(out.stdout, "\"x\",{\"y\":2}\n", "{out:?}");
    let out = env.run(&["cal", n.id().as_str(), "time"]).ok();
    let t: f64 = out.stdout.trim().parse().unwrap();
    assert!((t - now()).abs() < 60.0, "{out:?}");

    // mon (once the earlier commands' nodes are gone, so that
    // wait_for_monitor sees this one's).
    let start = Instant::now();
    while n
        .up_nodes()
        .iter()
        .any(|id| id.as_str().starts_with("aemp/"))
    {
        assert!(start.elapsed() < Duration::from_secs(20), "aemp nodes stay");
        std::thread::sleep(Duration::from_millis(20));
    }
    let watched = n.port_fn(|_| {});
    let cmd = env.cmd(&["mon", watched.as_str()]);
    let waiter = std::thread::spawn(move || run_bounded(cmd, Duration::from_secs(30)));
    wait_for_monitor(&n);
    n.kil(&watched, Reason::die("gone")).unwrap();
    let out = waiter.join().unwrap().ok();
    assert_eq!(out.stdout, "\"die\",\"gone\"\n", "{out:?}");

    // A node the network does not know: a clear failure within the time-out.
    let out = env
        .run(&["cal", "--timeout", "2", "nowhere", "time"])
        .fails(1);
    assert!(
        out.stderr
            .contains(&format!("cannot reach node nowhere through {at}"))
            && out.stderr.contains("gseed answered"),
        "{out:?}"
    );
    assert!(out.took < Duration::from_secs(10), "{out:?}");
    n.net_shutdown();
    drop(seed);
}

/// Waits until an `aemp/...` node is connected to `n`, plus a moment for
/// its monitor request to arrive.
fn wait_for_monitor(n: &Node) {
    let start = Instant::now();
    while !n
        .up_nodes()
        .iter()
        .any(|id| id.as_str().starts_with("aemp/"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "aemp mon never connected"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
}

/// 113: `AEMP_TRACE=1` prints a SND and a RCV line per packet.
#[test]
fn trace_prints_snd_rcv_113() {
    let env = Env::new();
    let seed = env.seed(&[]);
    let out = run_bounded(
        {
            let mut c = env.cmd(&["cal", "--connect", &seed.addr, "seed", "time"]);
            c.env("AEMP_TRACE", "1");
            c
        },
        Duration::from_secs(30),
    )
    .ok();
    // Joining through the seed sends g_* packets too: find the request.
    let snd = out
        .stderr
        .lines()
        .find(|l| l.contains("SND seed [") && l.contains("\"time\""));
    let rcv = out.stderr.lines().find(|l| l.contains("RCV seed ["));
    assert!(snd.is_some() && rcv.is_some(), "{out:?}");
    // Without it, no trace.
    let out = env
        .run(&["cal", "--connect", &seed.addr, "seed", "time"])
        .ok();
    assert!(!out.stderr.contains("SND"), "{out:?}");
}

/// No seed or node answers: a clear message and exit 1 within the
/// time-out, not a hang. Also: no address at all, and a node at the
/// address that is not the target and cannot find it (not a global node).
#[test]
fn fails_clearly_when_no_node_answers() {
    let env = Env::new();
    let closed = closed_port();
    let out = env
        .run(&[
            "cal",
            "--timeout",
            "1",
            "--connect",
            &closed,
            "seed",
            "time",
        ])
        .fails(1);
    assert!(
        out.stderr.contains(&format!(
            "cannot reach node seed through {closed} within 1 s"
        )),
        "{out:?}"
    );
    assert!(out.took < Duration::from_secs(10), "{out:?}");

    // Through the file's seeds, default time-out 5 s.
    env.run(&["seeds", &closed]).ok();
    let out = env.run(&["snd", "seed", "x"]).fails(1);
    assert!(out.stderr.contains("cannot reach node seed"), "{out:?}");
    assert!(out.took < Duration::from_secs(15), "{out:?}");
    let out = env.run(&["mon", "--timeout", "0.5", "seed"]).fails(1);
    assert!(out.stderr.contains("cannot reach node seed"), "{out:?}");

    env.run(&["delseeds"]).ok();
    let out = env.run(&["cal", "seed", "time"]).fails(1);
    assert!(out.stderr.contains("no address for node seed"), "{out:?}");

    let seed = env.seed(&[]);
    let out = env
        .run(&[
            "cal",
            "--timeout",
            "2",
            "--connect",
            &seed.addr,
            "other",
            "time",
        ])
        .fails(1);
    assert!(
        out.stderr
            .contains(&format!("cannot reach node other through {}", seed.addr))
            && out.stderr.contains("seed answered"),
        "{out:?}"
    );

    // Without a secret or cert the handshake cannot succeed: say so.
    env.run(&["delsecret"]).ok();
    let out = cal_seed_time(&env, &seed.addr);
    assert!(
        out.stderr.contains("neither a secret nor a certificate"),
        "{out:?}"
    );

    // Usage errors name the bad input.
    let out = env.run(&["cal", "--timeout", "soon", "seed"]).fails(2);
    assert!(out.stderr.contains("--timeout soon"), "{out:?}");
    let out = env.run(&["snd", "a#b#c"]).fails(2);
    assert!(out.stderr.contains("a#b#c"), "{out:?}");
}

/// `run` with a service that aemp does not have fails at once, naming it
/// (item 68 through the tool); bad configure arguments are usage errors.
#[test]
fn run_refuses_unknown_services() {
    let env = Env::new();
    let out = env
        .run(&[
            "run",
            "nodeid",
            "x",
            "binds",
            "[\"127.0.0.1:0\"]",
            "services",
            "[\"nope::f\"]",
        ])
        .fails(1);
    assert!(out.stderr.contains("nope::f"), "{out:?}");
    let out = env.run(&["run", "[1]"]).fails(2);
    assert!(out.stderr.contains("not a profile name"), "{out:?}");
}

/// A profile named on the command line must exist: `run` (odd first
/// argument or `profile NAME`), `showconfig NAME` and `showprofile NAME`
/// fail at once naming it and listing the known ones.
#[test]
fn unknown_profile_is_an_error() {
    let env = Env::new();
    for args in [
        vec!["run", "profile", "typo"],
        vec!["run", "typo"],
        vec!["run", "typo", "nodeid", "x"],
        vec!["showconfig", "typo"],
        vec!["showprofile", "typo"],
    ] {
        let out = env.run(&args).fails(1);
        assert!(
            out.stderr
                .starts_with(&format!("aemp: {}: there is no profile \"typo\"", args[0]))
                && out.stderr.contains("(known: seed)"),
            "{args:?}: {out:?}"
        );
        assert!(out.took < Duration::from_secs(10), "{out:?}");
    }
}

/// `aemp --rc FILE run` configures the node from FILE, not `$AEMP_RC`.
#[test]
fn run_reads_the_rc_option() {
    let env = Env::new();
    let rc = env.rc.to_str().unwrap();
    let mut cmd = env.cmd(&["--rc", rc, "run", "profile", "seed"]);
    cmd.env("AEMP_RC", env.dir.path().join("missing-rc"));
    let mut seed = RunNode::start(cmd);
    assert_eq!(seed.id, "seed");
    assert_eq!(seed.stop(libc::SIGTERM), Some(0));
}

/// `aemp restart NODE` (the original's): an `aemp run` node runs again
/// with the same arguments (same process, a new listening line) and
/// answers; a node without the restart function stays up, and the
/// command fails saying so.
#[test]
fn restart_reruns_an_aemp_run_node() {
    let env = Env::new();
    let mut seed = env.seed(&[]);
    let out = env.run(&["restart", "seed", "--connect", &seed.addr]).ok();
    assert_eq!(out.stdout, "node seed is restarting\n", "{out:?}");
    let line = seed
        .proc
        .line_within(Duration::from_secs(20))
        .expect("no new listening line after the restart");
    let again = line
        .strip_prefix("seed listening on ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .split(", ")
        .next()
        .unwrap()
        .to_string();
    let out = env.run(&["cal", "--connect", &again, "seed", "time"]).ok();
    assert!(out.stdout.trim().parse::<f64>().is_ok(), "{out:?}");
    assert_eq!(seed.stop(libc::SIGTERM), Some(0));

    let n = local_node("norestart");
    let out = env
        .run(&[
            "restart",
            "--timeout",
            "1",
            "--connect",
            &addr(&n),
            n.id().as_str(),
        ])
        .fails(1);
    assert!(out.stderr.contains("is still up after 1 s"), "{out:?}");
    let port = format!("{}#p", n.id());
    let out = env
        .run(&["restart", "--connect", &addr(&n), &port])
        .fails(2);
    assert!(out.stderr.contains("give a node ID"), "{out:?}");
}

#[test]
fn no_secret_or_cert_is_a_clear_error_at_once() {
    let env = Env::new();
    // No secret in the file: every network command stops before it
    // tries, naming the missing key and the commands that set it.
    env.run(&["delsecret"]).ok();
    let at = closed_port();
    for args in [
        vec!["snd", "--connect", at.as_str(), "x#y", "hi"],
        vec!["nodes", "--connect", at.as_str()],
    ] {
        let out = env.run(&args).fails(1);
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(
            text.contains("neither a secret nor a certificate") && text.contains("gensecret"),
            "{args:?}: {out:?}"
        );
    }
}

/// `aemp cal --timeout 1 --connect ADDR seed time`, which must fail.
fn cal_seed_time(env: &Env, addr: &str) -> Out {
    env.run(&["cal", "--timeout", "1", "--connect", addr, "seed", "time"])
        .fails(1)
}

#[test]
fn a_wrong_secret_is_reported_as_an_authentication_failure() {
    let env = Env::new();
    let seed = env.seed(&[]);
    // The seed runs with "s"; the tool now joins with another secret.
    env.run(&["setsecret", "wrong"]).ok();
    let out = cal_seed_time(&env, &seed.addr);
    assert!(
        out.stderr.contains("authentication failure") && out.stderr.contains("token mismatch"),
        "{out:?}"
    );
    let out = env
        .run(&["nodes", "--timeout", "1", "--connect", &seed.addr])
        .fails(1);
    assert!(
        out.stderr.contains("no seed answered") && out.stderr.contains("token mismatch"),
        "{out:?}"
    );
}
