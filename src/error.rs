//! The one error type of aemp: every variant says what was wrong and with
//! what input.

use crate::id::{NodeId, PortId};
use crate::message::Reason;
use std::time::Duration;

/// Everything that can go wrong in an aemp call.
///
/// Each variant names the offending input (a port ID, a node ID, a function
/// name, ...) so that a log line built from the error is enough to find the
/// cause.
///
/// ```
/// use aemp::{msg, Error, Node};
/// use std::time::Duration;
/// let node = Node::new("doc/error").unwrap();
/// let silent = node.port_fn(|_| {}); // never answers
/// match node.call(&silent, msg!["ping"], Duration::from_millis(20)) {
///     Err(e @ Error::Timeout { .. }) => {
///         // The text names the operation, the port and the time-out.
///         assert!(e.to_string().contains(silent.as_str()), "{e}");
///     }
///     other => panic!("{other:?}"),
/// }
/// assert!(matches!(aemp::NodeId::new("a#b"), Err(Error::InvalidNodeId { .. })));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A node ID was empty or contained `#`, `;` or `,`.
    #[error("invalid node ID {id:?}: {problem}")]
    InvalidNodeId {
        /// The rejected text.
        id: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A port ID could not be parsed.
    #[error("invalid port ID {id:?}: {problem}")]
    InvalidPortId {
        /// The rejected text.
        id: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// An operation that only works on ports of this node got a remote one.
    #[error("{what} can only be called on local ports, but {port} belongs to another node")]
    NotLocal {
        /// The operation, e.g. `rcv`.
        what: &'static str,
        /// The remote port.
        port: PortId,
    },
    /// A local port that does not exist (any more).
    #[error("{what}: no such local port {port}")]
    NoSuchPort {
        /// The operation.
        what: &'static str,
        /// The port that was not found.
        port: PortId,
    },
    /// `kil` was asked to kill a node port.
    #[error("killing a node port is not allowed ({port})")]
    KillNodePort {
        /// The node port.
        port: PortId,
    },
    /// The node port serves the node protocol; its handlers are built in.
    #[error("{what} is not possible on the node port {port}: its handlers are built in")]
    NodePort {
        /// The operation.
        what: &'static str,
        /// The node port.
        port: PortId,
    },
    /// An operation needs a current port (`self_port()`), but none is set.
    #[error("{what} needs a current port: call it inside a port callback, a thread port or peval")]
    NoCurrentPort {
        /// The operation.
        what: &'static str,
    },
    /// A thread was attached to a port that already has one.
    #[error("port {port} already has a thread attached")]
    ThreadAlreadyAttached {
        /// The port.
        port: PortId,
    },
    /// A message could not be decoded into the requested type.
    #[error("cannot decode message {message}: element {position}: {problem}")]
    Decode {
        /// The message, as compact JSON (shortened when long).
        message: String,
        /// Index of the element that failed (the message length when
        /// elements were missing).
        position: usize,
        /// What was expected and found.
        problem: String,
    },
    /// A value could not be turned into JSON.
    #[error("cannot encode value as JSON: {0}")]
    Encode(String),
    /// The port was killed; a thread port's `get` returns this so that its
    /// thread can unwind.
    #[error("port {port} was killed ({reason})")]
    Killed {
        /// The port that died.
        port: PortId,
        /// Why it died (empty = normal kill).
        reason: Reason,
    },
    /// A blocking call got no reply in time.
    #[error("{what} to {port}: no reply within {after:?}{}", because(.cause))]
    Timeout {
        /// The operation.
        what: &'static str,
        /// The port that did not answer.
        port: PortId,
        /// The time-out.
        after: Duration,
        /// Why the latest connection attempt to the port's node failed,
        /// if it did (e.g. an authentication failure).
        cause: Option<String>,
    },
    /// The port a blocking call waited on died before it replied.
    #[error("{what} to {port}: the port died before replying ({reason}){}", because(.cause))]
    NoReply {
        /// The operation.
        what: &'static str,
        /// The port that died.
        port: PortId,
        /// Its kill reason.
        reason: Reason,
        /// For a lost or never-made connection (`transport_error`): why
        /// the latest connection attempt to the port's node failed, if
        /// known.
        cause: Option<String>,
    },
    /// [`snd_wait`](crate::Node::snd_wait): the connection to the port's
    /// node still held more than `unsent_high_water` unsent bytes when the
    /// time-out passed. The message was not sent.
    #[error("snd_wait to {port}: {unsent} bytes still unsent to its node after {after:?} (the peer reads too slowly); the message was not sent")]
    Backlog {
        /// The destination.
        port: PortId,
        /// The connection's unsent bytes at the time-out.
        unsent: usize,
        /// The time-out.
        after: Duration,
    },
    /// [`snd_wait`](crate::Node::snd_wait): the connection to the port's
    /// node is lost (its monitors fire). The message was not sent.
    #[error("snd_wait to {port}: the connection to its node was lost; the message was not sent")]
    LinkLost {
        /// The destination.
        port: PortId,
    },
    /// A function name that cannot be used (e.g. `spawn` needs `::`).
    #[error("invalid function name {name:?}: {problem}")]
    InvalidFunctionName {
        /// The name.
        name: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A blocking call was made on the node's dispatcher thread, where it
    /// would stop every callback port of the node (including the one that
    /// should reply).
    #[error("{what} would block the node's dispatcher thread; use cal() with a callback, or a thread port")]
    WouldBlockDispatcher {
        /// The operation.
        what: &'static str,
    },
    /// The signal handlers of
    /// [`Node::wait_for_termination`](crate::Node::wait_for_termination)
    /// could not be installed.
    #[error("cannot handle the termination signals: {problem}")]
    Signal {
        /// The system's error.
        problem: String,
    },
    /// A listen address in the configuration could not be parsed or bound.
    #[error("bad bind {bind:?}: {problem}")]
    BadBind {
        /// The bind as given.
        bind: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A peer address could not be parsed or resolved.
    #[error("bad address {addr:?}: {problem}")]
    BadAddress {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        problem: String,
    },
    /// [`configure`](crate::configure) was called when the process-wide
    /// node already existed (configured before, or created by first use).
    #[error(
        "the process-wide node {node} already exists; configure must come first and only once"
    )]
    AlreadyConfigured {
        /// The existing default node's ID.
        node: NodeId,
    },
    /// A network operation on a node that was not created with a
    /// [`Config`](crate::Config).
    #[error(
        "{what}: node {node} has no network (create it with Node::with_config or aemp::configure)"
    )]
    NoNetwork {
        /// The operation.
        what: &'static str,
        /// The node's ID.
        node: NodeId,
    },
    /// A data connection could not be opened (the reason the caller's port
    /// was killed with, after `AnyEvent::MP::DataConn`).
    #[error("data connection to {node}: {problem}")]
    DataConn {
        /// The node asked.
        node: String,
        /// What went wrong.
        problem: String,
    },
    /// The configured TLS certificate PEM is unusable.
    #[error("bad TLS certificate: {problem}")]
    BadCert {
        /// What is wrong with it.
        problem: String,
    },
    /// The network could not be started.
    #[error("cannot start the network: {problem}")]
    NetworkStart {
        /// What failed.
        problem: String,
    },
    /// A configuration value (from the rc file, a profile or `configure`
    /// arguments) is unusable, e.g. a parent chain that loops or a node ID
    /// that expands to nothing.
    #[error("configuration key {key:?}: {problem}")]
    Config {
        /// The key, e.g. `nodeid` or `parent`.
        key: String,
        /// What is wrong with its value.
        problem: String,
    },
    /// A `services` entry of the configuration could not run: its
    /// function is not registered, its module has no loader, or it
    /// panicked. Configuring stops there.
    #[error("service {name:?}: {problem}")]
    Service {
        /// The service entry's function or module name.
        name: String,
        /// What went wrong.
        problem: String,
    },
    /// Text that should be JSON is not (e.g. an `aemp` JSON argument).
    #[error("invalid JSON ({problem}): {input}")]
    Json {
        /// The text (shortened when long).
        input: String,
        /// The parser's complaint, with line and column.
        problem: String,
    },
    /// The configuration file could not be read, parsed or written.
    #[error("configuration file {path}: {problem}")]
    RcFile {
        /// The file's path (`(none)` when no path could be determined).
        path: String,
        /// What went wrong.
        problem: String,
    },
    /// A database query (`db_keys_wait`, ...) got no answer in time.
    #[error("{what} of database family {family:?}: no answer within {after:?}{}", because(.cause))]
    DbTimeout {
        /// The operation.
        what: &'static str,
        /// The family asked about.
        family: String,
        /// The time-out.
        after: Duration,
        /// Why the latest connection attempt to a seed failed, if no
        /// global node is connected and one did.
        cause: Option<String>,
    },
    /// A database call got a family or key it cannot store.
    #[error(transparent)]
    Db(#[from] crate::db::protocol::Error),
}

/// The text of an error's optional cause.
fn because(cause: &Option<String>) -> String {
    match cause {
        Some(c) => format!("; the latest connection attempt failed: {c}"),
        None => String::new(),
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
