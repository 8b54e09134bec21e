//! Any packet from the network, however malformed, is handled or ignored
//! without a panic, on a slave and on a global node.

use aemp::protocol::db::DbNode;
use proptest::prelude::*;
use serde_json::{json, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec!["", "f", "'l", "'g", "b", "g", "s", "x#p"]).prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec!["", "f", "'l", "k", "s", "g"]).prop_map(str::to_owned),
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const TAGS: [&str; 16] = [
    "g_slave",
    "g_upd",
    "g_set",
    "g_global",
    "g_db_family",
    "g_db_keys",
    "g_db_values",
    "g_reply",
    "g_mon1",
    "g_mon0",
    "g_chg1",
    "g_chg2",
    "g_find",
    "g_found",
    "g_other",
    "",
];

proptest! {
    #[test]
    fn random_packets_never_panic(
        packets in prop::collection::vec(
            (prop::sample::select(&TAGS[..]), prop::sample::select(vec!["g", "s"]), prop::collection::vec(json_value(), 0..4)),
            1..40,
        )
    ) {
        let mut slave = DbNode::new("s");
        slave.peer_up("g", true);
        slave.db_mon("f").unwrap();
        slave.db_family("f").unwrap();
        let mut global = DbNode::new("g");
        global.become_global();
        global.peer_up("s", false);
        global.peer_up("h", false);
        global.db_mon("f").unwrap();
        global.db_set("f", "k", json!(1)).unwrap();
        for (tag, from, args) in packets {
            slave.packet(if from == "s" { "h" } else { from }, tag, &args);
            global.packet(if from == "g" { "h" } else { from }, tag, &args);
        }
        slave.peer_down("g");
        global.peer_down("s");
        global.peer_down("h");
        slave.take_packets();
        global.take_packets();
    }
}

#[test]
fn node_packet_takes_only_node_port_g_packets() {
    let mut n = DbNode::new("s");
    for p in [
        json!([]),
        json!(["", ""]),
        json!(["", "snd", "x"]),
        json!(["port", "g_reply", "b", {}]),
        json!(["", 5]),
    ] {
        assert!(!n.node_packet("g", p.as_array().unwrap()), "{p}");
    }
    assert!(n.node_packet("g", json!(["", "g_global"]).as_array().unwrap()));
    assert!(
        n.node_packet("g", json!(["", "g_bogus"]).as_array().unwrap()),
        "taken, logged, ignored"
    );
    assert!(n.take_packets().is_empty());
}
