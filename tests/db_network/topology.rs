//! Topologies over real connections: several globals, master fail-over,
//! splits and merges, seeds restarting, discovery (`g_find`) and address
//! fallback.

use super::*;
use aemp::protocol::db::DbMonEvent;
use crossbeam_channel::{unbounded, Receiver};
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn keys(n: &Node, fam: &str) -> Vec<String> {
    n.db_keys_wait(fam, WAIT).unwrap()
}

fn mon(n: &Node, fam: &str) -> (aemp::DbMonGuard, Receiver<DbMonEvent>) {
    let (tx, rx) = unbounded();
    let g = n
        .db_mon(fam, move |ev| {
            let _ = tx.send(ev.clone());
        })
        .unwrap();
    (g, rx)
}

/// Two seeds that seed each other (both global, meshed).
fn two_globals() -> (Node, Node) {
    let g1 = seed();
    let g2 = slave("seed", &[&g1]);
    // Once g1 knows g2's listener it takes g2 as a seed without dialing it
    // again (a second connection would replace the working one).
    let lkey = g2.id().to_string();
    until("g2 in 'l", || keys(&g1, "'l").contains(&lkey).then_some(()));
    g1.add_seed(&addr(&g2)).unwrap();
    until("both global", || {
        (g1.is_global() && g2.is_global()).then_some(())
    });
    (g1, g2)
}

#[test]
fn dead_slave_keys_vanish_everywhere_92() {
    let s = seed();
    let a = slave("a", &[&s]);
    let b = slave("b", &[&s]);
    a.db_set("f92", "ka", 1).unwrap().forget();
    let (_g, rx) = mon(&b, "f92");
    until("ka seen", || {
        rx.recv_timeout(WAIT)
            .ok()?
            .fam
            .contains_key("ka")
            .then_some(())
    });
    let t = Instant::now();
    a.net_shutdown();
    let ev = rx.recv_timeout(WAIT).unwrap();
    assert_eq!(ev.del, ["ka"]);
    assert!(t.elapsed() <= MT, "took {:?}", t.elapsed());
    assert!(keys(&s, "f92").is_empty());
}

#[test]
fn master_fail_over_94() {
    let (g1, g2) = two_globals();
    let a = slave("a", &[&g1, &g2]);
    let m = until("a master", || a.db_master());
    let (dead, alive) = if &m == g1.id() {
        (&g1, &g2)
    } else {
        (&g2, &g1)
    };
    // b's master survives, so its keys never go away.
    let b = slave("b", &[alive]);
    has_master(&b);
    let (_g, rx) = mon(&a, "f94");
    assert!(rx.recv_timeout(WAIT).unwrap().fam.is_empty());
    b.db_set("f94", "k1", 1).unwrap().forget();
    assert_eq!(rx.recv_timeout(WAIT).unwrap().add, ["k1"]);
    // The master is lost as after a kill -9 (no last words: a graceful
    // shutdown may still tell `a` that alive's entries went, from the
    // dying master's point of view).
    a.net_cut(dead.id());
    until("new master", || {
        (a.db_master().as_ref() == Some(alive.id())).then_some(())
    });
    // Queries are answered by the new master.
    assert_eq!(keys(&a, "f94"), ["k1"]);
    // The re-sent subscription is diffed against the cache: the next call
    // reports exactly the next change, nothing about k1.
    b.db_set("f94", "k2", 2).unwrap().forget();
    let ev = rx.recv_timeout(WAIT).unwrap();
    assert_eq!(ev.add, ["k2"], "{ev:?}");
    assert!(ev.chg.is_empty() && ev.del.is_empty(), "{ev:?}");
    assert_eq!(ev.fam.len(), 2);
}

#[test]
fn key_via_g1_visible_via_g2_95() {
    let (g1, g2) = two_globals();
    let a = slave("a", &[&g1]);
    let b = slave("b", &[&g2]);
    a.db_set("f95", "ka", "x").unwrap().forget();
    until("ka at b", || (keys(&b, "f95") == ["ka"]).then_some(()));
}

