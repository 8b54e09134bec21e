//! Process RPC: call functions in worker child processes, one worker or a
//! self-sizing pool (the Rust form of AnyEvent::Fork::RPC and
//! AnyEvent::Fork::Pool).
//!
//! Some work belongs in another process: it blocks, it crashes, it holds a
//! lot of memory, or it must not share the parent's threads. A *worker* is a
//! child process that serves one worker function registered by name. It is
//! started with `exec` (never a bare `fork` of a threaded parent), either by
//! re-running the current program ([`Worker::current_exe`]) or by running
//! any executable that serves workers ([`Worker::program`]).
//!
//! # Typed functions
//!
//! Declare a worker function once, as a [`Function`] with its argument,
//! result, event and error types; register it in the worker, call it
//! through a [`TypedRpc`] or a [`TypedPool`]. The worker function returns
//! `Result`: its `Err` reaches the caller as [`CallError::Failed`], while a
//! failure of the call itself (the worker died, ...) is
//! [`CallError::Rpc`]. Events are sent through the [`Events`] handle the
//! function gets, so their type is checked at compile time, and each
//! [`Event`] the parent gets names its call ([`CallId`]) and, in a pool,
//! the worker that ran it. A worker refuses to serve a function the parent
//! declared with other types ([`Function::signature`]).
//!
//! ```
//! use aemp::rpc::{self, Function, Worker};
//! use std::time::Duration;
//!
//! /// Squares a number; the events are progress messages.
//! const SQUARE: Function<i64, i64, String> = Function::json("square");
//!
//! fn main() -> Result<(), rpc::Error> {
//!     SQUARE.register(|n, events| {
//!         events.send(&format!("squaring {n}")).map_err(|e| e.to_string())?;
//!         n.checked_mul(n).ok_or_else(|| format!("{n}² overflows"))
//!     });
//!     rpc::serve_if_worker()?; // a worker serves here, and exits
//!
//!     // The parent: a pool of workers.
//!     let pool = SQUARE
//!         .pool(Worker::current_exe())
//!         .on_event(|ev| eprintln!("call {} on worker {}: {}", ev.call, ev.worker, ev.value))
//!         .build()?;
//!     pool.call(3, |r| println!("3² = {}", r.unwrap()));
//!     assert_eq!(pool.call_wait(4, Duration::from_secs(5)).unwrap(), 16);
//!     assert!(pool.call_wait(i64::MAX, Duration::from_secs(5)).is_err());
//!     pool.join(Duration::from_secs(5)) // finish the queue, stop the workers
//! }
//! ```
//!
//! # Untyped functions
//!
//! The layer below: a worker function over one [`Serialiser`]'s value type
//! for arguments, results and events alike (as in the original). Register
//! worker functions, then call [`serve_if_worker`] first in `main`: in a
//! worker it serves and exits, elsewhere it returns at once.
//!
//! ```
//! use aemp::rpc::{self, Json, Rpc, Worker};
//! use serde_json::{json, Value};
//! use std::time::Duration;
//!
//! fn main() -> Result<(), rpc::Error> {
//!     rpc::register_sync("square", Json::new(), |v: Value| {
//!         let n = v.as_i64().unwrap_or(0);
//!         rpc::event(&json!({"squaring": n})).ok(); // progress to the parent
//!         json!(n * n)
//!     });
//!     rpc::serve_if_worker()?; // never returns in a worker
//!
//!     // The parent:
//!     let rpc = Rpc::builder(Worker::current_exe(), "square")
//!         .serialiser(Json::new())
//!         .on_event(|ev| eprintln!("event {ev}"))
//!         .spawn()?;
//!     rpc.call(json!(3), |r| println!("3² = {}", r.unwrap()));
//!     assert_eq!(rpc.call_wait(json!(4), Duration::from_secs(5))?, json!(16));
//!     rpc.join(Duration::from_secs(5)) // let queued calls finish, reap the child
//! }
//! ```
//!
//! [`serve_if_worker`] must come before the program starts any worker: a
//! worker runs `main` again, and would otherwise start workers of its
//! own. Both ends refuse the wrong order with [`Error::LateServe`].
//!
//! # Backends
//!
//! * [`Backend::Sync`] ([`register_sync`]): one call at a time; results in
//!   call order.
//! * [`Backend::Async`] ([`register_async`]): the function gets a [`Done`]
//!   handle it may complete later, from any thread; many calls run at once
//!   and results are matched by id. (Typed functions are sync.)
//!
//! In both, events ([`event`], [`Events::send`]) and results reach the
//! parent in exactly the order the child emitted them.
//!
//! # Failure
//!
//! A worker that exits, is killed, panics, or writes garbage on the channel
//! ends every outstanding call with an [`Error`] naming what happened (a
//! panic's message travels to the parent), calls `on_error` once, and is
//! reaped. The parent never hangs on a dead worker.
//!
//! In a [`Pool`] (or [`TypedPool`]), the dead worker is replaced and the
//! pool keeps serving. A pool gives a worker up to `load` calls at once;
//! a sync worker runs them one after the other, in order. So when it dies,
//! only its oldest unanswered call can have been running: that call fails
//! with the error. The calls waiting behind it had not started, and go back
//! to the front of the pool's queue, to another worker (each worker death
//! fails at most one call that may have run, and never runs a call twice).
//! For this a pool's sync worker sends each result before it starts its
//! next call, rather than batching results, so no answer is lost with it.
//! Not re-dispatched: every call of a worker that refused to start (it
//! would refuse again), and of an async worker (every call it read runs at
//! once). A single [`Rpc`] fails all its outstanding calls.
//!
//! # Threads
//!
//! Each worker costs the parent two threads (one sends batched frames, one
//! receives and runs the callbacks); a pool adds one manager thread. A
//! thread waiting in `call_wait` reads the worker's channel itself while it
//! polls, so the callbacks of that worker's other calls may run on it too.
//! Hence a callback must not wait in `call_wait` on the same handle or
//! pool: the answer would have to be read by the thread that waits for
//! it, and the call can only time out. In the worker, calls of the sync
//! backend run on the main thread; the async backend hands each call to
//! the worker function on the receiving thread, which may complete it from
//! any thread.
//!
//! # Wire
//!
//! A Unix socket pair; the child finds its end in `AEMP_RPC_FD`. Frames are
//! `kind u8, id u32, len u32` plus payload, so one message carries up to
//! 4 GiB − 1 octets; an event's id is its call's (0 for events of
//! [`event`]). A call's id has its top bit set when its caller waits in
//! `call_wait` (a pool's worker then polls for its next call); the worker
//! echoes ids as they come. Queued frames are sent in batches.
#![warn(missing_docs)]

