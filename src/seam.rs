//! The seam between the kernel and a network, owned by the kernel.
//!
//! The kernel (ports, the dispatcher, monitors) knows nothing of sockets,
//! packets or connections. When an operation names a port of another
//! node, it hands the operation to the node's [`Network`], set once when
//! a networked node is built (`net/` implements it); a node without one
//! drops remote sends and fails remote monitors at once.
//!
//! The other direction needs no trait: the network sits above the kernel
//! and calls the kernel's delivery methods (`Node::deliver_from`, the node
//! port's request handling) for what arrives from peers.
//!
//! ```text
//!   kernel (node.rs, monitor.rs) --Network--> net/ --> wire
//!   kernel <-- deliver_from / node-port requests -- net/ <-- wire
//! ```

use std::any::Any;
use std::time::Duration;

use crate::error::Result;
use crate::id::PortId;
use crate::message::{Message, Reason};
use crate::monitor::{MonGuard, MonitorAction};
use crate::stats::PeerStats;

/// What the kernel asks of the network: the outgoing half of the seam.
/// Every method is called from any thread and, but for `send_wait`,
/// must never block.
pub(crate) trait Network: Send + Sync + 'static {
    /// Sends `msg` to the port `port` (a name) of the node `node`.
    fn send(&self, node: &str, port: &str, msg: Message);

    /// Sends like [`send`](Network::send), first waiting (up to `timeout`)
    /// while the connection to `node` holds too many unsent bytes. The
    /// one method that blocks; never called on the dispatcher.
    fn send_wait(&self, port: &PortId, msg: Message, timeout: Duration) -> Result<()>;

    /// Kills the remote port `port` with `reason`.
    fn kill(&self, port: &PortId, reason: Reason);

    /// Monitors the remote port `port`: `action` runs once when the port
    /// dies or messages to it may have been lost.
    fn monitor(&self, port: &PortId, action: MonitorAction) -> MonGuard;

    /// Every peer's link, for [`Node::stats`](crate::Node::stats).
    fn peers(&self) -> Vec<PeerStats>;

    /// Why the latest connection attempt to `key` (a node ID or an
    /// address as given) failed, unless a connection there came up since.
    fn last_failure(&self, key: &str) -> Option<String>;

    /// Closes the network for good (the node shuts down): flushes what
    /// every connection holds, closes the connections cleanly, stops the
    /// network's thread and joins it. The one method besides `send_wait`
    /// that blocks; called once, off the dispatcher, after every port
    /// died (so the peers got their monitors' reasons).
    fn close(&self);

    /// The implementation, for the network's own use of the node.
    fn as_any(&self) -> &dyn Any;
}

/// Kernel settings, fixed when the node is built.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KernelOptions {
    /// How long the dispatcher and thread ports poll for work before they
    /// sleep (see `crate::busy`).
    pub(crate) busy_wait: Duration,
    /// The stack size of thread ports' threads (`None`: the standard
    /// library's default).
    pub(crate) thread_stack_size: Option<usize>,
}

impl Default for KernelOptions {
    fn default() -> Self {
        KernelOptions {
            busy_wait: crate::busy::DEFAULT_BUSY_WAIT,
            thread_stack_size: None,
        }
    }
}