#[test]
fn split_and_merge_96() {
    let (g1, g2) = two_globals();
    let a = slave("a", &[&g1]);
    let b = slave("b", &[&g2]);
    a.db_set("f96", "ka", 1).unwrap().forget();
    b.db_set("f96", "kb", 2).unwrap().forget();
    let (_ga, rxa) = mon(&a, "f96");
    until("both at a", || {
        (rxa.recv_timeout(WAIT).ok()?.fam.len() == 2).then_some(())
    });
    g1.net_cut(g2.id());
    // a sees kb go, then come back after the seeds reconnect.
    let mut saw_del = false;
    until("kb back at a", || {
        let ev = rxa.recv_timeout(WAIT).ok()?;
        saw_del |= ev.del.contains(&"kb".to_string());
        (saw_del && ev.fam.len() == 2).then_some(())
    });
    let mut k = keys(&b, "f96");
    k.sort();
    assert_eq!(k, ["ka", "kb"]);
}

#[test]
fn slaves_connect_only_when_sending_98_and_find_99() {
    let s = seed();
    let a = slave("a", &[&s]);
    let b = slave("b", &[&s]);
    a.db_set("f98", "x", 1).unwrap().forget();
    b.db_set("f98", "y", 1).unwrap().forget();
    until("both", || (keys(&a, "f98").len() == 2).then_some(()));
    assert_eq!(a.up_nodes(), [s.id().clone()]);
    assert_eq!(b.up_nodes(), [s.id().clone()]);
    // b's port, known to a only by ID: a asks its master and connects.
    let (tx, rx) = unbounded();
    let p = b.port_fn(move |m| {
        let _ = tx.send(m);
    });
    a.snd(&p, aemp::msg!["hi"]);
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), aemp::msg!["hi"]);
    assert!(a.up_nodes().contains(b.id()));
}

#[test]
fn seed_restart_reconnects_100() {
    let s = seed();
    let at = addr(&s);
    let a = slave("a", &[&s]);
    until("master", || {
        (a.db_master().as_ref() == Some(s.id())).then_some(())
    });
    s.net_shutdown();
    until("master lost", || a.db_master().is_none().then_some(()));
    let s2 = until("rebind", || {
        let mut c = cfg("seed");
        c.binds = vec![at.clone()];
        Node::with_config(c).ok()
    });
    let t = Instant::now();
    until("master again", || {
        (a.db_master().as_ref() == Some(s2.id())).then_some(())
    });
    assert!(t.elapsed() < MT * 2, "took {:?}", t.elapsed());
}

#[test]
fn two_seeds_six_nodes_everyone_finds_everyone() {
    let (g1, g2) = two_globals();
    let nodes: Vec<Node> = (0..6)
        .map(|i| slave(&format!("n{i}"), &[&g1, &g2]))
        .collect();
    let ports: Vec<aemp::PortId> = nodes
        .iter()
        .map(|n| {
            let p = n.port();
            n.db_reg("svc", &p).unwrap().forget();
            p
        })
        .collect();
    let mut want: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    want.sort();
    for n in nodes.iter().chain([&g1, &g2]) {
        until("all ports", || {
            let mut k = keys(n, "svc");
            k.sort();
            (k == want).then_some(())
        });
    }
    // And each can reach each through discovery, both directions of every
    // pair at once (simultaneous connects converge without a loss).
    let (tx, rx) = unbounded();
    let sinks: Vec<aemp::PortId> = nodes
        .iter()
        .map(|n| {
            let tx = tx.clone();
            n.port_fn(move |m| {
                let _ = tx.send(m);
            })
        })
        .collect();
    for (i, n) in nodes.iter().enumerate() {
        for s in &sinks {
            n.snd(s, aemp::msg!["from", i]);
        }
    }
    for _ in 0..36 {
        rx.recv_timeout(WAIT).expect("a message was lost");
    }
}

