//! One node's database service: the [`Slave`] side always, plus the
//! [`GlobalNode`] side once the node is global, wired together so that a
//! global node is its own master (packets "to self" go straight across).
//!
//! This is what a network driver holds, one per node:
//! - inputs: [`peer_up`](DbNode::peer_up), [`peer_down`](DbNode::peer_down),
//!   [`packet`](DbNode::packet) for every `["", "g_…", …]` node-port packet,
//!   [`become_global`](DbNode::become_global) when a seed turns out to be
//!   this node itself, and the local API (`db_set`, `db_del`, queries,
//!   `db_mon`, `find`);
//! - outputs: after each input, [`take_packets`](DbNode::take_packets)
//!   (`(to_node, ["", tag, …])`, in send order per node) and
//!   [`take_events`](DbNode::take_events).
//!
//! No clock and no sockets: retries and timeouts belong to the driver.

use std::collections::BTreeSet;

use log::{debug, warn};
use serde_json::Value;

use super::error::Error;
use super::events::{Event, MonId, QueryId};
use super::global_node::{GlobalNode, LocalOp, GLOBALS};
use super::slave::Slave;
use super::store::{Db, Store};
use super::wire::{self, GPacket, QueryKind};

/// The database service of one node. See the [module docs](self).
#[derive(Debug)]
pub struct DbNode {
    me: String,
    slave: Slave,
    global: Option<GlobalNode>,
    peers: BTreeSet<String>,
    global_peers: BTreeSet<String>,
    packets: Vec<(String, Vec<Value>)>,
    events: Vec<Event>,
}

impl DbNode {
    /// The service of node `me`: a slave without a master.
    pub fn new(me: &str) -> DbNode {
        DbNode {
            me: me.to_owned(),
            slave: Slave::new(me),
            global: None,
            peers: BTreeSet::new(),
            global_peers: BTreeSet::new(),
            packets: Vec::new(),
            events: Vec::new(),
        }
    }

    /// This node's ID.
    pub fn node_id(&self) -> &str {
        &self.me
    }

    /// Whether this node is global.
    pub fn is_global(&self) -> bool {
        self.global.is_some()
    }

    /// The current master (this node itself once global).
    pub fn master(&self) -> Option<&str> {
        self.slave.master()
    }

    /// The entries this node set.
    pub fn local_db(&self) -> &Db {
        self.slave.local_db()
    }

    /// The merged database, on a global node.
    pub fn global_store(&self) -> Option<&Store> {
        self.global.as_ref().map(GlobalNode::store)
    }

    /// Starts the global service (idempotent): this node becomes its own
    /// master, tells every connected peer `g_global`, meshes with the
    /// global peers that announced themselves, and adds itself to `'g`.
    pub fn become_global(&mut self) {
        if self.global.is_some() {
            return;
        }
        self.global = Some(GlobalNode::new(&self.me));
        self.events.push(Event::BecameGlobal);
        // Our own g_slave reaches our global side first: the g_set we send
        // other globals must carry our entries, and a later 'g update must
        // not be undone by that g_slave's full replacement.
        self.slave.become_own_master();
        self.pump();
        if let Some(g) = &mut self.global {
            for p in &self.peers {
                g.peer_up(p);
            }
            for p in &self.global_peers {
                g.handle(p, GPacket::Global);
            }
        }
        let me = self.me.clone();
        if let Err(e) = self.slave.db_set(GLOBALS, &me, Value::Null) {
            warn!("cannot list ourselves in 'g: {e}");
        }
        self.pump();
    }

    /// A connection to `node` completed; `seed` says whether it is one of
    /// our seeds (then it is sent `g_slave` and may become our master).
    ///
    /// Everything is announced once per connection: a second call for a
    /// peer that is up only tells, with `seed`, that it is a seed after
    /// all (see [`peer_is_seed`](DbNode::peer_is_seed)). A global node
    /// (Perl's as ours) takes every `g_global` as a fresh start and wipes
    /// what the sender told it before, which the sender never repeats.
    pub fn peer_up(&mut self, node: &str, seed: bool) {
        if node == self.me {
            warn!("{}: peer_up for ourselves ignored", self.me);
            return;
        }
        if !self.peers.insert(node.to_owned()) {
            debug!("{}: peer_up for {node}, which is up already", self.me);
            if seed {
                self.peer_is_seed(node);
            }
            return;
        }
        if let Some(g) = &mut self.global {
            g.peer_up(node);
        }
        self.slave.peer_up(node, seed);
        self.pump();
    }

    /// The connected peer `node` turned out to be one of our seeds (our own
    /// seed connection reached it after its connection came up): it is
    /// sent `g_slave` and may become our master. Nothing else is sent
    /// again.
    pub fn peer_is_seed(&mut self, node: &str) {
        if !self.peers.contains(node) {
            debug!("{}: {node} is a seed, but not up", self.me);
            return;
        }
        self.slave.peer_up(node, true);
        self.pump();
    }

    /// The connection to `node` is gone.
    pub fn peer_down(&mut self, node: &str) {
        if !self.peers.remove(node) {
            debug!("{}: peer_down for {node}, which was not up", self.me);
        }
        self.global_peers.remove(node);
        self.slave.peer_down(node);
        if let Some(g) = &mut self.global {
            g.peer_down(node);
        }
        self.pump();
    }

