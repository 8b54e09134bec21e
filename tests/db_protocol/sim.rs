//! An in-memory network of `DbNode`s: per-link FIFO queues (like TCP),
//! delivery in link order or at random across links, link cuts and node
//! deaths. Every `db_mon` event is checked against the monitor's view as it
//! goes: `add` keys must be new, `chg` keys present with a new value, `del`
//! keys present, and the applied view must equal the event's `fam`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use aemp::protocol::db::{DbNode, Event, Family, MonId, QueryId, QueryResult};
use serde_json::Value;

/// xorshift64*: enough randomness for delivery orders, reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Default)]
pub struct Sim {
    pub nodes: BTreeMap<String, DbNode>,
    links: BTreeSet<(String, String)>,
    queues: BTreeMap<(String, String), VecDeque<Vec<Value>>>,
    /// Every event a node produced, except checked `DbMon`s (see `views`).
    pub events: BTreeMap<String, Vec<Event>>,
    /// node → monitor → the view accumulated from its events.
    pub views: BTreeMap<String, BTreeMap<MonId, Family>>,
    /// node → monitor → number of calls.
    pub calls: BTreeMap<String, BTreeMap<MonId, usize>>,
    /// Packets sent, for checks on what went over the wire: (from, to, packet).
    pub wire: Vec<(String, String, Vec<Value>)>,
    /// (from, to) that sent `g_global` on their current link: a second one
    /// fails the test, as it breaks a Perl global node (its `g_global`
    /// handler wipes what the sender told it before, and so does ours).
    announced: BTreeSet<(String, String)>,
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a < b {
        (a.into(), b.into())
    } else {
        (b.into(), a.into())
    }
}

impl Sim {
    pub fn new() -> Sim {
        let _ = env_logger::builder().is_test(true).try_init();
        Sim::default()
    }

    pub fn add(&mut self, id: &str) {
        self.nodes.insert(id.into(), DbNode::new(id));
    }

    /// A global node: a seed whose seed list contains itself.
    pub fn add_global(&mut self, id: &str) {
        self.add(id);
        self.node(id).become_global();
        self.collect(id);
    }