/// 1,000 random set/del operations across 4 nodes: the deltas a monitor
/// on a fifth node sees replay exactly to the final state, each one
/// consistent with the state before it, one event per effective operation.
#[test]
fn db_mon_deltas_match_random_operations() {
    let s = seed();
    let nodes: Vec<Node> = (0..4).map(|i| slave(&format!("r{i}"), &[&s])).collect();
    let watcher = slave("w", &[&s]);
    // With a master each operation travels alone (before, the whole local
    // database goes in one g_slave and the deltas coalesce).
    nodes.iter().for_each(has_master);
    let (_g, rx) = mon(&watcher, "rnd");
    let first = rx.recv_timeout(WAIT).unwrap();
    assert!(first.fam.is_empty());
    let mut expect: BTreeMap<String, Value> = BTreeMap::new();
    let mut seed_state = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move |n: u64| {
        seed_state ^= seed_state << 13;
        seed_state ^= seed_state >> 7;
        seed_state ^= seed_state << 17;
        seed_state % n
    };
    let mut effective = 0;
    for _ in 0..1000 {
        let ni = rnd(4) as usize;
        let key = format!("k{ni}_{}", rnd(8));
        if rnd(3) == 0 {
            if expect.remove(&key).is_some() {
                effective += 1;
            }
            nodes[ni].db_del("rnd", &[key.as_str()]).unwrap();
        } else {
            let v = json!(rnd(4));
            if expect.get(&key) != Some(&v) {
                effective += 1;
            }
            expect.insert(key.clone(), v.clone());
            nodes[ni].db_set("rnd", &key, v).unwrap().forget();
        }
    }
    let mut state: BTreeMap<String, Value> = BTreeMap::new();
    let mut events = 0;
    while state != expect || events < effective {
        let ev = rx.recv_timeout(WAIT).unwrap_or_else(|_| {
            panic!(
                "missing db_mon events: {events} of {effective}, state equal: {}",
                state == expect
            )
        });
        for k in &ev.add {
            assert!(!state.contains_key(k), "add of present key {k}");
            state.insert(k.clone(), ev.fam[k].clone());
        }
        for k in &ev.chg {
            let v = &ev.fam[k];
            assert_ne!(state.get(k), Some(v), "chg without a change for {k}");
            assert!(
                state.insert(k.clone(), v.clone()).is_some(),
                "chg of absent {k}"
            );
        }
        for k in &ev.del {
            assert!(state.remove(k).is_some(), "del of absent key {k}");
        }
        assert_eq!(&state, &*ev.fam, "deltas disagree with the family");
        events += ev.add.len() + ev.chg.len() + ev.del.len();
        assert!(events <= effective, "more deltas than operations");
    }
    assert_eq!(events, effective);
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "spurious event"
    );
}

#[test]
fn global_node_fails_at_once_for_an_unknown_node() {
    let s = seed();
    // Its own address among its seeds: it is global at once.
    s.add_seed(&addr(&s)).unwrap();
    assert!(s.is_global());
    let (tx, rx) = unbounded();
    let ghost: aemp::PortId = "ghost/none#p".parse().unwrap();
    s.mon(&ghost, move |r| {
        let _ = tx.send(r);
    })
    .forget();
    let r = rx.recv_timeout(MT / 2).expect("not failed at once");
    assert!(r.to_string().contains("no known address"), "{r}");
}

#[test]
fn connect_tries_addresses_in_turn_101() {
    let s = seed();
    let a = slave("a", &[&s]);
    let b = Node::with_config(cfg("b").bind("127.0.0.1:0").seeds([addr(&s)])).unwrap();
    has_master(&a);
    has_master(&b);
    // A dead address first, then b's second listener.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    a.add_address(b.id(), &dead_addr).unwrap();
    a.add_address(b.id(), &b.listen_addrs()[1].to_string())
        .unwrap();
    let (tx, rx) = unbounded();
    let p = b.port_fn(move |m| {
        let _ = tx.send(m);
    });
    let t = Instant::now();
    a.snd(&p, aemp::msg!["x"]);
    rx.recv_timeout(WAIT).unwrap();
    // The first address refused: the second is tried a quarter of
    // connect_interval (100 ms ±10%) later, before the connect timeout.
    assert!(
        t.elapsed() >= Duration::from_millis(22),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn stale_addresses_fall_back_to_discovery() {
    let s = seed();
    let a = slave("a", &[&s]);
    let b = slave("b", &[&s]);
    has_master(&a);
    until("b's listener at the master", || {
        keys(&s, "'l").contains(&b.id().to_string()).then_some(())
    });
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    a.add_address(b.id(), &dead_addr).unwrap();
    let (tx, rx) = unbounded();
    let p = b.port_fn(move |m| {
        let _ = tx.send(m);
    });
    a.snd(&p, aemp::msg!["x"]);
    rx.recv_timeout(WAIT)
        .expect("not delivered via the found address");
}
