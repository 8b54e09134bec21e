//! Globals and slaves on a healthy network: items 83–93, 95, discovery.

use aemp::protocol::db::{Event, QueryResult};
use serde_json::{json, Value};

use crate::sim::Sim;

/// g1 and g2 global and meshed; s1–s3 use g1 as master, s4–s6 use g2; each
/// slave is connected to both seeds and publishes its listen address.
pub fn cluster() -> Sim {
    let mut sim = Sim::new();
    sim.add_global("g1");
    sim.add_global("g2");
    sim.connect("g1", "g2", true, true);
    for i in 1..=6 {
        let s = format!("s{i}");
        sim.add(&s);
        sim.set(&s, "'l", &s, json!([format!("10.0.0.{i}:4040")]));
        let seeds = if i <= 3 { ["g1", "g2"] } else { ["g2", "g1"] };
        sim.connect_seeds(&s, &seeds);
    }
    sim.run();
    sim
}

pub const ALL: [&str; 8] = ["g1", "g2", "s1", "s2", "s3", "s4", "s5", "s6"];

#[test]
fn masters_are_the_first_connected_seeds() {
    let mut sim = cluster();
    assert_eq!(sim.node("s1").master(), Some("g1"));
    assert_eq!(sim.node("s4").master(), Some("g2"));
    assert_eq!(
        sim.node("g1").master(),
        Some("g1"),
        "a global node is its own master"
    );
    for g in ["g1", "g2"] {
        let globals = sim.node(g).global_store().unwrap().keys("'g");
        assert_eq!(globals, ["g1", "g2"], "{g}");
    }
}

#[test]
fn db_set_on_a_slave_is_visible_on_every_node_83_95() {
    let mut sim = cluster();
    for i in 1..=6 {
        sim.set(&format!("s{i}"), "svc", &format!("s{i}#port"), json!(i));
    }
    sim.run();
    let want: aemp::protocol::db::Family =
        (1..=6).map(|i| (format!("s{i}#port"), json!(i))).collect();
    for n in ALL {
        assert_eq!(sim.family(n, "svc"), want, "db_family on {n}");
    }
}

#[test]
fn db_keys_and_db_values_agree_with_db_family_84() {
    let mut sim = cluster();
    sim.set("s1", "f", "a", json!("x"));
    sim.set("s5", "f", "b", json!({"y": [1, null]}));
    sim.run();
    let fam = sim.family("s3", "f");
    let (k, v) = (
        sim.node("s3").db_keys("f").unwrap(),
        sim.node("s3").db_values("f").unwrap(),
    );
    sim.collect("s3");
    sim.run();
    let Some(QueryResult::Keys(keys)) = sim.reply("s3", k) else {
        panic!()
    };
    let Some(QueryResult::Values(values)) = sim.reply("s3", v) else {
        panic!()
    };
    assert_eq!(keys, fam.keys().cloned().collect::<Vec<_>>());
    assert_eq!(values, fam.values().cloned().collect::<Vec<_>>());
    let e = sim.node("s3").db_keys("nope");
    let Ok(empty) = e else { panic!() };
    sim.collect("s3");
    sim.run();
    assert_eq!(
        sim.reply("s3", empty),
        Some(QueryResult::Keys(vec![])),
        "unknown family: []"
    );
}

#[test]
fn db_mon_first_call_is_prompt_even_for_an_empty_family_85() {
    let mut sim = cluster();
    for n in ["s2", "g2"] {
        let m = sim.mon(n, "empty");
        sim.run();
        assert_eq!(sim.mon_calls(n, m), [(vec![], vec![], vec![])], "{n}");
        assert!(sim.view(n, m).is_empty());
    }
}

#[test]
fn db_mon_reports_add_chg_del_86() {
    let mut sim = cluster();
    sim.set("s4", "f", "old", json!(0));
    sim.run();
    let m = sim.mon("s1", "f");
    sim.run();
    sim.set("s5", "f", "k", json!(1));
    sim.run();
    sim.set("s5", "f", "k", json!(2));
    sim.run();
    sim.del("s5", "f", "k");
    sim.run();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        sim.mon_calls("s1", m),
        [
            (s(&["old"]), s(&[]), s(&[])),
            (s(&["k"]), s(&[]), s(&[])),
            (s(&[]), s(&["k"]), s(&[])),
            (s(&[]), s(&[]), s(&["k"])),
        ]
    );
    assert_eq!(sim.view("s1", m), [("old".to_string(), json!(0))].into());
}

