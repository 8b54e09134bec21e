//! A network of many processes (`--procs`, not in the default runs: it
//! starts 64 processes): two seed processes and 62 more join through the
//! seeds, register a port in the database, and each pings every other
//! member until all have answered.
//!
//! - `mesh_64_procs_ready_ms`: from the first process's start until every
//!   process has had an answer from every other one, beside
//!   `baseline_64_procs_start_ms` (starting 64 processes that do nothing).
//! - `db_propagation_64_procs_p99_ms`: a `db_set` by this process until
//!   each member's `db_mon` has seen it (its report arriving here).
//! - `rss_per_node_process_mb` (median, once meshed) and
//!   `rss_per_connection_kb` (its growth over the mesh's connections).

use super::Figure;
use aemp::{msg, Config, Mailbox, Node, PortId};
use std::collections::HashSet;
use std::process::Child;
use std::time::{Duration, Instant};

const SECRET: &str = "figures-procs";
const N: usize = 64;
const FAMILY: &str = "mesh64";

fn cfg(tag: &str) -> Config {
    Config::new(format!("{tag}/%u"))
        .bind("127.0.0.1:0")
        .secret(SECRET)
}

/// Pings every member but `me` from a thread port until each answered;
/// then prints `DONE rss_before_kb rss_after_kb`.
fn ping_all(mb: &mut Mailbox, members: Vec<PortId>, rss_before: f64) -> aemp::Result<()> {
    let me = mb.port().clone();
    let node = mb.node().clone();
    let mut waiting: HashSet<String> = HashSet::new();
    for p in members {
        node.snd(&p, msg!["ping", &me]);
        waiting.insert(p.node().to_string());
    }
    waiting.remove(node.id().as_str());
    while !waiting.is_empty() {
        let m = mb.get()?;
        if let Some(from) = m.get(1).and_then(|v| v.as_str()) {
            waiting.remove(from);
        }
    }
    println!("DONE {rss_before} {}", super::rss() / 1024.0);
    Ok(())
}

/// A member process: `--procs-member seed` (prints `ADDR a`, its own
/// address among its seeds: a global node) or `--procs-member SEEDS`;
/// `--procs-member none` only starts (the baseline: `DONE 0 0` at once).
pub fn member_main(arg: &str) {
    if arg == "none" {
        println!("DONE 0 0");
        return;
    }
    let node = if arg == "seed" {
        let n = Node::with_config(cfg("seed")).expect("seed node");
        let at = n.listen_addrs()[0].to_string();
        n.add_seed(&at).expect("own seed");
        println!("ADDR {at}");
        n
    } else {
        Node::with_config(cfg("member").seeds(arg.split(','))).expect("member node")
    };
    if arg == "seed" {
        // The other seed arrives on stdin.
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).expect("other seed");
        node.add_seed(line.trim()).expect("other seed");
    }
    let n = node.clone();
    let pong = node.port_fn(move |m| {
        if let Some(Ok(reply)) = m.get(1).map(PortId::try_from) {
            n.snd(&reply, msg!["pong", n.id().as_str()]);
        }
    });
    let _reg = node.db_reg(FAMILY, &pong).expect("db_reg");
    let rss_before = super::rss() / 1024.0;
    let (n, mut started) = (node.clone(), false);
    let _mon = node
        .db_mon(FAMILY, move |ev| {
            if started || ev.fam.len() < N {
                return;
            }
            started = true;
            let members: Vec<PortId> = ev.fam.keys().filter_map(|k| k.parse().ok()).collect();
            n.port_thread(move |mb| ping_all(mb, members, rss_before));
        })
        .expect("db_mon");
    // Propagation: report each value of "prop" to the collector it names.
    let n = node.clone();
    let _prop = node
        .db_mon("prop", move |ev| {
            if let Some(v) = ev.fam.get("k").and_then(|v| v.as_array()) {
                if let (Some(round), Some(Ok(to))) = (v.first(), v.get(1).map(PortId::try_from)) {
                    n.snd(&to, msg!["seen", round.clone()]);
                }
            }
        })
        .expect("db_mon prop");
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
        line.clear();
    }
}

/// A member process and a reader of its lines.
struct Member {
    child: Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Member {
    fn start(arg: &str) -> Member {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--procs-member", arg])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("cannot start a member process");
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        Member {
            child,
            lines: out.lines(),
        }
    }

    /// The fields of the next line starting with `word`.
    fn expect(&mut self, word: &str) -> Vec<String> {
        for line in self.lines.by_ref() {
            let line = line.expect("member output");
            let mut f = line.split(' ');
            if f.next() == Some(word) {
                return f.map(str::to_string).collect();
            }
        }
        panic!("a member ended before {word}");
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Milliseconds to start 64 processes of this program that only say so:
/// what starting the network's processes costs by itself.
fn start_baseline_ms() -> f64 {
    let t0 = Instant::now();
    let mut all: Vec<Member> = (0..N).map(|_| Member::start("none")).collect();
    for m in &mut all {
        m.expect("DONE");
    }
    t0.elapsed().as_secs_f64() * 1e3
}

pub fn figures(rounds: u32) -> Vec<Figure> {
    use std::io::Write;
    let baseline = start_baseline_ms();
    let t0 = Instant::now();
    let mut seeds = [Member::start("seed"), Member::start("seed")];
    let a = seeds[0].expect("ADDR")[0].clone();
    let b = seeds[1].expect("ADDR")[0].clone();
    for (s, other) in seeds.iter_mut().zip([&b, &a]) {
        let stdin = s.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{other}").unwrap();
    }
    let list = format!("{a},{b}");
    let mut members: Vec<Member> = (2..N).map(|_| Member::start(&list)).collect();
    let mut before = Vec::new();
    let mut after = Vec::new();
    for m in seeds.iter_mut().chain(members.iter_mut()) {
        let f = m.expect("DONE");
        before.push(f[0].parse::<f64>().unwrap());
        after.push(f[1].parse::<f64>().unwrap());
    }
    let ready = t0.elapsed().as_secs_f64() * 1e3;

    // This process joins too and sets "prop"; every member reports here.
    let me = Node::with_config(cfg("prop").seeds([a.clone(), b.clone()])).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let collector = me.port_fn(move |m| {
        let _ = tx.send((m[1].as_u64().unwrap_or(u64::MAX), Instant::now()));
    });
    let mut lat = Vec::new();
    // Round 0 warms up (a master, every db_mon in place).
    for round in 0..=u64::from(rounds) {
        let t = Instant::now();
        me.db_set(
            "prop",
            "k",
            serde_json::json!([round, collector.to_string()]),
        )
        .unwrap()
        .forget();
        let mut seen = 0;
        while seen < N {
            let (r, at) = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("a member never saw the update");
            if r == round {
                seen += 1;
                if round > 0 {
                    lat.push(at.duration_since(t).as_secs_f64() * 1e3);
                }
            }
        }
    }
    lat.sort_by(f64::total_cmp);
    let p99 = lat[(lat.len() * 99 / 100).min(lat.len() - 1)];
    let growth: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a - b) / (N - 1) as f64)
        .collect();
    drop(members);
    vec![
        Figure::new("mesh_64_procs_ready_ms", ready, "ms"),
        Figure::new("baseline_64_procs_start_ms", baseline, "ms"),
        Figure::new("db_propagation_64_procs_p99_ms", p99, "ms"),
        Figure::new("rss_per_node_process_mb", median(after) / 1024.0, "MB"),
        Figure::new("rss_per_connection_kb", median(growth), "KB"),
    ]
}
