//! The distributed database and the global-node protocol (protocol.md
//! §11–12, acceptance §1.12, §3.2) as pure state machines: packets and
//! peer up/down in, packets and events out; no sockets, threads or clock.
//!
//! - `db_node.rs`: [`DbNode`], what a driver holds per node (start here).
//! - `slave.rs`: [`Slave`], the local database, requests to the master,
//!   `db_mon` caches and master selection.
//! - `global_node.rs`: [`GlobalNode`], the merged database served to
//!   slaves and exchanged with other global nodes.
//! - `store.rs`: [`Store`], shards by owner and the merged view.
//! - `wire.rs`: parsing and building the `g_*` packets.
//! - `events.rs`: [`Event`] and the request handles.
//! - `error.rs`: [`Error`], family/key validation.

pub mod db_node;
pub mod error;
pub mod events;
pub mod global_node;
pub mod slave;
pub mod store;
pub mod wire;

pub use db_node::DbNode;
pub use error::Error;
pub use events::{DbMonEvent, Event, MonId, QueryId, QueryResult};
pub use global_node::{GlobalNode, GLOBALS, LISTENERS};
pub use slave::Slave;
pub use store::{Changes, Db, Family, FamilyChange, Store};
pub use wire::{GPacket, QueryKind};