mod child;
mod error;
mod handle;
mod ncpu;
mod pool;
mod serialiser;
mod typed;
mod wire;
mod worker;

pub use child::{
    event, is_worker, register_async, register_done, register_init, register_sync, retire,
    serve_if_worker, take_extra_fd, Done,
};
pub use error::Error;
pub use handle::{Rpc, RpcBuilder};
pub use ncpu::{ncpu, ncpu_eus};
pub use pool::{Pool, PoolBuilder};
pub use serialiser::{Cbor, Json, Raw, Serialiser, Strings};
pub use typed::{
    CallError, CallId, Codec, Event, Events, Function, Payload, TypedPool, TypedPoolBuilder,
    TypedRpc, TypedRpcBuilder,
};
pub use worker::Worker;

/// How a worker runs its calls.
///
/// ```
/// use aemp::rpc::{self, Backend, Done, Json, Rpc, Worker};
/// use serde_json::{json, Value};
/// use std::time::Duration;
/// // Async: each call completes through its Done handle, whenever it likes.
/// rpc::register_async("sleepy", Json::new(), |done: Done<Json>, ms: Value| {
///     std::thread::spawn(move || {
///         std::thread::sleep(Duration::from_millis(ms.as_u64().unwrap()));
///         done.done(ms);
///     });
/// });
/// rpc::serve_if_worker()?;
///
/// let rpc = Rpc::builder(Worker::current_exe(), "sleepy")
///     .serialiser(Json::new())
///     .backend(Backend::Async)
///     .spawn()?;
/// let (tx, rx) = crossbeam_channel::unbounded();
/// for ms in [200, 10] {
///     let tx = tx.clone();
///     rpc.call(json!(ms), move |r| tx.send(r.unwrap()).unwrap());
/// }
/// let t = Duration::from_secs(5);
/// // Both ran at once: the short call finished first.
/// assert_eq!((rx.recv_timeout(t).unwrap(), rx.recv_timeout(t).unwrap()), (json!(10), json!(200)));
/// rpc.join(t)?;
/// # Ok::<(), aemp::rpc::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// One call at a time, results in call order (the default).
    #[default]
    Sync,
    /// Many concurrent calls; each completes through its [`Done`] handle.
    Async,
}

/// For the fuzz target `rpc_frames` (not part of the API): reads `data` as
/// the frames a parent or a worker receives, and decodes every payload
/// with each serialiser and as a start frame's string list, as the two
/// ends do. Returns how many frames were read. Never panics.
#[doc(hidden)]
pub fn fuzz_frames(data: &[u8]) -> usize {
    let mut frames = 0;
    for kinds in [wire::FROM_PARENT, wire::FROM_CHILD] {
        let mut r = std::io::BufReader::new(data);
        while let Ok(Some(f)) = wire::read_frame(&mut r, kinds) {
            frames += 1;
            let _ = Json::<serde_json::Value>::new().decode(&f.payload);
            let _ = Cbor::<ciborium::Value>::new().decode(&f.payload);
            let _ = Strings.decode(&f.payload);
            let _ = Strings::unpack(&f.payload);
        }
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_frames_reads_frames_of_either_direction() {
        let mut data = wire::frame(wire::CALL, 1, b"[1]");
        assert_eq!(fuzz_frames(&data), 1, "a call: parent to worker only");
        data.extend(wire::frame(wire::CALL, 2, b"\xff"));
        assert_eq!(fuzz_frames(&data), 2);
        assert_eq!(fuzz_frames(&wire::frame(wire::RESULT, 1, b"")), 1);
        assert_eq!(fuzz_frames(b"\x00garbage"), 0);
    }

    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_are_send_and_sync() {
        send_sync::<Rpc<Raw>>();
        send_sync::<Rpc<Json>>();
        send_sync::<Pool<Cbor>>();
        send_sync::<Worker>();
        send_sync::<Error>();
        send_sync::<TypedRpc<String, u32, u8>>();
        send_sync::<TypedPool<String, u32, u8>>();
        send_sync::<Function<String, u32, u8>>();
        send_sync::<Events<u8>>();
        send_sync::<CallError<String>>();
    }
}
