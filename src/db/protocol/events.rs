//! What the database state machines tell their driver: handles for
//! requests and subscriptions, and the events that answer them.

use std::sync::Arc;

use serde_json::Value;

use super::store::Family;

/// The handle of one query (`db_family`, `db_keys`, `db_values`); its
/// answer is an [`Event::Reply`] carrying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueryId(pub u64);

/// The handle of one `db_mon` subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MonId(pub u64);

/// The answer to a query.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    /// `db_family`: the family (empty if unknown).
    Family(Family),
    /// `db_keys`.
    Keys(Vec<String>),
    /// `db_values`.
    Values(Vec<Value>),
}

/// One `db_mon` callback, for one or more subscriptions of a family.
#[derive(Debug, Clone, PartialEq)]
pub struct DbMonEvent {
    /// The family.
    pub family: String,
    /// The subscriptions to call.
    pub monitors: Vec<MonId>,
    /// The family's whole contents after the change (shared, copy-on-write:
    /// keeping it costs nothing until the next change).
    pub fam: Arc<Family>,
    /// Keys that appeared (on a first call: every key).
    pub add: Vec<String>,
    /// Keys whose value changed.
    pub chg: Vec<String>,
    /// Keys that disappeared.
    pub del: Vec<String>,
}

impl DbMonEvent {
    /// The arguments of a `grp_mon` callback (the 2.x shim over `db_mon`):
    /// `([ports], add, del)`, the group's members being the family's keys;
    /// changed values do not concern groups.
    pub fn grp_args(&self) -> (Vec<String>, &[String], &[String]) {
        (self.fam.keys().cloned().collect(), &self.add, &self.del)
    }
}

/// Something the driver acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A `db_mon` callback.
    DbMon(DbMonEvent),
    /// The answer to a query.
    Reply {
        /// The query.
        query: QueryId,
        /// The answer.
        result: QueryResult,
    },
    /// The answer to [`find`](super::DbNode::find): a node's listen
    /// addresses, `None` if the master does not know the node.
    Found {
        /// The node looked up.
        node: String,
        /// Its addresses (`"ip:port"`).
        addresses: Option<Vec<String>>,
    },
    /// The master changed (`None`: no seed is connected; requests wait).
    MasterChanged(Option<String>),
    /// This node became a global node (it received `g_slave`, or
    /// [`become_global`](super::DbNode::become_global) was called).
    BecameGlobal,
    /// The global nodes (family `'g`, without us) this global node must keep
    /// connections to; sent whenever the set changes.
    Globals(Vec<String>),
}
