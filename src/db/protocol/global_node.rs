//! The global side (protocol notes §11–12): serves the merged database to
//! slaves and exchanges it with the other global nodes.
//!
//! Two stores are kept. `all` is everything this node knows: the shards of
//! its slaves (itself included: a global node is its own slave), and one
//! shard per other global node holding what that node reported. `rep` is
//! the part this node *represents* to the other globals: itself and its
//! slaves. `g_set`/`g_upd` to other globals carry `rep`; queries and
//! monitors see `all`.
//!
//! The node's own `'g` entries (the globals it is meshed with) are set in
//! its *local* database through the slave path, like any entry of its own;
//! [`take_local_ops`](GlobalNode::take_local_ops) hands them to the driver.

use std::collections::{BTreeMap, BTreeSet};

use log::{debug, warn};
use serde_json::Value;

use super::store::{Changes, Store};
use super::wire::{self, GPacket, QueryKind};

/// The family of listen addresses.
pub const LISTENERS: &str = "'l";
/// The family of global nodes.
pub const GLOBALS: &str = "'g";

/// A change this global node wants in its own local database.
#[derive(Debug, Clone, PartialEq)]
pub enum LocalOp {
    /// `db_set family key value`.
    Set(String, String, Value),
    /// `db_del family key`.
    Del(String, String),
}

/// The global service of one node. Inputs: [`peer_up`](Self::peer_up),
/// [`peer_down`](Self::peer_down), [`handle`](Self::handle); outputs:
/// [`take_packets`](Self::take_packets), [`take_local_ops`](Self::take_local_ops),
/// [`take_globals`](Self::take_globals).
#[derive(Debug)]
pub struct GlobalNode {
    me: String,
    all: Store,
    rep: Store,
    slaves: BTreeSet<String>,
    globals: BTreeSet<String>,
    monitors: BTreeMap<String, BTreeSet<String>>,
    known_globals: Vec<String>,
    globals_changed: bool,
    out: Vec<(String, Vec<Value>)>,
    local: Vec<LocalOp>,
}

impl GlobalNode {
    /// The global service of node `me`.
    pub fn new(me: &str) -> GlobalNode {
        GlobalNode {
            me: me.to_owned(),
            all: Store::new(),
            rep: Store::new(),
            slaves: BTreeSet::new(),
            globals: BTreeSet::new(),
            monitors: BTreeMap::new(),
            known_globals: Vec::new(),
            globals_changed: false,
            out: Vec::new(),
            local: Vec::new(),
        }
    }

    /// The merged database (what queries and monitors see).
    pub fn store(&self) -> &Store {
        &self.all
    }

    /// The global nodes this one exchanges databases with.
    pub fn globals(&self) -> &BTreeSet<String> {
        &self.globals
    }

    /// A connection to `node` came up: tell it we are global.
    pub fn peer_up(&mut self, node: &str) {
        if node != self.me {
            self.send(node, wire::packet("g_global", []));
        }
    }

    /// `node` went down: everything it owned (or reported, for a global
    /// node) disappears, and our `'g` entry for it goes.
    pub fn peer_down(&mut self, node: &str) {
        if node == self.me {
            return;
        }
        let (mut all, mut rep) = (Changes::default(), Changes::default());
        self.all.remove_owner(node, &mut all);
        self.rep.remove_owner(node, &mut rep);
        self.slaves.remove(node);
        self.globals.remove(node);
        for mons in self.monitors.values_mut() {
            mons.remove(node);
        }
        self.monitors.retain(|_, m| !m.is_empty());
        self.local.push(LocalOp::Del(GLOBALS.into(), node.into()));
        self.flush(all, rep);
    }

    /// A global-side packet from `from` (`from` may be this node itself).
    /// Slave-side packets (`g_reply`, `g_chg*`, `g_found`) are ignored.
    pub fn handle(&mut self, from: &str, packet: GPacket) {
        let (mut all, mut rep) = (Changes::default(), Changes::default());
        match packet {
            GPacket::Slave(None) => {}
            GPacket::Slave(Some(db)) => {
                if self.globals.contains(from) {
                    warn!("global node {from} sent g_slave; treating it as a slave");
                    self.globals.remove(from);
                }
                self.slaves.insert(from.to_owned());
                self.all.replace_owner(from, db.clone(), &mut all);
                self.rep.replace_owner(from, db, &mut rep);
            }
            GPacket::Upd { family, set, del } => {
                self.on_upd(from, &family, set, del, &mut all, &mut rep)
            }
            GPacket::Set(db) => {
                if !self.globals.contains(from) {
                    debug!("g_set from {from}, which has not sent g_global");
                }
                self.all.replace_owner(from, db, &mut all);
            }
            GPacket::Global => self.on_global(from, &mut all, &mut rep),
            GPacket::Query { kind, family, id } => self.on_query(from, kind, &family, id),
            GPacket::Mon1(family) => self.on_mon1(from, family),
            GPacket::Mon0(family) => {
                if let Some(m) = self.monitors.get_mut(&family) {
                    m.remove(from);
                    if m.is_empty() {
                        self.monitors.remove(&family);
                    }
                }
            }
            GPacket::Find(node) => {
                let addrs = self
                    .all
                    .get(LISTENERS, &node)
                    .cloned()
                    .unwrap_or(Value::Null);
                self.send(from, wire::packet("g_found", [node.into(), addrs]));
            }
            other @ (GPacket::Reply { .. }
            | GPacket::Chg1 { .. }
            | GPacket::Chg2 { .. }
            | GPacket::Found { .. }) => {
                debug!("global side ignores {} from {from}", other.tag());
            }
        }
        self.flush(all, rep);
    }

