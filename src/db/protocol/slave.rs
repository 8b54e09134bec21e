//! The slave side (protocol notes §11–12, acceptance §1.12): this node's own
//! database entries, requests that go to the master, and `db_mon` caches.
//!
//! Everything a node does with the database goes through here, global
//! nodes included: their master is themselves, and the driver
//! ([`DbNode`](super::DbNode)) routes the packets "to self" to the global
//! side. Requests wait in `pending`, in creation order, until answered
//! (monitors: until stopped); on every master change the whole local
//! database (`g_slave`) and then every pending request is sent again.

use std::collections::{BTreeMap, HashMap};

use log::{debug, warn};
use serde_json::Value;

use super::error::{check_family, check_key, Error};
use super::events::{Event, MonId, QueryId, QueryResult};
use super::store::{Db, Family};
use super::subscriptions::{Subscribe, Subscriptions};
use super::wire::{self, GPacket, QueryKind};

#[derive(Debug)]
enum Request {
    Query {
        id: String,
        kind: QueryKind,
        family: String,
        token: QueryId,
    },
    Find(String),
    Mon(String),
}

impl Request {
    fn packet(&self) -> Vec<Value> {
        match self {
            Request::Query {
                id, kind, family, ..
            } => wire::packet(kind.tag(), [family.as_str().into(), id.as_str().into()]),
            Request::Find(node) => wire::packet("g_find", [node.as_str().into()]),
            Request::Mon(family) => wire::packet("g_mon1", [family.as_str().into()]),
        }
    }
}

/// Perl's string increment on lowercase IDs: `a`→`b`, `z`→`aa`, `az`→`ba`.
fn next_id(id: &str) -> String {
    let mut b = id.as_bytes().to_vec();
    for i in (0..b.len()).rev() {
        if b[i] == b'z' {
            b[i] = b'a';
        } else {
            b[i] += 1;
            return String::from_utf8(b).expect("ascii");
        }
    }
    b.insert(0, b'a');
    String::from_utf8(b).expect("ascii")
}

/// The slave side of one node. See the [module docs](self).
#[derive(Debug)]
pub struct Slave {
    me: String,
    local: Db,
    master: Option<String>,
    own_master: bool,
    seeds: Vec<String>,
    last_id: String,
    next_seq: u64,
    pending: BTreeMap<u64, Request>,
    by_id: HashMap<String, u64>,
    finds: HashMap<String, u64>,
    mons: Subscriptions,
    next_token: u64,
    out: Vec<(String, Vec<Value>)>,
    events: Vec<Event>,
}

impl Slave {
    /// The slave side of node `me`, with no master yet.
    pub fn new(me: &str) -> Slave {
        Slave {
            me: me.to_owned(),
            local: Db::new(),
            master: None,
            own_master: false,
            seeds: Vec::new(),
            last_id: "a".to_owned(),
            next_seq: 0,
            pending: BTreeMap::new(),
            by_id: HashMap::new(),
            finds: HashMap::new(),
            mons: Subscriptions::default(),
            next_token: 0,
            out: Vec::new(),
            events: Vec::new(),
        }
    }

    /// The current master.
    pub fn master(&self) -> Option<&str> {
        self.master.as_deref()
    }

    /// The entries this node set.
    pub fn local_db(&self) -> &Db {
        &self.local
    }

    /// Sets `family`/`key` locally; an equal value sends nothing, another
    /// one is sent to the master (`g_upd f {k:v}`).
    pub fn db_set(&mut self, family: &str, key: &str, value: Value) -> Result<(), Error> {
        check_family(family)?;
        check_key(family, key)?;
        let fam = self.local.entry(family.to_owned()).or_default();
        if fam.get(key) == Some(&value) {
            return Ok(());
        }
        fam.insert(key.to_owned(), value.clone());
        let mut set = Family::new();
        set.insert(key.to_owned(), value);
        self.send_to_master(wire::packet(
            "g_upd",
            [family.into(), wire::family_value(&set)],
        ));
        Ok(())
    }

