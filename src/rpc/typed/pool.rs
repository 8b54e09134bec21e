//! A typed pool: [`TypedPoolBuilder`] and [`TypedPool`], over an untyped
//! [`Pool`] whose payloads are already encoded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{CallError, CallId, Encoded, Event, EventHandler, Function, Payload};
use crate::rpc::{Error, Pool, PoolBuilder, Rpc, Worker};

/// Options for a typed pool; made by [`Function::pool`]. The options are
/// those of [`PoolBuilder`].
///
/// ```
/// use aemp::rpc::{Function, Worker};
/// use std::time::Duration;
/// const RENDER: Function<u32, Vec<u8>, u8> = Function::cbor("render");
/// let pool = RENDER
///     .pool(Worker::current_exe())
///     .max(4)                            // default: the CPUs we may use
///     .load(2)                           // 2 calls queued per worker
///     .idle(1)
///     .start(Duration::from_millis(100))
///     .stop(Duration::from_secs(10))
///     .on_event(|ev| eprintln!("frame {} on worker {}: {}%", ev.call, ev.worker, ev.value))
///     .on_error(|e| eprintln!("a worker failed: {e}"))
///     .build()?;
/// # Ok::<(), aemp::rpc::Error>(())
/// ```
pub struct TypedPoolBuilder<A, R, Ev, E> {
    f: Function<A, R, Ev, E>,
    pool: PoolBuilder<Encoded>,
    on_event: Option<EventHandler<Ev>>,
}

/// A self-sizing pool of workers serving a typed [`Function`]: the typed
/// [`Pool`]. Dispatch, sizing and shutdown are those of [`Pool`].
///
/// When a worker dies, the call it was running fails (with the error
/// naming what happened); the calls waiting behind it on that worker (with
/// `load` above 1) had not started, and go to another worker. Each event
/// names its call and the worker that ran it.
///
/// ```
/// use aemp::rpc::{Function, Worker};
/// use std::time::Duration;
/// const SQUARE: Function<u64, u64, String> = Function::json("square");
/// // The worker side (this program, re-run): first in main.
/// SQUARE.register(|n, events| {
///     events.send(&format!("squaring {n}")).map_err(|e| e.to_string())?;
///     Ok(n * n)
/// });
/// aemp::rpc::serve_if_worker()?;
///
/// let pool = SQUARE.pool(Worker::current_exe()).max(2).build()?;
/// for n in 0..10 {
///     pool.call_with_events(
///         n,
///         |ev| println!("call {} on worker {}: {}", ev.call, ev.worker, ev.value),
///         move |r| println!("{n}² = {}", r.unwrap()),
///     );
/// }
/// assert_eq!(pool.call_wait(12, Duration::from_secs(5)).unwrap(), 144);
/// pool.join(Duration::from_secs(30))?;
/// # Ok::<(), aemp::rpc::Error>(())
/// ```
pub struct TypedPool<A, R, Ev = (), E = String> {
    f: Function<A, R, Ev, E>,
    pool: Pool<Encoded>,
    on_event: Option<EventHandler<Ev>>,
    calls: Arc<AtomicU64>,
}

impl<A, R, Ev, E> Clone for TypedPool<A, R, Ev, E> {
    fn clone(&self) -> Self {
        TypedPool {
            f: self.f,
            pool: self.pool.clone(),
            on_event: self.on_event.clone(),
            calls: self.calls.clone(),
        }
    }
}

impl<A: Payload, R: Payload, Ev: Payload, E: Payload> Function<A, R, Ev, E> {
    /// Starts configuring a pool of `worker` processes serving this
    /// function.
    pub fn pool(&self, worker: Worker) -> TypedPoolBuilder<A, R, Ev, E> {
        TypedPoolBuilder {
            f: *self,
            pool: Pool::builder(worker, self.name).serialiser(Encoded(self.signature())),
            on_event: None,
        }
    }
}

impl<A: Payload, R: Payload, Ev: Payload, E: Payload> TypedPoolBuilder<A, R, Ev, E> {
    /// The most workers at once (default: [`ncpu`](crate::rpc::ncpu), the
    /// CPUs the process may use, from `available_parallelism`).
    pub fn max(mut self, max: usize) -> Self {
        self.pool = self.pool.max(max);
        self
    }

    /// The least number of idle workers kept around (default 0).
    pub fn idle(mut self, idle: usize) -> Self {
        self.pool = self.pool.idle(idle);
        self
    }

    /// The most calls given to one worker at once (default 2); it runs them
    /// one after the other.
    pub fn load(mut self, load: usize) -> Self {
        self.pool = self.pool.load(load);
        self
    }

    /// The least time between starting two workers (default 0.1 s).
    pub fn start(mut self, gap: Duration) -> Self {
        self.pool = self.pool.start(gap);
        self
    }

    /// How long a worker beyond `idle` may be idle before it is stopped
    /// (default 10 s).
    pub fn stop(mut self, idle_time: Duration) -> Self {
        self.pool = self.pool.stop(idle_time);
        self
    }