    /// `g_upd` from `from`: its changes to one family (a node that sent no
    /// `g_slave` yet is taken as a slave; a global node's changes are not
    /// ours to represent).
    fn on_upd(
        &mut self,
        from: &str,
        family: &str,
        set: BTreeMap<String, Value>,
        del: Vec<String>,
        all: &mut Changes,
        rep: &mut Changes,
    ) {
        let represented = !self.globals.contains(from);
        if represented && self.slaves.insert(from.to_owned()) {
            debug!("g_upd from {from} before g_slave: taking it as a slave");
        }
        for (k, v) in set {
            if represented {
                self.rep.set(from, family, &k, v.clone(), rep);
            }
            self.all.set(from, family, &k, v, all);
        }
        for k in del {
            if represented {
                self.rep.del(from, family, &k, rep);
            }
            self.all.del(from, family, &k, all);
        }
    }

    /// `g_db_family` / `g_db_keys` / `g_db_values`: answered with `g_reply`.
    fn on_query(&mut self, from: &str, kind: QueryKind, family: &str, id: String) {
        let answer = match kind {
            QueryKind::Family => wire::family_value(&self.all.family(family)),
            QueryKind::Keys => wire::key_values(&self.all.keys(family)),
            QueryKind::Values => Value::Array(self.all.family(family).into_values().collect()),
        };
        self.send(from, wire::packet("g_reply", [id.into(), answer]));
    }

    /// `g_mon1`: the family's full contents now (`g_chg1`), its changes
    /// later.
    fn on_mon1(&mut self, from: &str, family: String) {
        let full = self.all.family(&family);
        let full = if full.is_empty() {
            Value::Null
        } else {
            wire::family_value(&full)
        };
        self.send(from, wire::packet("g_chg1", [family.clone().into(), full]));
        self.monitors
            .entry(family)
            .or_default()
            .insert(from.to_owned());
    }

    /// `g_global` from another global node: mesh with it and send it what
    /// we represent. A former slave of ours stops being represented by us.
    ///
    /// As Perl's handler, every `g_global` is a fresh start: what `from`
    /// told us before (its `g_set` data, with its `'g` and `'l` entries)
    /// is wiped first. So a node must announce itself once per connection.
    fn on_global(&mut self, from: &str, all: &mut Changes, rep: &mut Changes) {
        if from == self.me {
            return;
        }
        self.all.remove_owner(from, all);
        if self.slaves.remove(from) {
            self.rep.remove_owner(from, rep);
            for mons in self.monitors.values_mut() {
                mons.remove(from);
            }
        }
        self.globals.insert(from.to_owned());
        self.local
            .push(LocalOp::Set(GLOBALS.into(), from.into(), Value::Null));
        let db = wire::db_value(&self.rep.dump());
        self.send(from, wire::packet("g_set", [db]));
    }

    fn flush(&mut self, all: Changes, rep: Changes) {
        for (family, fc) in rep.0 {
            let p = wire::packet(
                "g_upd",
                [
                    family.into(),
                    wire::family_value(&fc.set),
                    wire::key_values(&fc.del),
                ],
            );
            for g in &self.globals {
                self.out.push((g.clone(), p.clone()));
            }
        }
        for (family, fc) in all.0 {
            if family == GLOBALS {
                self.globals_changed = true;
            }
            let Some(mons) = self.monitors.get(&family) else {
                continue;
            };
            let p = wire::packet(
                "g_chg2",
                [
                    family.into(),
                    wire::family_value(&fc.set),
                    wire::key_values(&fc.del),
                ],
            );
            for m in mons {
                self.out.push((m.clone(), p.clone()));
            }
        }
    }

    fn send(&mut self, to: &str, packet: Vec<Value>) {
        self.out.push((to.to_owned(), packet));
    }

    /// Takes the packets to send, `(to_node, packet)`, in order. Packets to
    /// this node itself are among them (the driver routes them back).
    pub fn take_packets(&mut self) -> Vec<(String, Vec<Value>)> {
        std::mem::take(&mut self.out)
    }

    /// Takes the changes wanted in this node's local database.
    pub fn take_local_ops(&mut self) -> Vec<LocalOp> {
        std::mem::take(&mut self.local)
    }

    /// The global nodes to keep connections to (family `'g` minus this
    /// node), if that set changed since the last call.
    pub fn take_globals(&mut self) -> Option<Vec<String>> {
        if !std::mem::take(&mut self.globals_changed) {
            return None;
        }
        let now: Vec<String> = self
            .all
            .keys(GLOBALS)
            .into_iter()
            .filter(|g| *g != self.me)
            .collect();
        if now == self.known_globals {
            return None;
        }
        self.known_globals = now.clone();
        Some(now)
    }
}
