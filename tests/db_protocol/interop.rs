//! The packets of the captured Perl sessions: `json-session-2` (slave
//! `node2`, seed `seed`) for what our slave sends and what our global
//! answers; `json-session-1` and the CBOR session for the slave too.

use aemp::protocol::db::{DbNode, Event, QueryResult};
use serde_json::{json, Value};

/// The JSON packets of a capture file, after its three handshake lines.
fn packets(file: &str) -> Vec<Vec<Value>> {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let body = text.splitn(4, '\n').nth(3).unwrap();
    serde_json::Deserializer::from_str(body)
        .into_iter::<Vec<Value>>()
        .map(Result::unwrap)
        .collect()
}

/// The node-port `g_*` packets, with repeated bare `g_slave`s collapsed
/// (Perl sends one per seed connection event; one is enough).
fn global_packets(file: &str) -> Vec<Vec<Value>> {
    collapse(packets(file))
}

fn collapse(packets: Vec<Vec<Value>>) -> Vec<Vec<Value>> {
    let bare = vec![json!(""), json!("g_slave")];
    let mut out: Vec<Vec<Value>> = Vec::new();
    for p in packets {
        let repeat = p == bare && out.contains(&bare);
        if p[0] == "" && p[1].as_str().unwrap().starts_with("g_") && !repeat {
            out.push(p);
        }
    }
    out
}