    /// Deletes those of `keys` that this node set (`g_upd f null [keys]`);
    /// other nodes' keys are never touched.
    pub fn db_del(&mut self, family: &str, keys: &[&str]) -> Result<(), Error> {
        check_family(family)?;
        let Some(fam) = self.local.get_mut(family) else {
            return Ok(());
        };
        let gone: Vec<String> = keys
            .iter()
            .filter_map(|k| fam.remove_entry(*k))
            .map(|(k, _)| k)
            .collect();
        if fam.is_empty() {
            self.local.remove(family);
        }
        if !gone.is_empty() {
            let p = wire::packet(
                "g_upd",
                [family.into(), Value::Null, wire::key_values(&gone)],
            );
            self.send_to_master(p);
        }
        Ok(())
    }

    /// Asks the master for a family, its keys or its values; the answer is
    /// an [`Event::Reply`] with the returned handle.
    pub fn query(&mut self, kind: QueryKind, family: &str) -> Result<QueryId, Error> {
        check_family(family)?;
        self.last_id = next_id(&self.last_id);
        let token = QueryId(self.token());
        let id = self.last_id.clone();
        let seq = self.request(Request::Query {
            id: id.clone(),
            kind,
            family: family.into(),
            token,
        });
        self.by_id.insert(id, seq);
        Ok(token)
    }

    /// Asks the master for `node`'s addresses; the answer is an
    /// [`Event::Found`]. One request per node is outstanding at a time.
    pub fn find(&mut self, node: &str) {
        if !self.finds.contains_key(node) {
            let seq = self.request(Request::Find(node.into()));
            self.finds.insert(node.into(), seq);
        }
    }

    /// Subscribes to a family. The first [`Event::DbMon`] for it lists the
    /// whole family in `add`; it comes at once if another subscription of
    /// this node already has the contents, else with the master's `g_chg1`.
    pub fn db_mon(&mut self, family: &str) -> Result<MonId, Error> {
        check_family(family)?;
        let mon = MonId(self.token());
        match self.mons.subscribe(family, mon) {
            Subscribe::Joined(first) => self.events.extend(first.map(Event::DbMon)),
            Subscribe::NewFamily => {
                let seq = self.request(Request::Mon(family.into()));
                self.mons.add_family(family, mon, seq);
            }
        }
        Ok(mon)
    }

    /// Ends a subscription; the family's last one sends `g_mon0` and drops
    /// the cache. Unknown handles are ignored.
    pub fn db_mon_stop(&mut self, mon: MonId) {
        if let Some((family, seq)) = self.mons.unsubscribe(mon) {
            self.pending.remove(&seq);
            self.send_to_master(wire::packet("g_mon0", [family.into()]));
        }
    }

    /// A connection to `node` came up. A seed is sent `["","g_slave"]` (it
    /// becomes global) and, if we have no master, becomes our master.
    pub fn peer_up(&mut self, node: &str, seed: bool) {
        if !seed || node == self.me || self.seeds.iter().any(|s| s == node) {
            return;
        }
        self.out.push((node.into(), wire::packet("g_slave", [])));
        self.seeds.push(node.into());
        if self.master.is_none() && !self.own_master {
            self.set_master(Some(node.into()));
        }
    }

    /// The connection to `node` went down; losing the master picks the
    /// first other connected seed.
    pub fn peer_down(&mut self, node: &str) {
        self.seeds.retain(|s| s != node);
        if !self.own_master && self.master.as_deref() == Some(node) {
            let next = self.seeds.first().cloned();
            self.set_master(next);
        }
    }

    /// This node became global: from now on it is its own master.
    pub fn become_own_master(&mut self) {
        if !self.own_master {
            self.own_master = true;
            let me = self.me.clone();
            self.set_master(Some(me));
        }
    }

