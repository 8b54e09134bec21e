//! The database figures: how long a 16-node network (2 seeds) takes until
//! every node sees every other's `db_reg` entry, and how long a `db_set`
//! on one slave takes to reach a `db_mon` on another (via their master).

use crate::{median, Figure, Group};
use aemp::{Config, Node};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn cfg(tag: &str) -> Config {
    Config::new(format!("{tag}/%u"))
        .bind("127.0.0.1:0")
        .secret("figures")
        .monitor_timeout(Duration::from_secs(5))
        .connect_interval(Duration::from_millis(100))
}

fn addr(n: &Node) -> String {
    n.listen_addrs()[0].to_string()
}

/// Milliseconds from the first node's creation until each of 16 nodes'
/// `db_mon` saw all 16 `db_reg` entries.
fn mesh_ready_ms() -> f64 {
    const N: usize = 16;
    let (tx, rx) = crossbeam_channel::unbounded();
    let t0 = Instant::now();
    let g1 = Node::with_config(cfg("seed")).unwrap();
    let g2 = Node::with_config(cfg("seed").seeds([addr(&g1)])).unwrap();
    // The two seeds list each other at once: their simultaneous connects
    // converge on one connection.
    g1.add_seed(&addr(&g2)).unwrap();
    let seeds = [addr(&g1), addr(&g2)];
    let mut nodes = vec![g1, g2];
    for i in 2..N {
        nodes.push(Node::with_config(cfg(&format!("n{i}")).seeds(seeds.clone())).unwrap());
    }
    let mut regs = Vec::new();
    let mut mons = Vec::new();
    for n in &nodes {
        let p = n.port();
        regs.push(n.db_reg("mesh", &p).unwrap());
        let (tx, done) = (tx.clone(), Arc::new(AtomicBool::new(false)));
        let m = n.db_mon("mesh", move |ev| {
            if ev.fam.len() == N && !done.swap(true, Ordering::Relaxed) {
                let _ = tx.send(());
            }
        });
        mons.push(m.unwrap());
    }
    for _ in 0..N {
        rx.recv_timeout(Duration::from_secs(30))
            .expect("mesh not ready within 30 s");
    }
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    drop((mons, regs));
    ms
}

/// `db_set` on one slave until a `db_mon` on another sees it, in ms.
fn propagation(rounds: u32) -> Vec<f64> {
    let s = Node::with_config(cfg("seed")).unwrap();
    let a = Node::with_config(cfg("a").seeds([addr(&s)])).unwrap();
    let b = Node::with_config(cfg("b").seeds([addr(&s)])).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let _m = b
        .db_mon("prop", move |ev| {
            if let Some(v) = ev.fam.get("k").and_then(|v| v.as_u64()) {
                let _ = tx.send(v);
            }
        })
        .unwrap();
    // Warm up: both have a master and the subscription is in place.
    a.db_set("prop", "k", u32::MAX).unwrap().forget();
    while rx
        .recv_timeout(Duration::from_secs(10))
        .expect("no warm-up")
        != u64::from(u32::MAX)
    {}
    let mut v = Vec::with_capacity(rounds as usize);
    for i in 0..rounds {
        let t = Instant::now();
        a.db_set("prop", "k", i).unwrap().forget();
        while rx
            .recv_timeout(Duration::from_secs(10))
            .expect("lost update")
            != u64::from(i)
        {}
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    v
}

fn pct(v: &[f64], p: usize) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[(v.len() * p / 100).min(v.len() - 1)]
}

pub fn groups(quick: bool) -> Vec<Group> {
    let runs = if quick { 3 } else { 5 };
    let rounds = if quick { 300 } else { 2_000 };
    vec![
        Group::new("db_mesh", move || {
            vec![Figure::new(
                "mesh_16_nodes_ready_ms",
                median(runs, mesh_ready_ms),
                "ms",
            )]
        }),
        Group::new("db_propagation", move || {
            let v = propagation(rounds);
            vec![
                Figure::new("db_propagation_p50_ms", pct(&v, 50), "ms"),
                Figure::new("db_propagation_p99_ms", pct(&v, 99), "ms"),
            ]
        }),
    ]
}
