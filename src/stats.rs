//! What a node can tell about itself: [`Node::stats`], the operator's view
//! of its ports and of every peer it knows (state, unsent bytes, traffic,
//! when it was last heard from). The `aemp stats` command shows it for
//! every node of a network.

use crate::node::Node;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A snapshot of one node, from [`Node::stats`].
///
/// ```
/// use aemp::{msg, Config, Node, PeerState};
/// use std::time::Duration;
/// let a = Node::with_config(Config::new("doc-stats-a").bind("127.0.0.1:0").secret("s")).unwrap();
/// let b = Node::with_config(Config::new("doc-stats-b").secret("s")).unwrap();
/// let echo = a.port_fn(|m| aemp::snd(&m.reply_port().unwrap(), msg![]));
/// b.add_address(a.id(), &a.listen_addrs()[0].to_string()).unwrap();
/// b.call(&echo, msg!["ping"], Duration::from_secs(10)).unwrap();
/// // A thread port that is not reading: its mailbox shows.
/// let (go, wait) = crossbeam_channel::bounded::<()>(1);
/// let slow = b.port_thread(move |_mb| { let _ = wait.recv(); });
/// b.snd(&slow, msg!["pending"]);
///
/// let stats = b.stats();
/// let peer = stats.peers.iter().find(|p| p.node == "doc-stats-a").unwrap();
/// assert_eq!(peer.state, PeerState::Up);
/// assert!(peer.packets_sent >= 1 && peer.packets_received >= 1);
/// assert_eq!(stats.thread_ports[0].port, slow.as_str());
/// assert_eq!(stats.thread_ports[0].mailbox, 1);
/// go.send(()).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStats {
    /// The node's ID.
    pub node: String,
    /// How many ports are alive, the node port included (as
    /// [`Node::port_count`]).
    pub ports: usize,
    /// Every thread port with the length of its mailbox (messages waiting
    /// for its thread's `get`), longest first.
    pub thread_ports: Vec<ThreadPortStats>,
    /// Every other node this node has a link state for, by node ID.
    pub peers: Vec<PeerStats>,
}

/// One thread port in [`NodeStats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadPortStats {
    /// The port's ID.
    pub port: String,
    /// Messages waiting in its mailbox.
    pub mailbox: usize,
}

/// Where the link to a peer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerState {
    /// No connection, and none wanted.
    Idle,
    /// Connection attempts running; sends are queued.
    Connecting,
    /// Connected.
    Up,
    /// A connection was lost and its monitors are firing.
    Down,
}

impl PeerState {
    /// The state's name, as in `aemp stats`.
    pub fn name(self) -> &'static str {
        match self {
            PeerState::Idle => "idle",
            PeerState::Connecting => "connecting",
            PeerState::Up => "up",
            PeerState::Down => "down",
        }
    }
}

/// One peer in [`NodeStats`]. The counters are those of the current
/// connection (zero without one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStats {
    /// The peer's node ID.
    pub node: String,
    /// Its link state.
    pub state: PeerState,
    /// Messages queued while connecting.
    pub queued: usize,
    /// Encoded bytes not yet written to the socket (bounded by
    /// [`Config::unsent_limit`](crate::Config::unsent_limit)).
    pub unsent: usize,
    /// Packets sent on the connection (accepted for sending).
    pub packets_sent: u64,
    /// Bytes written to the socket (ciphertext under TLS).
    pub bytes_sent: u64,
    /// Packets received.
    pub packets_received: u64,
    /// Bytes read from the socket.
    pub bytes_received: u64,
    /// Time since anything arrived from the peer.
    pub last_heard: Option<Duration>,
    /// How long the connection has been up.
    pub connected_for: Option<Duration>,
}

/// # Seeing a node: statistics and the causes of failures
impl Node {
    /// A snapshot of this node: its ports, its thread ports' mailboxes and
    /// every peer's link (empty without a network).
    ///
    /// ```
    /// use aemp::{Node, PeerState};
    /// let node = Node::new("doc/stats").unwrap();
    /// let _p = node.port_fn(|_| {});
    /// let stats = node.stats();
    /// assert_eq!(stats.node, "doc/stats");
    /// assert_eq!(stats.ports, node.port_count());
    /// assert!(stats.peers.iter().all(|p| p.state != PeerState::Up));
    /// ```
    pub fn stats(&self) -> NodeStats {
        let (ports, mut thread_ports) = self.port_stats();
        thread_ports.sort_by(|a, b| b.mailbox.cmp(&a.mailbox).then(a.port.cmp(&b.port)));
        let mut peers = self.network().map(|n| n.peers()).unwrap_or_default();
        peers.sort_by(|a, b| a.node.cmp(&b.node));
        NodeStats {
            node: self.id().to_string(),
            ports,
            thread_ports,
            peers,
        }
    }

    /// Why the latest connection attempt to `node_or_addr` (a node ID, or
    /// an address as given to [`connect`](Node::connect), a seed or
    /// [`add_address`](Node::add_address)) failed — refused, timed out, an
    /// authentication failure — unless a connection there came up since.
    /// `None` without a network. A blocking call's
    /// [`Error::Timeout`](crate::Error::Timeout) and
    /// [`Error::NoReply`](crate::Error::NoReply) carry it as their cause.
    ///
    /// ```
    /// use aemp::{Config, Node};
    /// let seed = Node::with_config(Config::new("doc/seed").bind("127.0.0.1:0").secret("one"))
    ///     .unwrap();
    /// let addr = seed.listen_addrs()[0].to_string();
    /// let me = Node::with_config(Config::new("doc/me").secret("two")).unwrap();
    /// me.connect(&addr).unwrap();
    /// let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    /// let why = loop {
    ///     if let Some(why) = me.last_connect_error(&addr) {
    ///         break why;
    ///     }
    ///     assert!(std::time::Instant::now() < end, "no failure recorded");
    ///     std::thread::sleep(std::time::Duration::from_millis(5));
    /// };
    /// assert!(why.contains("authentication failure"), "{why}");
    /// ```
    pub fn last_connect_error(&self, node_or_addr: &str) -> Option<String> {
        self.network()?.last_failure(node_or_addr)
    }
}