#[test]
fn db_set_with_an_equal_value_sends_nothing_87() {
    let mut sim = cluster();
    sim.set("s1", "f", "k", json!({"deep": [1, 2]}));
    sim.run();
    let before = sim.wire.len();
    sim.set("s1", "f", "k", json!({"deep": [1, 2]}));
    assert_eq!(sim.wire.len(), before, "no packet for an equal value");
    sim.set("s1", "f", "k", json!({"deep": [1, 3]}));
    assert_eq!(sim.wire.len(), before + 1);
    assert_eq!(
        sim.wire.last().unwrap().2,
        json!(["", "g_upd", "f", {"k": {"deep": [1, 3]}}])
            .as_array()
            .unwrap()
            .clone()
    );
}

#[test]
fn stopping_db_mon_stops_callbacks_and_the_last_one_sends_g_mon0_88() {
    let mut sim = cluster();
    let (a, b) = (sim.mon("s2", "f"), sim.mon("s2", "f"));
    sim.run();
    let mon1s = sim
        .wire
        .iter()
        .filter(|(f, _, p)| f == "s2" && p[1] == "g_mon1")
        .count();
    assert_eq!(mon1s, 1, "one g_mon1 per family");
    sim.node("s2").db_mon_stop(a);
    sim.collect("s2");
    sim.set("s6", "f", "k", json!(1));
    sim.run();
    assert_eq!(
        sim.mon_calls("s2", a).len(),
        1,
        "stopped: only the first call"
    );
    assert_eq!(sim.mon_calls("s2", b).len(), 2);
    sim.node("s2").db_mon_stop(b);
    sim.collect("s2");
    let last = sim.wire.last().unwrap();
    assert_eq!((last.0.as_str(), last.1.as_str()), ("s2", "g1"));
    assert_eq!(last.2, vec![json!(""), json!("g_mon0"), json!("f")]);
    sim.run();
    let before = sim.wire.len();
    sim.set("s6", "f", "k", json!(2));
    sim.run();
    assert!(
        sim.wire[before..].iter().all(|(_, to, _)| to != "s2"),
        "the master no longer sends changes to s2"
    );
}

#[test]
fn db_del_of_a_key_this_node_never_set_removes_nothing_91() {
    let mut sim = cluster();
    sim.set("s1", "f", "k", json!(1));
    sim.run();
    let before = sim.wire.len();
    sim.del("s2", "f", "k");
    sim.del("s5", "f", "k");
    assert_eq!(sim.wire.len(), before, "nothing to tell the master");
    sim.run();
    for n in ALL {
        assert_eq!(
            sim.family(n, "f"),
            [("k".to_string(), json!(1))].into(),
            "{n}"
        );
    }
}

#[test]
fn a_dead_slaves_keys_vanish_everywhere_and_monitors_see_del_92() {
    let mut sim = cluster();
    sim.set("s2", "f", "s2key", json!(1));
    sim.set("s5", "f", "s5key", json!(1));
    sim.run();
    let mons: Vec<_> = ["s1", "s4", "g2"]
        .iter()
        .map(|n| (*n, sim.mon(n, "f")))
        .collect();
    sim.run();
    sim.kill("s2");
    sim.run();
    for (n, m) in mons {
        assert_eq!(sim.mon_calls(n, m).last().unwrap().2, ["s2key"], "{n}");
        assert_eq!(sim.view(n, m).keys().collect::<Vec<_>>(), ["s5key"]);
    }
    for g in ["g1", "g2"] {
        let st = sim.node(g).global_store().unwrap();
        assert!(st.get("'l", "s2").is_none(), "{g} still has s2's address");
        assert!(st.get("f", "s2key").is_none());
    }
}

#[test]
fn a_second_db_mon_gets_the_current_contents_at_once_93() {
    let mut sim = cluster();
    sim.set("s4", "f", "a", json!(1));
    sim.set("s1", "f", "b", json!(2));
    sim.run();
    let first = sim.mon("s3", "f");
    sim.run();
    let second = sim.mon("s3", "f");
    // No delivery needed: the cache answers.
    assert_eq!(
        sim.mon_calls("s3", second),
        [(vec!["a".into(), "b".into()], vec![], vec![])]
    );
    assert_eq!(sim.view("s3", second), sim.view("s3", first));
}