    pub fn node(&mut self, id: &str) -> &mut DbNode {
        self.nodes
            .get_mut(id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// Connects `a` and `b`; `a_seeds_b`: b is one of a's seeds, and so on.
    pub fn connect(&mut self, a: &str, b: &str, a_seeds_b: bool, b_seeds_a: bool) {
        assert!(self.links.insert(pair(a, b)), "{a}-{b} already up");
        self.announced.remove(&(a.into(), b.into()));
        self.announced.remove(&(b.into(), a.into()));
        self.node(a).peer_up(b, a_seeds_b);
        self.collect(a);
        self.node(b).peer_up(a, b_seeds_a);
        self.collect(b);
    }

    /// `a`'s own seed connection reached `b`, which is connected already
    /// (the driver tells the database again, now as a seed).
    pub fn seed_identified(&mut self, a: &str, b: &str) {
        assert!(self.links.contains(&pair(a, b)), "{a}-{b} not up");
        self.node(a).peer_up(b, true);
        self.collect(a);
    }

    /// A slave connects to its seeds in order: the first becomes its master.
    pub fn connect_seeds(&mut self, slave: &str, seeds: &[&str]) {
        for s in seeds {
            self.connect(slave, s, true, false);
        }
    }

    /// Breaks the link: queued packets are lost, both ends see peer_down.
    pub fn cut(&mut self, a: &str, b: &str) {
        assert!(self.links.remove(&pair(a, b)), "{a}-{b} not up");
        self.queues.remove(&(a.into(), b.into()));
        self.queues.remove(&(b.into(), a.into()));
        for (x, y) in [(a, b), (b, a)] {
            if self.nodes.contains_key(x) {
                self.node(x).peer_down(y);
                self.collect(x);
            }
        }
    }

    pub fn is_linked(&self, a: &str, b: &str) -> bool {
        self.links.contains(&pair(a, b))
    }

    /// The node dies: every link of it breaks.
    pub fn kill(&mut self, id: &str) {
        self.nodes.remove(id);
        let mine: Vec<_> = self
            .links
            .iter()
            .filter(|(x, y)| x == id || y == id)
            .cloned()
            .collect();
        for (x, y) in mine {
            self.links.remove(&(x.clone(), y.clone()));
            self.queues.remove(&(x.clone(), y.clone()));
            self.queues.remove(&(y.clone(), x.clone()));
            let other = if x == id { y } else { x };
            self.node(&other).peer_down(id);
            self.collect(&other);
        }
    }

    /// Moves a node's output into the link queues and checks its events.
    pub fn collect(&mut self, id: &str) {
        let node = self.nodes.get_mut(id).unwrap();
        let packets = node.take_packets();
        let events = node.take_events();
        for (to, p) in packets {
            assert_ne!(to, id, "packets to self must stay inside the node");
            self.wire.push((id.into(), to.clone(), p.clone()));
            if p.get(1).is_some_and(|t| t == "g_global") {
                assert!(
                    self.announced.insert((id.into(), to.clone())),
                    "{id} sent g_global to {to} twice on one connection"
                );
            }
            if self.links.contains(&pair(id, &to)) {
                self.queues.entry((id.into(), to)).or_default().push_back(p);
            }
        }
        for e in events {
            match e {
                Event::DbMon(ev) => {
                    for m in &ev.monitors {
                        *self
                            .calls
                            .entry(id.into())
                            .or_default()
                            .entry(*m)
                            .or_default() += 1;
                        let views = self.views.entry(id.into()).or_default();
                        let view = views.entry(*m).or_default();
                        check_delta(id, *m, view, &ev.fam, &ev.add, &ev.chg, &ev.del);
                    }
                    self.events
                        .entry(id.into())
                        .or_default()
                        .push(Event::DbMon(ev));
                }
                e => self.events.entry(id.into()).or_default().push(e),
            }
        }
    }

    fn deliver(&mut self, from: String, to: String) {
        let p = self
            .queues
            .get_mut(&(from.clone(), to.clone()))
            .unwrap()
            .pop_front()
            .unwrap();
        assert!(
            self.node(&to).node_packet(&from, &p),
            "not a g_* packet: {p:?}"
        );
        self.collect(&to);
    }

    /// Delivers one packet from the first non-empty link; false if idle.
    pub fn step(&mut self) -> bool {
        let Some(k) = self
            .queues
            .iter()
            .find(|(_, q)| !q.is_empty())
            .map(|(k, _)| k.clone())
        else {
            return false;
        };
        self.deliver(k.0, k.1);
        true
    }

    /// Delivers one packet from a random non-empty link; false if idle.
    pub fn step_random(&mut self, rng: &mut Rng) -> bool {
        let busy: Vec<_> = self
            .queues
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        if busy.is_empty() {
            return false;
        }
        let k = busy[rng.below(busy.len())].clone();
        self.deliver(k.0, k.1);
        true
    }

    /// Delivers until nothing is queued.
    pub fn run(&mut self) {
        for _ in 0..1_000_000 {
            if !self.step() {
                return;
            }
        }
        panic!("the network does not settle");
    }

    pub fn run_random(&mut self, rng: &mut Rng) {
        for _ in 0..1_000_000 {
            if !self.step_random(rng) {
                return;
            }
        }
        panic!("the network does not settle");
    }

    /// Queries a family from `id` and runs the network until the answer.
    pub fn family(&mut self, id: &str, f: &str) -> Family {
        let q = self.node(id).db_family(f).unwrap();
        self.collect(id);
        self.run();
        match self.reply(id, q) {
            Some(QueryResult::Family(m)) => m,
            other => panic!("{id}: no family answer for {f}: {other:?}"),
        }
    }

    /// The answer to query `q` on node `id`, if it came.
    pub fn reply(&self, id: &str, q: QueryId) -> Option<QueryResult> {
        self.events.get(id)?.iter().find_map(|e| match e {
            Event::Reply { query, result } if *query == q => Some(result.clone()),
            _ => None,
        })
    }

    /// The view of monitor `m` on node `id`.
    pub fn view(&self, id: &str, m: MonId) -> Family {
        self.views[id][&m].clone()
    }

    /// DbMon events of node `id` for monitor `m`, as (add, chg, del).
    pub fn mon_calls(&self, id: &str, m: MonId) -> Vec<(Vec<String>, Vec<String>, Vec<String>)> {
        let Some(evs) = self.events.get(id) else {
            return Vec::new();
        };
        evs.iter()
            .filter_map(|e| match e {
                Event::DbMon(ev) if ev.monitors.contains(&m) => {
                    Some((ev.add.clone(), ev.chg.clone(), ev.del.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// Sets a key on a node (and collects its output).
    pub fn set(&mut self, id: &str, f: &str, k: &str, v: Value) {
        self.node(id).db_set(f, k, v).unwrap();
        self.collect(id);
    }

    pub fn del(&mut self, id: &str, f: &str, k: &str) {
        self.node(id).db_del(f, &[k]).unwrap();
        self.collect(id);
    }

    pub fn mon(&mut self, id: &str, f: &str) -> MonId {
        let m = self.node(id).db_mon(f).unwrap();
        self.collect(id);
        m
    }
}

fn check_delta(
    id: &str,
    m: MonId,
    view: &mut Family,
    fam: &Family,
    add: &[String],
    chg: &[String],
    del: &[String],
) {
    for k in add {
        assert!(
            !view.contains_key(k),
            "{id} {m:?}: phantom add of {k} (already in {view:?})"
        );
        view.insert(k.clone(), fam[k].clone());
    }
    for k in chg {
        let old = view
            .get(k)
            .unwrap_or_else(|| panic!("{id} {m:?}: chg of absent {k}"));
        assert_ne!(old, &fam[k], "{id} {m:?}: chg of {k} without a change");
        view.insert(k.clone(), fam[k].clone());
    }
    for k in del {
        assert!(view.remove(k).is_some(), "{id} {m:?}: del of absent {k}");
        assert!(!fam.contains_key(k), "{id} {m:?}: del of {k} still in fam");
    }
    assert_eq!(
        view, fam,
        "{id} {m:?}: the deltas do not add up to the reported family"
    );
}
