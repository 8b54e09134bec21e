//! The database state machines must never panic on what peers send. Each
//! input line is one JSON packet from a peer; the first byte of the line
//! picks the peer (one of four) and whether that peer comes up (as a seed
//! or not) or goes down first. One node is a global (master) node, one an
//! ordinary node attached to it; both see every packet.
#![no_main]

use aemp::protocol::db::DbNode;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const PEERS: [&str; 4] = ["a", "b", "global", "me"];

fuzz_target!(|data: &[u8]| {
    let mut global = DbNode::new("global");
    global.become_global();
    let mut slave = DbNode::new("me");
    for line in data.split(|&b| b == b'\n') {
        let Some((&sel, json)) = line.split_first() else { continue };
        let from = PEERS[usize::from(sel & 3)];
        for node in [&mut global, &mut slave] {
            match sel >> 2 & 3 {
                1 => node.peer_up(from, sel & 16 != 0),
                2 => node.peer_down(from),
                _ => {}
            }
        }
        if let Ok(Value::Array(packet)) = serde_json::from_slice::<Value>(json) {
            for node in [&mut global, &mut slave] {
                node.node_packet(from, &packet);
                if let [Value::String(tag), args @ ..] = packet.as_slice() {
                    node.packet(from, tag, args);
                }
            }
        }
        // What the nodes would send must be encodable packets.
        for node in [&mut global, &mut slave] {
            for (_, p) in node.take_packets() {
                serde_json::to_vec(&p).expect("an outgoing packet is JSON");
            }
            let _ = node.take_events();
        }
    }
});
