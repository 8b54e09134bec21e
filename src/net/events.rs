//! What the network tells the service above it about its peers: the
//! database subscribes (it implements [`PeerEvents`] and is handed to the
//! network when the node is built), so the connection code never calls
//! into the database itself.
//!
//! Calls come from the reactor thread (`Up`, `IsSeed`, `NeedAddress`,
//! `Packet`, and the seeds' rounds), from the dispatcher (`Down`, before
//! the node's monitors fire) and from the thread that builds the node or
//! adds a seed (`Listening`, `OwnSeed`). `Up`, `IsSeed`, `Down` and
//! `OwnSeed` come under the seeds' lock (see `seeds.rs`), so the
//! subscriber sees them in the order the network decided them. Nothing
//! is published while a remote's lock is held. The subscriber may take
//! its own lock and then a remote's (to send), but must never call back
//! into the seeds (`Net::add_seeds`, `peer_up`, `peer_down`): lock order
//! seeds, subscriber, remote.

use super::Net;
use serde_json::Value;
use std::any::Any;
use std::net::SocketAddr;

/// One thing that happened to the network's peers.
#[derive(Debug)]
pub(crate) enum PeerEvent<'a> {
    /// The node listens on these addresses (`"ip:port"`, `*` expanded to
    /// every local IPv4 address, loopback last); once, at start.
    Listening(&'a [String]),
    /// One of the node's seed addresses is its own: it is a global node.
    OwnSeed,
    /// A connection to `node` completed; `seed`: one of our seeds
    /// answered there.
    Up {
        /// The peer.
        node: &'a str,
        /// Whether it is one of our seeds.
        seed: bool,
    },
    /// A connected peer turned out to be one of our seeds.
    IsSeed(&'a str),
    /// The connection to the node is gone.
    Down(&'a str),
    /// A dial to the node has no usable address (or has tried them all).
    NeedAddress(&'a str),
    /// A node-port packet `["", tag, args…]` with a `g_*` tag arrived from
    /// `from`.
    Packet {
        /// The sending node.
        from: &'a str,
        /// The tag (`g_…`).
        tag: &'a str,
        /// What followed the tag.
        args: &'a [Value],
    },
}

/// The subscriber to the network's peer events (the database service).
pub(crate) trait PeerEvents: Send + Sync {
    /// Acts on `ev`; it may send packets through `net`.
    fn event(&self, net: &Net, ev: PeerEvent<'_>);

    /// The node listening on one of `addrs`, if the subscriber knows it
    /// (the database's `'l` family on a global node): tells a seed's node
    /// before dialing it.
    fn node_at(&self, addrs: &[SocketAddr]) -> Option<String>;

    /// For the subscriber to find itself again (downcast).
    fn as_any(&self) -> &dyn Any;
}