    /// An init function run first in every worker, with these arguments.
    pub fn init(mut self, function: &str, args: Vec<Vec<u8>>) -> Self {
        self.pool = self.pool.init(function, args);
        self
    }

    /// Called once for each worker that dies or misbehaves (the pool
    /// replaces it), and when a worker cannot be started.
    pub fn on_error(mut self, f: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.pool = self.pool.on_error(f);
        self
    }

    /// Called once after the pool is dropped, every call is done and every
    /// worker has exited.
    pub fn on_destroy(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.pool = self.pool.on_destroy(f);
        self
    }

    /// Called for the events of calls made without their own handler,
    /// each tagged with its call and worker. Without it, they are ignored.
    pub fn on_event(mut self, f: impl Fn(Event<Ev>) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(f));
        self
    }

    /// Creates the pool (see [`PoolBuilder::build`]).
    pub fn build(self) -> Result<TypedPool<A, R, Ev, E>, Error> {
        Ok(TypedPool {
            f: self.f,
            pool: self.pool.build()?,
            on_event: self.on_event,
            calls: Arc::new(AtomicU64::new(0)),
        })
    }
}

impl<A: Payload, R: Payload, Ev: Payload, E: Payload> TypedPool<A, R, Ev, E> {
    /// Queues a call; `done` runs exactly once with its result, its error
    /// ([`CallError::Failed`]) or why the call failed. The call's events go
    /// to the builder's `on_event`.
    pub fn call(
        &self,
        args: A,
        done: impl FnOnce(Result<R, CallError<E>>) + Send + 'static,
    ) -> CallId {
        self.call_inner(args, None, Box::new(done), false).0
    }

    /// Like [`call`](TypedPool::call), but the call's events go to
    /// `on_event` (before `done` runs).
    pub fn call_with_events(
        &self,
        args: A,
        on_event: impl Fn(Event<Ev>) + Send + Sync + 'static,
        done: impl FnOnce(Result<R, CallError<E>>) + Send + 'static,
    ) -> CallId {
        self.call_inner(args, Some(Arc::new(on_event)), Box::new(done), false)
            .0
    }

    /// Calls and waits for the result, at most `timeout`; polls for it
    /// first, as [`Pool::call_wait`] does.
    ///
    /// ```
    /// use aemp::rpc::{CallError, Function, Worker};
    /// use std::time::Duration;
    /// const PARSE: Function<String, i64> = Function::json("parse");
    /// PARSE.register(|s, _| s.trim().parse().map_err(|e| format!("{s:?}: {e}")));
    /// aemp::rpc::serve_if_worker()?;
    ///
    /// let pool = PARSE.pool(Worker::current_exe()).max(2).build()?;
    /// let t = Duration::from_secs(10);
    /// assert_eq!(pool.call_wait(" 42 ".into(), t), Ok(42));
    /// assert!(matches!(pool.call_wait("x".into(), t), Err(CallError::Failed(_)))); // the function's own error
    /// pool.join(t)?;
    /// # Ok::<(), aemp::rpc::Error>(())
    /// ```
    pub fn call_wait(&self, args: A, timeout: Duration) -> Result<R, CallError<E>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let done = Box::new(move |r| {
            let _ = tx.send(r);
        });
        let (_, sent_to) = self.call_inner(args, None, done, true);
        Pool::await_job(sent_to, &rx, timeout).unwrap_or_else(|| {
            Err(CallError::Rpc(Error::Timeout {
                what: format!("pool of {}", self.f.name),
                ms: timeout.as_millis(),
            }))
        })
    }

    /// Queues a call; with the handle of the worker it went to at once
    /// when its caller will be `waiting` (see [`Pool::await_job`]).
    fn call_inner(
        &self,
        args: A,
        on_event: Option<EventHandler<Ev>>,
        done: Box<dyn FnOnce(Result<R, CallError<E>>) + Send>,
        waiting: bool,
    ) -> (CallId, Option<Rpc<Encoded>>) {
        let call = CallId(self.calls.fetch_add(1, Ordering::Relaxed) + 1);
        let payload = match self.f.encode_args(&args) {
            Ok(p) => p,
            Err(e) => {
                done(Err(CallError::Rpc(e)));
                return (call, None);
            }
        };
        let f = self.f;
        let events = f.event_sink(call, on_event.or_else(|| self.on_event.clone()));
        let sent_to = self.pool.call_job(
            payload,
            Box::new(move |r| done(f.decode_answer(r))),
            events,
            waiting,
        );
        (call, sent_to)
    }

    /// The process ids of the current workers.
    pub fn pids(&self) -> Vec<u32> {
        self.pool.pids()
    }

    /// The most workers the pool runs at once.
    pub fn max(&self) -> usize {
        self.pool.max()
    }

    /// How many workers the pool has now.
    pub fn workers(&self) -> usize {
        self.pool.workers()
    }

    /// How many calls wait in the queue (not yet given to a worker).
    pub fn queued(&self) -> usize {
        self.pool.queued()
    }

    /// Drops this handle and waits, at most `timeout`, until the pool has
    /// finished (see [`Pool::join`]).
    pub fn join(self, timeout: Duration) -> Result<(), Error> {
        self.pool.join(timeout)
    }
}
