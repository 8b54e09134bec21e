//! The distributed database, in one room:
//!
//! ```text
//!   Node::db_* (api.rs)          user threads, dispatcher callbacks
//!        │ with(lock)
//!   Service (service.rs)  ◄──── PeerEvents from the network (net/events.rs):
//!        │ DbNode under a lock    up, down, is-seed, need-address, g_* packets
//!   protocol/ (DbNode …)          pure state machine: no sockets, threads, clock
//!        │ packets, events
//!        ▼
//!   net: send g_* packets, learn found addresses, keep the global mesh;
//!   dispatcher: db_mon and query callbacks, queued in event order
//! ```
//!
//! - `protocol/`: the database and global-node protocol as a state
//!   machine (public as [`crate::protocol::db`]).
//! - `service.rs`: the [`DbNode`](protocol::DbNode) of a networked node
//!   under its lock, fed by the network's peer events; it sends the
//!   node's `g_*` packets and queues user callbacks as dispatcher tasks
//!   (never run under the lock).
//! - `api.rs`: `Node::db_*`, `grp_*`, [`DbGuard`], [`DbMonGuard`].
//!
//! Threads: peer events arrive on the reactor thread (connections,
//! packets, the seeds' rounds), on the dispatcher (a peer lost) and on
//! the thread building the node or adding a seed; the API runs on the
//! caller's thread; the callbacks run on the dispatcher. The network never
//! calls into this module except through [`PeerEvents`](crate::net::PeerEvents);
//! this module calls the network to send and to act on what the protocol
//! found (addresses, global nodes to keep connected).

mod api;
pub mod protocol;
mod service;

pub use api::{DbGuard, DbMonGuard};
pub(crate) use service::Service;
