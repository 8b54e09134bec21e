//! Master loss and network splits: items 94 and 96.

use aemp::protocol::db::{Event, QueryResult};
use serde_json::json;

use crate::cluster::{cluster, ALL};
use crate::sim::Sim;

#[test]
fn master_failover_keeps_queries_and_monitors_working_94() {
    let mut sim = cluster();
    sim.set("s1", "f", "s1key", json!(1));
    sim.set("s4", "f", "s4key", json!(4));
    sim.run();
    let m = sim.mon("s1", "f");
    sim.run();
    let calls_before = sim.mon_calls("s1", m).len();
    sim.kill("g1");
    assert_eq!(
        sim.node("s1").master(),
        Some("g2"),
        "the next connected seed"
    );
    sim.run();
    // Keys that survived the fail-over are never reported again.
    let after = &sim.mon_calls("s1", m)[calls_before..];
    for (add, _, del) in after {
        for k in ["s1key", "s4key"] {
            assert!(
                !add.iter().chain(del).any(|x| x == k),
                "{k} flapped: {after:?}"
            );
        }
    }
    sim.set("s5", "f", "new", json!(5));
    sim.run();
    let last = sim.mon_calls("s1", m).last().cloned().unwrap();
    assert_eq!(
        last,
        (vec!["new".to_string()], vec![], vec![]),
        "updates keep coming"
    );
    let fam = sim.family("s1", "f");
    assert_eq!(fam.keys().collect::<Vec<_>>(), ["new", "s1key", "s4key"]);
    assert_eq!(sim.view("s1", m), fam);
}

#[test]
fn requests_wait_without_a_master_and_are_resent_in_order_94() {
    let mut sim = cluster();
    sim.add("s7");
    sim.connect_seeds("s7", &["g1"]);
    sim.set("s7", "f", "mine", json!(7));
    sim.run();
    let m = sim.mon("s7", "f");
    sim.run();
    sim.kill("g1");
    assert_eq!(sim.node("s7").master(), None);
    assert!(sim.events["s7"].contains(&Event::MasterChanged(None)));
    let before = sim.wire.len();
    let q = sim.node("s7").db_keys("f").unwrap();
    sim.node("s7").find("s5");
    sim.set("s7", "f", "later", json!(8));
    sim.collect("s7");
    assert_eq!(sim.wire.len(), before, "nothing is sent without a master");
    // Another seed comes up.
    sim.connect_seeds("s7", &["g2"]);
    let sent: Vec<_> = sim.wire[before..]
        .iter()
        .filter(|(f, _, _)| f == "s7")
        .map(|(_, _, p)| p[1].clone())
        .collect();
    assert_eq!(
        sent,
        ["g_slave", "g_slave", "g_mon1", "g_db_keys", "g_find"],
        "g_slave with the db, then pending in order"
    );
    sim.run();
    assert_eq!(
        sim.reply("s7", q),
        Some(QueryResult::Keys(vec!["later".into(), "mine".into()]))
    );
    assert!(sim.events["s7"]
        .iter()
        .any(|e| matches!(e, Event::Found { node, addresses: Some(_) } if node == "s5")));
    sim.set("s4", "f", "k4", json!(4));
    sim.run();
    let view = sim.view("s7", m);
    assert_eq!(view.keys().collect::<Vec<_>>(), ["k4", "later", "mine"]);
}

#[test]
fn stale_changes_from_a_former_master_are_ignored() {
    let mut sim = cluster();
    let m = sim.mon("s1", "f");
    sim.run();
    sim.cut("s1", "g1");
    sim.run();
    let node = sim.node("s1");
    node.packet(
        "g1",
        "g_chg2",
        &[json!("f"), json!({"ghost": 1}), json!([])],
    );
    assert!(node.take_events().is_empty());
    assert!(sim.view("s1", m).is_empty());
}

#[test]
fn split_and_merge_of_two_globals_96() {
    let mut sim = cluster();
    for i in 1..=6 {
        sim.set(&format!("s{i}"), "f", &format!("k{i}"), json!(i));
    }
    sim.run();
    let mons: Vec<_> = ["s1", "s4"].iter().map(|n| (*n, sim.mon(n, "f"))).collect();
    sim.run();
    // The split: g1–g2 breaks, and each slave loses its link to the far global.
    sim.cut("g1", "g2");
    for s in ["s1", "s2", "s3"] {
        sim.cut(s, "g2");
    }
    for s in ["s4", "s5", "s6"] {
        sim.cut(s, "g1");
    }
    sim.run();
    let keys = |sim: &Sim, n: &str, m| sim.view(n, m).keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&sim, "s1", mons[0].1), ["k1", "k2", "k3"]);
    assert_eq!(keys(&sim, "s4", mons[1].1), ["k4", "k5", "k6"]);
    assert_eq!(sim.node("g1").global_store().unwrap().keys("'g"), ["g1"]);
    // Both sides keep working on their own.
    sim.set("s2", "f", "west", json!(true));
    sim.set("s5", "f", "east", json!(true));
    sim.run();
    // The merge: seeds are retried, links return.
    sim.connect("g1", "g2", true, true);
    for s in ["s1", "s2", "s3"] {
        sim.connect(s, "g2", true, false);
    }
    for s in ["s4", "s5", "s6"] {
        sim.connect(s, "g1", true, false);
    }
    sim.run();
    let want = ["east", "k1", "k2", "k3", "k4", "k5", "k6", "west"];
    for (n, m) in mons {
        assert_eq!(keys(&sim, n, m), want, "monitor on {n}");
    }
    for n in ALL {
        assert_eq!(
            sim.family(n, "f").keys().collect::<Vec<_>>(),
            want,
            "db_family on {n}"
        );
    }
    assert_eq!(
        sim.node("g2").global_store().unwrap().keys("'g"),
        ["g1", "g2"]
    );
}