    fn set_master(&mut self, master: Option<String>) {
        self.master = master.clone();
        self.events.push(Event::MasterChanged(master.clone()));
        let Some(m) = master else { return };
        debug!("{}: master is now {m}", self.me);
        self.out.push((
            m.clone(),
            wire::packet("g_slave", [wire::db_value(&self.local)]),
        ));
        for r in self.pending.values() {
            self.out.push((m.clone(), r.packet()));
        }
    }

    /// A slave-side packet (`g_reply`, `g_chg1`, `g_chg2`, `g_found`) from
    /// `from`; accepted only from the current master. Others are ignored.
    pub fn handle(&mut self, from: &str, packet: GPacket) {
        if self.master.as_deref() != Some(from) {
            debug!(
                "{}: ignoring {} from {from}, which is not our master",
                self.me,
                packet.tag()
            );
            return;
        }
        match packet {
            GPacket::Reply { id, value } => self.on_reply(from, id, value),
            GPacket::Chg1 { family, full } => self
                .events
                .extend(self.mons.full(family, full).map(Event::DbMon)),
            GPacket::Chg2 { family, set, del } => {
                let ev = self.mons.change(family, set, del);
                self.events.extend(ev.map(Event::DbMon))
            }
            GPacket::Found { node, addresses } => {
                if let Some(seq) = self.finds.remove(&node) {
                    self.pending.remove(&seq);
                    self.events.push(Event::Found { node, addresses });
                }
            }
            other => debug!(
                "{}: slave side ignores {} from {from}",
                self.me,
                other.tag()
            ),
        }
    }

    fn on_reply(&mut self, from: &str, id: String, value: Value) {
        let Some(&seq) = self.by_id.get(&id) else {
            debug!("{}: g_reply {id:?} from {from} matches no request", self.me);
            return;
        };
        let Some(Request::Query { kind, token, .. }) = self.pending.get(&seq) else {
            return;
        };
        let (kind, token) = (*kind, *token);
        let result = match (kind, value) {
            (QueryKind::Family, Value::Object(m)) => QueryResult::Family(m.into_iter().collect()),
            (QueryKind::Family, Value::Null) => QueryResult::Family(Family::new()),
            (QueryKind::Keys, Value::Array(a)) if a.iter().all(Value::is_string) => {
                QueryResult::Keys(
                    a.into_iter()
                        .filter_map(|k| k.as_str().map(str::to_owned))
                        .collect(),
                )
            }
            (QueryKind::Values, Value::Array(a)) => QueryResult::Values(a),
            (QueryKind::Keys | QueryKind::Values, Value::Null) => match kind {
                QueryKind::Keys => QueryResult::Keys(Vec::new()),
                _ => QueryResult::Values(Vec::new()),
            },
            (kind, value) => {
                warn!(
                    "{}: ignoring malformed g_reply {id:?} ({kind:?}) from {from}: {value}",
                    self.me
                );
                return;
            }
        };
        self.by_id.remove(&id);
        self.pending.remove(&seq);
        self.events.push(Event::Reply {
            query: token,
            result,
        });
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    fn request(&mut self, r: Request) -> u64 {
        self.next_seq += 1;
        if let Some(m) = self.master.clone() {
            self.out.push((m, r.packet()));
        }
        self.pending.insert(self.next_seq, r);
        self.next_seq
    }

    fn send_to_master(&mut self, packet: Vec<Value>) {
        if let Some(m) = self.master.clone() {
            self.out.push((m, packet));
        }
    }

    /// Takes the packets to send, `(to_node, packet)`, in order.
    pub fn take_packets(&mut self) -> Vec<(String, Vec<Value>)> {
        std::mem::take(&mut self.out)
    }

    /// Takes the events produced so far.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

#[cfg(test)]
mod tests {
    use super::next_id;

    #[test]
    fn perl_style_ids() {
        assert_eq!(next_id("a"), "b");
        assert_eq!(next_id("z"), "aa");
        assert_eq!(next_id("az"), "ba");
        assert_eq!(next_id("zz"), "aaa");
    }
}
