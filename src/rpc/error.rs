//! The one error type of process RPC.

/// Everything that can go wrong between a parent and its worker processes.
///
/// Every variant names what happened and to which worker (function name and
/// process id), so a message in a log is enough to find the cause. The type
/// is `Clone` because one worker death ends many calls with the same error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The worker program could not be started.
    #[error("could not start worker program {program}: {message}")]
    Spawn {
        /// The program that was to be run.
        program: String,
        /// Why the operating system refused.
        message: String,
    },
    /// The worker closed the channel or exited while the parent still
    /// expected answers, or exited without being asked to (the original's
    /// "unexpected eof").
    #[error(
        "worker {function} (pid {pid}) ended unexpectedly ({status}) with {outstanding} call(s) outstanding"
    )]
    WorkerDied {
        /// The worker function the process served.
        function: String,
        /// The worker's process id.
        pid: u32,
        /// How the process ended, e.g. `exit status: 3` or `signal: 9 (SIGKILL)`.
        status: String,
        /// How many calls were still waiting for an answer.
        outstanding: usize,
    },
    /// A worker function panicked; the worker process has ended.
    #[error("worker function {function} (pid {pid}) panicked: {message}")]
    Panicked {
        /// The worker function.
        function: String,
        /// The worker's process id.
        pid: u32,
        /// The panic message and its location in the child.
        message: String,
    },
    /// The worker sent something that is not a valid frame, or an answer to
    /// a call that was never made (the original's "unexpected data from
    /// child"). The worker has been killed.
    #[error("worker {function} (pid {pid}) sent unexpected data: {detail}")]
    Protocol {
        /// The worker function.
        function: String,
        /// The worker's process id.
        pid: u32,
        /// What was wrong with the data.
        detail: String,
    },
    /// The worker refused to serve: unknown function, failing `init`,
    /// mismatched serialiser or backend.
    #[error("worker {function} (pid {pid}) refused to start: {message}")]
    Refused {
        /// The worker function that was asked for.
        function: String,
        /// The worker's process id.
        pid: u32,
        /// The worker's explanation.
        message: String,
    },
    /// Reading from or writing to the worker's channel failed.
    #[error("i/o error on the channel to worker {function} (pid {pid}): {message}")]
    Io {
        /// The worker function.
        function: String,
        /// The worker's process id.
        pid: u32,
        /// The operating system's message.
        message: String,
    },
    /// A value could not be serialised.
    #[error("could not encode {what} with the {serialiser} serialiser: {message}")]
    Encode {
        /// Which serialiser failed.
        serialiser: &'static str,
        /// What was being encoded (`arguments`, `result`, `event`, ...).
        what: &'static str,
        /// The serialiser's message.
        message: String,
    },
    /// Octets could not be deserialised.
    #[error(
        "could not decode {len} octet(s) of {what} with the {serialiser} serialiser: {message}"
    )]
    Decode {
        /// Which serialiser failed.
        serialiser: &'static str,
        /// What was being decoded.
        what: &'static str,
        /// How many octets there were.
        len: usize,
        /// The serialiser's message.
        message: String,
    },
    /// A message is larger than the 4 GiB a frame can carry.
    #[error("{what} of {len} octets is larger than the 4 GiB limit of one message")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size in octets.
        len: usize,
    },
    /// The worker could not run one call (its arguments did not decode, or
    /// its result did not encode). Only that call fails.
    #[error("worker {function} could not run call {id}: {message}")]
    Call {
        /// The worker function.
        function: String,
        /// The call's id.
        id: u32,
        /// The worker's explanation.
        message: String,
    },
    /// An asynchronous worker function dropped its `Done` handle without
    /// completing the call.
    #[error("worker function {function} dropped call {id} without completing it")]
    Abandoned {
        /// The worker function.
        function: String,
        /// The call's id.
        id: u32,
    },
    /// The child emitted an event, but the parent has no `on_event` handler.
    #[error("worker {function} sent an event, but no on_event handler is set")]
    UnhandledEvent {
        /// The worker function.
        function: String,
    },
    /// A blocking call did not complete in time.
    #[error("no answer from {what} within {ms} ms")]
    Timeout {
        /// What was waited for.
        what: String,
        /// The time-out in milliseconds.
        ms: u128,
    },
    /// The handle was closed (dropped, or the worker ended cleanly).
    #[error("worker {function} is closed")]
    Closed {
        /// The worker function.
        function: String,
    },
    /// A child-side function was used in a process that is not serving as a
    /// worker.
    #[error("{what} can only be used inside a worker process")]
    NotWorker {
        /// The function that was called.
        what: &'static str,
    },
    /// `event` was given a value of another type than the serialiser's.
    #[error(
        "event value is a {got}, but worker function {function} uses the {serialiser} serialiser"
    )]
    EventType {
        /// The worker function being served.
        function: String,
        /// Its serialiser.
        serialiser: &'static str,
        /// The type that was passed.
        got: &'static str,
    },
    /// [`serve_if_worker`](super::serve_if_worker) came too late: this
    /// process started a worker before calling it, or a process started as
    /// a worker tried to start one before serving. A worker runs `main`
    /// again; with this order every worker would start another.
    #[error("{message}")]
    LateServe {
        /// What happened and how to fix it.
        message: &'static str,
    },
    /// A bad option value.
    #[error("invalid option {option}: {message}")]
    Option {
        /// The option.
        option: &'static str,
        /// What is wrong with it.
        message: String,
    },
}