/// The JSON column of `cbor-session.decoded.txt`: (c2s, s2c) packets.
fn cbor_packets() -> (Vec<Vec<Value>>, Vec<Vec<Value>>) {
    let path = format!(
        "{}/tests/data/cbor-session.decoded.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    let (c2s, s2c) = text.split_once("====").unwrap();
    let parse = |part: &str| {
        part.lines()
            .filter(|l| l.starts_with("CBOR"))
            .map(|l| serde_json::from_str(l.rsplit_once("| ").unwrap().1).unwrap())
            .collect()
    };
    (collapse(parse(c2s)), collapse(parse(s2c)))
}

#[test]
fn our_slave_sends_what_perls_slave_sent() {
    let want = global_packets("json-session-2.c2s");
    let mut n = DbNode::new("node2");
    n.db_set("interop2", "k1", json!({"v": 1})).unwrap();
    n.db_set("'l", "node2", json!(["127.0.0.1:4050"])).unwrap();
    assert!(n.take_packets().is_empty(), "no master yet");
    n.peer_up("seed", true);
    n.db_family("interop").unwrap();
    let mon = n.db_mon("interop").unwrap();
    n.find("seed");
    n.db_del("interop2", &["k1"]).unwrap();
    n.db_mon_stop(mon);
    let got: Vec<Vec<Value>> = n
        .take_packets()
        .into_iter()
        .map(|(to, p)| {
            assert_eq!(to, "seed");
            p
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn our_slave_understands_what_perls_seed_sent() {
    let mut n = DbNode::new("node2");
    n.peer_up("seed", true);
    let q = n.db_family("interop").unwrap();
    let mon = n.db_mon("interop").unwrap();
    n.find("seed");
    n.take_events();
    for p in global_packets("json-session-2.s2c") {
        n.packet("seed", p[1].as_str().unwrap(), &p[2..]);
    }
    let fam: aemp::protocol::db::Family = [("seed#0oObmMKHKb".to_string(), Value::Null)].into();
    let events = n.take_events();
    assert!(events.contains(&Event::Reply {
        query: q,
        result: QueryResult::Family(fam.clone())
    }));
    assert!(events.contains(&Event::Found {
        node: "seed".into(),
        addresses: Some(vec!["127.0.0.1:4040".into()])
    }));
    let Some(Event::DbMon(ev)) = events.iter().find(|e| matches!(e, Event::DbMon(_))) else {
        panic!("{events:?}")
    };
    assert_eq!(
        (ev.monitors.as_slice(), &*ev.fam, ev.add.as_slice()),
        (
            [mon].as_slice(),
            &fam,
            ["seed#0oObmMKHKb".to_string()].as_slice()
        )
    );
    assert!(
        !n.is_global(),
        "g_global from a seed does not make us global"
    );
}

#[test]
fn our_global_answers_what_perls_seed_answered() {
    let want = global_packets("json-session-2.s2c");
    let mut seed = DbNode::new("seed");
    seed.become_global();
    seed.db_set("interop", "seed#0oObmMKHKb", Value::Null)
        .unwrap();
    seed.db_set("'l", "seed", json!(["127.0.0.1:4040"]))
        .unwrap();
    seed.take_packets();
    seed.peer_up("node2", false);
    for p in global_packets("json-session-2.c2s") {
        seed.packet("node2", p[1].as_str().unwrap(), &p[2..]);
    }
    let got: Vec<Vec<Value>> = seed.take_packets().into_iter().map(|(_, p)| p).collect();
    assert_eq!(got, want);
    // node2's share is gone again: k1 was deleted, and its 'l entry goes
    // when it disconnects.
    let store = seed.global_store().unwrap();
    assert!(store.get("interop2", "k1").is_none());
    assert_eq!(store.get("'l", "node2"), Some(&json!(["127.0.0.1:4050"])));
    seed.peer_down("node2");
    assert!(seed.global_store().unwrap().get("'l", "node2").is_none());
}

#[test]
fn our_slave_sends_what_perls_slave_sent_in_session_1() {
    let want = global_packets("json-session-1.c2s");
    let mut n = DbNode::new("rustlike");
    n.db_set("'l", "rustlike", json!(["127.0.0.1:41693"]))
        .unwrap();
    n.peer_up("perlpeer", true);
    n.db_family("interop").unwrap();
    n.find("perlpeer");
    let got: Vec<_> = n.take_packets().into_iter().map(|(_, p)| p).collect();
    assert_eq!(got, want);
}

#[test]
fn our_slave_and_global_agree_with_the_cbor_session() {
    let (c2s, s2c) = cbor_packets();
    // Perl re-sent its pending requests in hash order; ours keep their
    // order, so the requests are made in the order Perl happened to send.
    let mut n = DbNode::new("node2");
    n.db_set("interop2", "k1", json!({"v": 1})).unwrap();
    n.db_set("'l", "node2", json!(["127.0.0.1:4050"])).unwrap();
    n.peer_up("seed", true);
    let mon = n.db_mon("interop").unwrap();
    n.find("seed");
    let q = n.db_family("interop").unwrap();
    n.db_del("interop2", &["k1"]).unwrap();
    n.db_mon_stop(mon);
    let got: Vec<_> = n.take_packets().into_iter().map(|(_, p)| p).collect();
    assert_eq!(got, c2s);

    let mut n = DbNode::new("node2");
    n.peer_up("seed", true);
    let mon = n.db_mon("interop").unwrap();
    n.find("seed");
    let q2 = n.db_family("interop").unwrap();
    assert_eq!(q, q2);
    n.take_events();
    for p in &s2c {
        n.packet("seed", p[1].as_str().unwrap(), &p[2..]);
    }
    let port = "seed#2lRtFpxjBb".to_string();
    let fam: aemp::protocol::db::Family = [(port.clone(), Value::Null)].into();
    let events = n.take_events();
    let Event::DbMon(ev) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(
        (ev.monitors.as_slice(), &ev.add),
        ([mon].as_slice(), &vec![port])
    );
    assert_eq!(
        events[1],
        Event::Found {
            node: "seed".into(),
            addresses: Some(vec!["127.0.0.1:4040".into()])
        }
    );
    assert_eq!(
        events[2],
        Event::Reply {
            query: q,
            result: QueryResult::Family(fam)
        }
    );

    // And our global answers node2's CBOR requests as Perl did (in its order).
    let mut seed = DbNode::new("seed");
    seed.become_global();
    seed.db_set("interop", "seed#2lRtFpxjBb", Value::Null)
        .unwrap();
    seed.db_set("'l", "seed", json!(["127.0.0.1:4040"]))
        .unwrap();
    seed.take_packets();
    seed.peer_up("node2", false);
    for p in &c2s {
        seed.packet("node2", p[1].as_str().unwrap(), &p[2..]);
    }
    let got: Vec<_> = seed.take_packets().into_iter().map(|(_, p)| p).collect();
    assert_eq!(got, s2c);
}