#[test]
fn find_resolves_listen_addresses_via_the_master() {
    let mut sim = cluster();
    for (who, target, want) in [
        ("s1", "s5", Some(vec!["10.0.0.5:4040".to_string()])),
        ("s6", "s2", Some(vec!["10.0.0.2:4040".to_string()])),
        ("g1", "s4", Some(vec!["10.0.0.4:4040".to_string()])),
        ("s2", "nobody", None),
    ] {
        sim.node(who).find(target);
        sim.collect(who);
        sim.run();
        let found = sim.events[who].iter().find_map(|e| match e {
            Event::Found { node, addresses } if node == target => Some(addresses.clone()),
            _ => None,
        });
        assert_eq!(found, Some(want), "{who} finds {target}");
    }
}

#[test]
fn a_node_that_receives_g_slave_becomes_global_and_meshes() {
    let mut sim = cluster();
    sim.set("s3", "f", "s3key", json!(3));
    sim.run();
    // s3 is also a seed of a new node x: the bare g_slave makes s3 global.
    sim.add("x");
    sim.set("x", "f", "xkey", json!("x"));
    sim.connect("x", "s3", true, false);
    sim.run();
    assert!(sim.events["s3"].contains(&Event::BecameGlobal));
    assert!(sim.node("s3").is_global());
    assert_eq!(sim.node("s3").master(), Some("s3"));
    // Its g_set to the globals it meshes with carries its own entries.
    for g in ["g1", "g2"] {
        let g_set = sim
            .wire
            .iter()
            .find(|(f, t, p)| f == "s3" && t == g && p[1] == "g_set");
        assert_eq!(g_set.unwrap().2[2]["f"]["s3key"], json!(3), "g_set to {g}");
    }
    // s3 told g1 (its old master) and g2 it is global; they mesh.
    for g in ["g1", "g2", "s3"] {
        let store = sim.node(g).global_store().unwrap();
        assert_eq!(store.keys("'g"), ["g1", "g2", "s3"], "{g}");
    }
    for n in ["g1", "s5", "x"] {
        let fam = sim.family(n, "f");
        assert_eq!(fam.keys().collect::<Vec<_>>(), ["s3key", "xkey"], "{n}");
    }
}

#[test]
fn a_third_global_learns_the_others_from_g_and_connects() {
    let mut sim = cluster();
    sim.add_global("g3");
    sim.add("s7");
    sim.connect_seeds("s7", &["g3"]);
    sim.set("s7", "f", "k7", json!(7));
    sim.connect("g3", "g1", true, true);
    sim.run();
    let want = Event::Globals(vec!["g1".into(), "g2".into()]);
    assert!(sim.events["g3"].contains(&want), "{:?}", sim.events["g3"]);
    // The driver connects g3 to g2.
    sim.connect("g3", "g2", false, false);
    sim.run();
    sim.set("s4", "f", "k4", json!(4));
    sim.run();
    for n in ["s1", "s4", "s7"] {
        assert_eq!(
            sim.family(n, "f").keys().collect::<Vec<_>>(),
            ["k4", "k7"],
            "{n}"
        );
    }
}

#[test]
fn malformed_and_foreign_packets_are_ignored() {
    let mut sim = cluster();
    let m = sim.mon("s1", "f");
    sim.run();
    let node = sim.node("s1");
    for (tag, args) in [
        ("g_chg2", vec![json!("f"), json!(3)]),
        ("g_reply", vec![]),
        ("g_upd", vec![json!(""), json!({})]),
        ("g_slave", vec![json!([1, 2])]),
        ("g_found", vec![json!("n"), json!({"a": 1})]),
        ("g_whatever", vec![Value::Null]),
    ] {
        node.packet("g1", tag, &args);
    }
    // A well-formed change from a node that is not our master.
    node.packet("g2", "g_chg2", &[json!("f"), json!({"evil": 1}), json!([])]);
    node.packet("s1", "g_slave", &[]);
    assert!(node.take_packets().is_empty());
    assert!(node.take_events().is_empty());
    assert!(!node.is_global());
    assert!(sim.view("s1", m).is_empty());
}

#[test]
fn the_local_api_rejects_bad_families_and_keys_naming_them() {
    let mut sim = cluster();
    let n = sim.node("s1");
    let e = n.db_set("bad family", "k", json!(1)).unwrap_err();
    assert!(e.to_string().contains("\"bad family\""), "{e}");
    let e = n.db_set("f", "", json!(1)).unwrap_err();
    assert!(e.to_string().contains("\"f\""), "{e}");
    assert!(n.db_mon("1x").is_err());
    assert!(n.db_family("").is_err());
    assert!(n.take_packets().is_empty());
}

