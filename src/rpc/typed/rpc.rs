//! One typed worker: [`TypedRpcBuilder`] and [`TypedRpc`], over an untyped
//! [`Rpc`] whose payloads are already encoded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{CallError, CallId, Encoded, Event, EventHandler, Function, Payload};
use crate::rpc::handle::{Answer, Pending};
use crate::rpc::{Error, Rpc, RpcBuilder, Worker};

/// Options for starting one typed worker; made by [`Function::rpc`].
///
/// ```
/// use aemp::rpc::{Function, Worker};
/// const WORDS: Function<String, usize, String> = Function::json("words");
/// // The worker side (this program, re-run): first in main.
/// aemp::rpc::register_init("setup", |args| Ok(eprintln!("init: {args:?}")));
/// WORDS.register(|text, _events| Ok(text.split_whitespace().count()));
/// aemp::rpc::serve_if_worker()?;
///
/// let rpc = WORDS
///     .rpc(Worker::current_exe())
///     .init("setup", vec![b"verbose".to_vec()])
///     .on_event(|ev| eprintln!("call {}: {}", ev.call, ev.value))
///     .on_error(|e| eprintln!("worker failed: {e}"))
///     .on_destroy(|| eprintln!("worker finished"))
///     .spawn()?;
/// let t = std::time::Duration::from_secs(5);
/// assert_eq!(rpc.call_wait("to be or not".to_string(), t), Ok(4));
/// rpc.join(t)?;
/// # Ok::<(), aemp::rpc::Error>(())
/// ```
pub struct TypedRpcBuilder<A, R, Ev, E> {
    f: Function<A, R, Ev, E>,
    rpc: RpcBuilder<Encoded>,
    on_event: Option<EventHandler<Ev>>,
}

/// A handle on one worker process serving a typed [`Function`]: the typed
/// [`Rpc`]. Cloning gives another handle on the same worker; calls, events
/// and the worker's end behave as with [`Rpc`]. Callbacks run on the
/// handle's receiving thread.
///
/// ```
/// use aemp::rpc::{CallError, Function, Worker};
/// use std::time::Duration;
/// const HALF: Function<u32, u32, (), String> = Function::json("half");
/// // The worker side (this program, re-run): first in main.
/// HALF.register(|n, _| if n % 2 == 0 { Ok(n / 2) } else { Err(format!("{n} is odd")) });
/// aemp::rpc::serve_if_worker()?;
///
/// let rpc = HALF.rpc(Worker::current_exe()).spawn()?;
/// rpc.call(8, |r| assert_eq!(r, Ok(4)));
/// assert_eq!(
///     rpc.call_wait(3, Duration::from_secs(5)),
///     Err(CallError::Failed("3 is odd".to_string()))
/// );
/// rpc.join(Duration::from_secs(5))?;
/// # Ok::<(), aemp::rpc::Error>(())
/// ```
pub struct TypedRpc<A, R, Ev = (), E = String> {
    f: Function<A, R, Ev, E>,
    rpc: Rpc<Encoded>,
    on_event: Option<EventHandler<Ev>>,
    calls: Arc<AtomicU64>,
}

impl<A, R, Ev, E> Clone for TypedRpc<A, R, Ev, E> {
    fn clone(&self) -> Self {
        TypedRpc {
            f: self.f,
            rpc: self.rpc.clone(),
            on_event: self.on_event.clone(),
            calls: self.calls.clone(),
        }
    }
}

impl<A: Payload, R: Payload, Ev: Payload, E: Payload> Function<A, R, Ev, E> {
    /// Starts configuring one worker process, running `worker`, that
    /// serves this function.
    pub fn rpc(&self, worker: Worker) -> TypedRpcBuilder<A, R, Ev, E> {
        TypedRpcBuilder {
            f: *self,
            rpc: Rpc::builder(worker, self.name).serialiser(Encoded(self.signature())),
            on_event: None,
        }
    }
}

impl<A: Payload, R: Payload, Ev: Payload, E: Payload> TypedRpcBuilder<A, R, Ev, E> {
    /// Names an init function the worker runs first, with these arguments
    /// (see [`RpcBuilder::init`]).
    pub fn init(mut self, function: &str, args: Vec<Vec<u8>>) -> Self {
        self.rpc = self.rpc.init(function, args);
        self
    }

    /// Called once when the worker dies or misbehaves, and for events no
    /// handler takes (see [`RpcBuilder::on_error`]).
    pub fn on_error(mut self, f: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.rpc = self.rpc.on_error(f);
        self
    }

    /// Called once after every handle is dropped, every call is answered and
    /// the worker has exited cleanly.
    pub fn on_destroy(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.rpc = self.rpc.on_destroy(f);
        self
    }

    /// Called for the events of calls made without their own handler
    /// (those of [`TypedRpc::call_with_events`] go to theirs), each tagged
    /// with its call. Without it, such events go to `on_error`.
    pub fn on_event(mut self, f: impl Fn(Event<Ev>) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(f));
        self
    }

    /// Starts the worker process. Calls may be made at once.
    pub fn spawn(self) -> Result<TypedRpc<A, R, Ev, E>, Error> {
        Ok(TypedRpc {
            f: self.f,
            rpc: self.rpc.spawn()?,
            on_event: self.on_event,
            calls: Arc::new(AtomicU64::new(0)),
        })
    }
}

