//! The database toward internet scale, by simulation: the pure protocol
//! state machines (`aemp::protocol::db`) of 3 global nodes and N slaves on
//! an in-memory network, delivered in rounds (every packet queued at the
//! start of a round arrives in it; what that sends arrives in the next).
//!
//! - `dbsim_N_msgs_per_set`: packets a `db_set` on one slave causes while
//!   every node monitors the family (each monitor is told), and
//!   `dbsim_N_msgs_per_set_unwatched` with no monitors.
//! - `dbsim_N_rounds_after_global_death`: a global node dies and its
//!   slaves connect to another seed; rounds until no packet is in flight
//!   and every monitor sees the same family again (checked).
//!
//! How it grows (measured at 100, 300, 1,000): a `db_set` costs N + 3
//! packets when every node monitors the family (each monitor is told;
//! 3 without monitors: to the master, from it to the two other globals),
//! and the network settles in 3 rounds after a global node dies whatever
//! N; the work per change grows with N, so a full re-registration of a
//! third of the network costs O(N²) packets.

use super::Figure;
use aemp::protocol::db::{DbNode, Event, Family};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const GLOBALS: [&str; 3] = ["g0", "g1", "g2"];
const FAMILY: &str = "svc";

#[derive(Default)]
struct Net {
    nodes: BTreeMap<String, DbNode>,
    links: BTreeSet<(String, String)>,
    queue: VecDeque<(String, String, Vec<Value>)>,
    /// Packets sent so far.
    sent: usize,
    /// Each node's view of FAMILY, rebuilt from its monitor's deltas (the
    /// events themselves are dropped, as a callback would: keeping their
    /// shared family would make the next change copy it).
    views: BTreeMap<String, Family>,
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a < b {
        (a.into(), b.into())
    } else {
        (b.into(), a.into())
    }
}

impl Net {
    fn node(&mut self, id: &str) -> &mut DbNode {
        self.nodes.get_mut(id).expect("a live node")
    }

    fn collect(&mut self, id: &str) {
        let node = self.nodes.get_mut(id).expect("a live node");
        let (packets, events) = (node.take_packets(), node.take_events());
        for (to, p) in packets {
            if self.links.contains(&pair(id, &to)) {
                self.sent += 1;
                self.queue.push_back((id.into(), to, p));
            }
        }
        for e in events {
            if let Event::DbMon(ev) = e {
                let view = self.views.entry(id.into()).or_default();
                for k in ev.add.iter().chain(&ev.chg) {
                    view.insert(k.clone(), ev.fam[k].clone());
                }
                for k in &ev.del {
                    view.remove(k);
                }
            }
        }
    }

    fn connect(&mut self, a: &str, b: &str, a_seeds_b: bool) {
        self.links.insert(pair(a, b));
        self.node(a).peer_up(b, a_seeds_b);
        self.collect(a);
        self.node(b).peer_up(a, false);
        self.collect(b);
    }

    fn kill(&mut self, id: &str) {
        self.nodes.remove(id);
        self.views.remove(id);
        self.queue.retain(|(f, t, _)| f != id && t != id);
        let mine: Vec<_> = self
            .links
            .iter()
            .filter(|(x, y)| x == id || y == id)
            .cloned()
            .collect();
        for (x, y) in mine {
            self.links.remove(&(x.clone(), y.clone()));
            let other = if x == id { y } else { x };
            self.node(&other).peer_down(id);
            self.collect(&other);
        }
    }

    /// Delivers in rounds until nothing is in flight; the number of rounds.
    fn settle(&mut self) -> usize {
        let mut rounds = 0;
        while !self.queue.is_empty() {
            rounds += 1;
            for _ in 0..self.queue.len() {
                let (from, to, p) = self.queue.pop_front().expect("queued");
                if self.nodes.contains_key(&to) {
                    self.node(&to).node_packet(&from, &p);
                    self.collect(&to);
                }
            }
        }
        rounds
    }

    /// Every live node's monitor sees the same family as `g1`'s store.
    fn agreed(&self) -> bool {
        let want = self.views.get("g1");
        self.nodes.keys().all(|n| self.views.get(n) == want)
    }
}

/// 3 meshed global nodes and `n` slaves, slave `i` attached to global
/// `i % 3`, each with one entry in FAMILY; every node monitors it if
/// `watched`.
fn network(n: usize, watched: bool) -> Net {
    let mut net = Net::default();
    for g in GLOBALS {
        net.nodes.insert(g.into(), DbNode::new(g));
        net.node(g).become_global();
        net.collect(g);
    }
    for (i, a) in GLOBALS.iter().enumerate() {
        for b in &GLOBALS[i + 1..] {
            net.connect(a, b, true);
        }
    }
    for i in 0..n {
        let id = format!("s{i}");
        net.nodes.insert(id.clone(), DbNode::new(&id));
        net.node(&id).db_set(FAMILY, &id, json!(i)).expect("db_set");
        net.connect(&id, GLOBALS[i % 3], true);
    }
    if watched {
        let ids: Vec<String> = net.nodes.keys().cloned().collect();
        for id in ids {
            net.node(&id).db_mon(FAMILY).expect("db_mon");
            net.collect(&id);
        }
    }
    net.settle();
    net
}

/// Packets caused by one `db_set` on a slave.
fn msgs_per_set(n: usize, watched: bool) -> f64 {
    let mut net = network(n, watched);
    let before = net.sent;
    net.node("s1")
        .db_set(FAMILY, "extra", json!(1))
        .expect("db_set");
    net.collect("s1");
    net.settle();
    (net.sent - before) as f64
}

/// Rounds until the network settles and agrees after `g0` dies and its
/// slaves attach to `g1`.
fn rounds_after_global_death(n: usize) -> f64 {
    let mut net = network(n, true);
    assert!(net.agreed(), "the network did not agree before");
    net.kill("g0");
    for i in (0..n).filter(|i| i % 3 == 0) {
        net.connect(&format!("s{i}"), "g1", true);
    }
    let rounds = net.settle();
    assert!(net.agreed(), "the network did not agree after g0 died");
    let fam = net.views.get("g1").expect("g1 watches");
    assert_eq!(fam.len(), n, "every slave's entry is back");
    rounds as f64
}

pub fn figures(quick: bool) -> Vec<Figure> {
    // 1,000 takes about 20 s here: full runs only.
    let sizes: &[usize] = if quick {
        &[100, 300]
    } else {
        &[100, 300, 1000]
    };
    let mut out = Vec::new();
    for &n in sizes {
        out.push(Figure::new(
            &format!("dbsim_{n}_msgs_per_set"),
            msgs_per_set(n, true),
            "msgs",
        ));
        out.push(Figure::new(
            &format!("dbsim_{n}_msgs_per_set_unwatched"),
            msgs_per_set(n, false),
            "msgs",
        ));
        out.push(Figure::new(
            &format!("dbsim_{n}_rounds_after_global_death"),
            rounds_after_global_death(n),
            "rounds",
        ));
    }
    out
}
