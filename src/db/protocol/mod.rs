//! The distributed database and the global-node protocol (protocol notes
//! §11–12, acceptance §1.12, §3.2) as pure state machines: peer up/down and
//! packets in, packets and events out; no sockets, threads or clock.
//!
//! # Driving it
//!
//! A network layer holds one [`DbNode`] per node and
//! - calls [`peer_up`](DbNode::peer_up)`(node, seed)` when a connection
//!   completes (`seed`: the peer is one of our seeds, so it gets `g_slave`
//!   and may become our master — the first connected seed does),
//!   [`peer_down`](DbNode::peer_down) when it is lost, and
//!   [`become_global`](DbNode::become_global) if a seed address turns out
//!   to be this node itself;
//! - passes every node-port packet `["", "g_…", args…]` to
//!   [`packet`](DbNode::packet)`(from, tag, args)`, or the whole packet to
//!   [`node_packet`](DbNode::node_packet) (malformed ones are logged and
//!   ignored);
//! - publishes its listen addresses with `db_set("'l", own_id, ["ip:port", …])`;
//! - after each call, sends [`take_packets`](DbNode::take_packets)
//!   (`(to_node, packet)`, always to a connected peer, in order) and acts
//!   on [`take_events`](DbNode::take_events): [`Event::DbMon`] callbacks,
//!   [`Event::Reply`] query answers, [`Event::Found`] addresses,
//!   [`Event::MasterChanged`], [`Event::BecameGlobal`], and on global nodes
//!   [`Event::Globals`], the global nodes to keep connections to.
//!
//! The local API is [`db_set`](DbNode::db_set), [`db_del`](DbNode::db_del),
//! [`db_family`](DbNode::db_family) / [`db_keys`](DbNode::db_keys) /
//! [`db_values`](DbNode::db_values) (answered by [`QueryId`]),
//! [`db_mon`](DbNode::db_mon) / [`db_mon_stop`](DbNode::db_mon_stop)
//! ([`MonId`]) and [`find`](DbNode::find). Guards, `db_reg` (a `db_set`
//! plus a port monitor that calls `db_del`) and the `grp_*` shims belong
//! to the layer that owns ports; [`DbMonEvent::grp_args`] shapes a
//! `grp_mon` call.
//!
//! ```
//! use aemp::protocol::db::{DbNode, Event, QueryResult};
//! use serde_json::json;
//!
//! let mut seed = DbNode::new("seed");
//! seed.become_global(); // its seed list contains itself
//! let mut slave = DbNode::new("node2");
//! slave.db_set("svc", "node2#worker", json!(1)).unwrap();
//! // The connection completes; seed is one of node2's seeds.
//! seed.peer_up("node2", false);
//! slave.peer_up("seed", true);
//! let q = slave.db_family("svc").unwrap();
//! // A toy network: deliver until both are quiet.
//! loop {
//!     let (a, b) = (slave.take_packets(), seed.take_packets());
//!     if a.is_empty() && b.is_empty() {
//!         break;
//!     }
//!     for (_, p) in a {
//!         seed.packet("node2", p[1].as_str().unwrap(), &p[2..]);
//!     }
//!     for (_, p) in b {
//!         slave.packet("seed", p[1].as_str().unwrap(), &p[2..]);
//!     }
//! }
//! let want = QueryResult::Family([("node2#worker".to_string(), json!(1))].into());
//! assert!(slave.take_events().contains(&Event::Reply { query: q, result: want }));
//! ```
//!
//! # Files
//!
//! - `db_node.rs`: [`DbNode`], the slave side plus (once global) the global
//!   side; a global node is its own master, its packets to itself go
//!   straight across.
//! - `slave.rs`: [`Slave`], the local database, requests waiting for and
//!   re-sent to the master, and master selection.
//! - `subscriptions.rs`: [`Subscriptions`], `db_mon` subscribers and the
//!   per-family cache that turns the master's reports into exact deltas.
//! - `global_node.rs`: [`GlobalNode`], the merged database served to slaves
//!   and exchanged with the other global nodes.
//! - `store.rs`: [`Store`], shards by owner and the merged view.
//! - `wire.rs`: parsing and building the `g_*` packets.
//! - `events.rs`: [`Event`] and the request handles.
//! - `error.rs`: [`Error`], family/key validation.
//!
//! # Decisions where the references leave room
//!
//! - Families given to the local API must match `'?[A-Za-z][A-Za-z0-9_:]*`
//!   and keys be non-empty ([`Error`] names the input). Perl documents the
//!   pattern without enforcing it, so packets from peers are only required
//!   to have non-empty families and keys.
//! - The same key set by several nodes: the last value set wins; when its
//!   owner deletes it, the remaining owner with the smallest node ID wins.
//!   The key disappears with its last owner.
//! - A global node reports to the other globals what it *represents*:
//!   itself and its slaves (`g_set` on meshing, then `g_upd`); each global
//!   stores that as one shard owned by the reporting global, which vanishes
//!   when that global is lost. A slave that announces `g_global` stops
//!   being represented by its old master.
//! - A global node lists itself and each global it meshed with in its own
//!   `'g` entries, with value `null` (only the keys matter).
//! - `db_mon` events are exact: `chg` only for a different value, no call
//!   with nothing in it except the first; a second subscription's first
//!   call lists every key in `add`.
//! - `g_reply` and `g_found`, like `g_chg1`/`g_chg2`, are accepted only from
//!   the current master: after a master change the request was re-sent and
//!   the new master answers it.
//! - Pending requests are re-sent in the order they were made (Perl uses
//!   hash order). One `g_find` per node is outstanding at a time.
//! - Each seed gets one bare `["","g_slave"]` per `peer_up` (Perl also
//!   sends one when greeting line 1 passes; the driver may do that too —
//!   a repeated bare `g_slave` is harmless).

pub mod db_node;
pub mod error;
pub mod events;
pub mod global_node;
pub mod slave;
pub mod store;
pub mod subscriptions;
pub mod wire;

pub use db_node::DbNode;
pub use error::Error;
pub use events::{DbMonEvent, Event, MonId, QueryId, QueryResult};
pub use global_node::{GlobalNode, GLOBALS, LISTENERS};
pub use slave::Slave;
pub use store::{Changes, Db, Family, FamilyChange, Store};
pub use subscriptions::Subscriptions;
pub use wire::{GPacket, QueryKind};