impl<A: Payload, R: Payload, Ev: Payload, E: Payload> TypedRpc<A, R, Ev, E> {
    /// Calls the worker function with `args`; `done` runs exactly once with
    /// its result, its error ([`CallError::Failed`]) or why the call failed.
    /// Never blocks. The call's events go to the builder's `on_event`.
    ///
    /// ```
    /// use aemp::rpc::{Function, Worker};
    /// use std::time::Duration;
    /// const LEN: Function<String, usize> = Function::json("len");
    /// LEN.register(|s, _| Ok(s.len()));
    /// aemp::rpc::serve_if_worker()?;
    ///
    /// let rpc = LEN.rpc(Worker::current_exe()).spawn()?;
    /// let (tx, rx) = crossbeam_channel::unbounded();
    /// for word in ["a", "bb", "ccc"] {
    ///     let tx = tx.clone();
    ///     rpc.call(word.to_string(), move |r| tx.send(r).unwrap()); // never blocks
    /// }
    /// let t = Duration::from_secs(5);
    /// let lens: Vec<_> = (0..3).map(|_| rx.recv_timeout(t).unwrap().unwrap()).collect();
    /// assert_eq!(lens, [1, 2, 3]);
    /// rpc.join(t)?;
    /// # Ok::<(), aemp::rpc::Error>(())
    /// ```
    pub fn call(
        &self,
        args: A,
        done: impl FnOnce(Result<R, CallError<E>>) + Send + 'static,
    ) -> CallId {
        self.call_inner(args, None, Box::new(done), false)
    }

    /// Like [`call`](TypedRpc::call), but the call's events go to
    /// `on_event` (before `done` runs).
    ///
    /// ```
    /// use aemp::rpc::{Function, Worker};
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// const COUNT: Function<u32, u32, u32> = Function::json("count"); // events: u32
    /// COUNT.register(|n, events| {
    ///     for i in 1..=n {
    ///         events.send(&i).map_err(|e| e.to_string())?;
    ///     }
    ///     Ok(n)
    /// });
    /// aemp::rpc::serve_if_worker()?;
    ///
    /// let rpc = COUNT.rpc(Worker::current_exe()).spawn()?;
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let (tx, rx) = crossbeam_channel::bounded(1);
    /// let s = seen.clone();
    /// let call = rpc.call_with_events(3, move |ev| s.lock().unwrap().push(ev.value), move |r| tx.send(r).unwrap());
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), Ok(3));
    /// assert_eq!(*seen.lock().unwrap(), [1, 2, 3]); // events come before the result
    /// assert_eq!(call.to_string(), "1"); // the handle's first call
    /// rpc.join(Duration::from_secs(5))?;
    /// # Ok::<(), aemp::rpc::Error>(())
    /// ```
    pub fn call_with_events(
        &self,
        args: A,
        on_event: impl Fn(Event<Ev>) + Send + Sync + 'static,
        done: impl FnOnce(Result<R, CallError<E>>) + Send + 'static,
    ) -> CallId {
        self.call_inner(args, Some(Arc::new(on_event)), Box::new(done), false)
    }

    /// Calls and waits for the result, at most `timeout` (then it is
    /// [`CallError::Rpc`] with [`Error::Timeout`]).
    pub fn call_wait(&self, args: A, timeout: Duration) -> Result<R, CallError<E>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let done = Box::new(move |r| {
            let _ = tx.send(r);
        });
        self.call_inner(args, None, done, true);
        self.rpc.await_answer(&rx, timeout).unwrap_or_else(|| {
            Err(CallError::Rpc(Error::Timeout {
                what: format!("worker {} (pid {})", self.f.name, self.rpc.pid()),
                ms: timeout.as_millis(),
            }))
        })
    }

    fn call_inner(
        &self,
        args: A,
        on_event: Option<EventHandler<Ev>>,
        done: Box<dyn FnOnce(Result<R, CallError<E>>) + Send>,
        flush: bool,
    ) -> CallId {
        let call = CallId(self.calls.fetch_add(1, Ordering::Relaxed) + 1);
        let payload = match self.f.encode_args(&args) {
            Ok(p) => p,
            Err(e) => {
                done(Err(CallError::Rpc(e)));
                return call;
            }
        };
        let f = self.f;
        let pending = Pending {
            cb: Box::new(move |a: Answer<Vec<u8>>| done(f.decode_answer(a.result()))),
            events: f.event_sink(call, on_event.or_else(|| self.on_event.clone())),
        };
        self.rpc.call_pending(&payload, pending, flush);
        call
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.rpc.pid()
    }

    /// How many calls are waiting for an answer.
    pub fn pending(&self) -> usize {
        self.rpc.pending()
    }

    /// The error that ended the worker, if it has ended.
    pub fn error(&self) -> Option<Error> {
        self.rpc.error()
    }

    /// Drops this handle and waits, at most `timeout`, until the worker has
    /// answered everything, exited and been reaped (see [`Rpc::join`]).
    pub fn join(self, timeout: Duration) -> Result<(), Error> {
        self.rpc.join(timeout)
    }
}