    /// A node-port packet `["", tag, args...]` from `from` whose tag starts
    /// with `g_`. Malformed packets are logged and ignored.
    pub fn packet(&mut self, from: &str, tag: &str, args: &[Value]) {
        let p = match wire::parse(tag, args) {
            Ok(p) => p,
            Err(why) => {
                warn!("{}: ignoring malformed {tag} from {from}: {why}", self.me);
                return;
            }
        };
        if from == self.me {
            warn!(
                "{}: ignoring {tag} claiming to come from ourselves",
                self.me
            );
            return;
        }
        self.dispatch(from, p);
        self.pump();
    }

    /// Takes a whole received packet if it is a node-port `g_*` request
    /// (`["", "g_…", args…]`) and returns true; returns false, ignoring it,
    /// for anything else.
    pub fn node_packet(&mut self, from: &str, packet: &[Value]) -> bool {
        match packet {
            [port, Value::String(tag), args @ ..] if port == "" && tag.starts_with("g_") => {
                self.packet(from, tag, args);
                true
            }
            _ => false,
        }
    }

    fn dispatch(&mut self, from: &str, p: GPacket) {
        match p {
            GPacket::Slave(_) if self.global.is_none() => {
                self.become_global();
                self.dispatch(from, p);
            }
            GPacket::Global => {
                self.global_peers.insert(from.to_owned());
                if let Some(g) = &mut self.global {
                    g.handle(from, p);
                }
            }
            GPacket::Reply { .. }
            | GPacket::Chg1 { .. }
            | GPacket::Chg2 { .. }
            | GPacket::Found { .. } => self.slave.handle(from, p),
            p => match &mut self.global {
                Some(g) => g.handle(from, p),
                None => debug!("{}: not global, ignoring {} from {from}", self.me, p.tag()),
            },
        }
    }

    /// Routes packets between our two sides until nothing moves, collecting
    /// what leaves the node.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for (to, p) in self.slave.take_packets() {
                if to != self.me {
                    self.packets.push((to, p));
                } else if let (Some(g), Some(gp)) = (&mut self.global, parse_own(&p)) {
                    g.handle(&self.me.clone(), gp);
                    moved = true;
                }
            }
            if let Some(g) = &mut self.global {
                for op in g.take_local_ops() {
                    let r = match op {
                        LocalOp::Set(f, k, v) => self.slave.db_set(&f, &k, v),
                        LocalOp::Del(f, k) => self.slave.db_del(&f, &[k.as_str()]),
                    };
                    if let Err(e) = r {
                        warn!("{}: global bookkeeping in 'g failed: {e}", self.me);
                    }
                    moved = true;
                }
                for (to, p) in g.take_packets() {
                    if to != self.me {
                        self.packets.push((to, p));
                    } else if let Some(gp) = parse_own(&p) {
                        self.slave.handle(&self.me, gp);
                        moved = true;
                    }
                }
                if let Some(list) = g.take_globals() {
                    self.events.push(Event::Globals(list));
                }
            }
            self.events.extend(self.slave.take_events());
            if !moved {
                return;
            }
        }
    }

    /// Sets `family`/`key` in our local database (see [`Slave::db_set`]).
    pub fn db_set(&mut self, family: &str, key: &str, value: Value) -> Result<(), Error> {
        let r = self.slave.db_set(family, key, value);
        self.pump();
        r
    }

    /// Deletes our own `keys` of `family` (see [`Slave::db_del`]).
    pub fn db_del(&mut self, family: &str, keys: &[&str]) -> Result<(), Error> {
        let r = self.slave.db_del(family, keys);
        self.pump();
        r
    }

    /// Queries a whole family; answered by [`Event::Reply`].
    pub fn db_family(&mut self, family: &str) -> Result<QueryId, Error> {
        self.query(QueryKind::Family, family)
    }

    /// Queries a family's keys; answered by [`Event::Reply`].
    pub fn db_keys(&mut self, family: &str) -> Result<QueryId, Error> {
        self.query(QueryKind::Keys, family)
    }

    /// Queries a family's values; answered by [`Event::Reply`].
    pub fn db_values(&mut self, family: &str) -> Result<QueryId, Error> {
        self.query(QueryKind::Values, family)
    }

    fn query(&mut self, kind: QueryKind, family: &str) -> Result<QueryId, Error> {
        let r = self.slave.query(kind, family);
        self.pump();
        r
    }

    /// Subscribes to a family (see [`Slave::db_mon`]).
    pub fn db_mon(&mut self, family: &str) -> Result<MonId, Error> {
        let r = self.slave.db_mon(family);
        self.pump();
        r
    }

    /// Ends a subscription (see [`Slave::db_mon_stop`]).
    pub fn db_mon_stop(&mut self, mon: MonId) {
        self.slave.db_mon_stop(mon);
        self.pump();
    }

    /// Looks up a node's listen addresses; answered by [`Event::Found`].
    pub fn find(&mut self, node: &str) {
        self.slave.find(node);
        self.pump();
    }

    /// Takes the packets to send, `(to_node, packet)`, in order.
    pub fn take_packets(&mut self) -> Vec<(String, Vec<Value>)> {
        std::mem::take(&mut self.packets)
    }

    /// Takes the events produced so far.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

/// Parses a packet one side of this node built for the other.
fn parse_own(p: &[Value]) -> Option<GPacket> {
    let tag = p.get(1)?.as_str()?;
    match wire::parse(tag, &p[2..]) {
        Ok(gp) => Some(gp),
        Err(why) => {
            warn!("internal {tag} packet malformed: {why}");
            None
        }
    }
}