#[test]
fn grp_mon_arguments_are_ports_add_del_97() {
    let mut sim = cluster();
    let port = |n: &str| format!("{n}#worker");
    sim.set("s1", "workers", &port("s1"), Value::Null);
    sim.run();
    let m = sim.mon("s4", "workers");
    sim.run();
    sim.set("s5", "workers", &port("s5"), Value::Null);
    sim.run();
    sim.set("s5", "workers", &port("s5"), json!("ignored change"));
    sim.run();
    sim.kill("s1");
    sim.run();
    let args: Vec<_> = sim.events["s4"]
        .iter()
        .filter_map(|e| match e {
            Event::DbMon(ev) if ev.monitors.contains(&m) => {
                let (ports, add, del) = ev.grp_args();
                Some((ports, add.to_vec(), del.to_vec()))
            }
            _ => None,
        })
        .collect();
    let v = |x: &[&str]| x.iter().map(|s| port(s)).collect::<Vec<_>>();
    assert_eq!(
        args,
        [
            (v(&["s1"]), v(&["s1"]), v(&[])),
            (v(&["s1", "s5"]), v(&["s5"]), v(&[])),
            (v(&["s1", "s5"]), v(&[]), v(&[])),
            (v(&["s5"]), v(&[]), v(&["s1"])),
        ]
    );
}

#[test]
fn a_global_node_answers_its_own_requests_at_once() {
    let mut sim = cluster();
    let g = sim.node("g2");
    g.take_events();
    g.find("nobody");
    let q = g.db_keys("'l").unwrap();
    let m = g.db_mon("'l").unwrap();
    assert!(g.take_packets().is_empty(), "nothing goes over the network");
    let events = g.take_events();
    let found = Event::Found {
        node: "nobody".into(),
        addresses: None,
    };
    assert!(events.contains(&found), "no known address: fails at once");
    let keys: Vec<String> = (1..=6).map(|i| format!("s{i}")).collect();
    assert!(events.contains(&Event::Reply {
        query: q,
        result: QueryResult::Keys(keys.clone())
    }));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::DbMon(ev) if ev.monitors == [m] && ev.add == keys)));
}

#[test]
fn a_global_node_found_again_by_its_seed_connection_sends_g_global_once() {
    // Observed with Perl: g2 connected to g1 first (not yet known as a
    // seed), then g1's own seed connection identified g2. A second
    // g_global makes the receiver wipe what the sender told it (Perl's
    // g_global handler begins with g_disconnect), and g_set never comes
    // again: s2 would never see s1's entries.
    let mut sim = Sim::new();
    sim.add_global("g1");
    sim.add_global("g2");
    sim.connect("g1", "g2", false, false);
    for (s, g, v) in [("s1", "g1", 1), ("s2", "g2", 2)] {
        sim.add(s);
        sim.connect_seeds(s, &[g]);
        sim.set(s, "f", s, json!(v));
    }
    sim.run();
    sim.seed_identified("g1", "g2");
    sim.seed_identified("g2", "g1");
    sim.run();
    let globals = sim
        .wire
        .iter()
        .filter(|(f, t, p)| f == "g1" && t == "g2" && p[1] == "g_global")
        .count();
    assert_eq!(globals, 1);
    for n in ["g1", "g2", "s1", "s2"] {
        let fam = sim.family(n, "f");
        assert_eq!(fam.keys().collect::<Vec<_>>(), ["s1", "s2"], "{n}");
    }
}

#[test]
fn a_second_g_global_wipes_what_its_sender_told_before() {
    // Perl's rule, modelled: every g_global is a fresh start.
    let mut sim = cluster();
    sim.set("s4", "f", "k4", json!(4));
    sim.run();
    assert_eq!(sim.family("s1", "f").len(), 1);
    sim.node("g1").packet("g2", "g_global", &[]);
    sim.collect("g1");
    assert!(sim
        .node("g1")
        .global_store()
        .unwrap()
        .family("f")
        .is_empty());
    // g1 sent its own g_set to g2 again; g2's data comes back only with
    // g2's next g_set.
    sim.run();
    assert!(sim.family("s1", "f").is_empty());
}
