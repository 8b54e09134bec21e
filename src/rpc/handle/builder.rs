//! Starting one worker: [`RpcBuilder`], its options, and the start frame
//! that tells the new process what to serve. `spawn` hands the running
//! worker to a [`Reader`] thread and returns the [`Rpc`] handle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::reader::{reap, Inbox, Reader};
use super::{report, ErrorHook, EventHook, ExitHook, PlainHook, Rpc, Shared, State, Token};
use crate::busy::{BusyWait, DEFAULT_BUSY_WAIT};
use crate::rpc::serialiser::{Raw, Serialiser, Strings};
use crate::rpc::wire::{self, Outbox};
use crate::rpc::{Backend, Error, Worker};

/// Options for starting one worker; made by [`Rpc::builder`].
///
/// ```
/// use aemp::rpc::{self, Backend, Json, Rpc, Worker};
/// use serde_json::{json, Value};
/// // The worker side (this program, re-run): first in main.
/// rpc::register_init("setup", |args| Ok(eprintln!("init: {args:?}")));
/// rpc::register_sync("add", Json::new(), |v: Value| json!(v[0].as_i64().unwrap() + v[1].as_i64().unwrap()));
/// rpc::serve_if_worker()?;
///
/// let rpc = Rpc::builder(Worker::current_exe(), "add")
///     .serialiser(Json::new())
///     .backend(Backend::Sync)
///     .init("setup", vec![b"verbose".to_vec()])
///     .on_event(|ev| eprintln!("progress: {ev}"))
///     .on_error(|e| eprintln!("worker failed: {e}"))
///     .on_destroy(|| eprintln!("worker finished"))
///     .spawn()?;
/// rpc.call(json!([1, 2]), |r| println!("1 + 2 = {}", r.unwrap()));
/// assert_eq!(rpc.call_wait(json!([2, 2]), std::time::Duration::from_secs(5))?, json!(4));
/// rpc.join(std::time::Duration::from_secs(5))?;
/// # Ok::<(), aemp::rpc::Error>(())
/// ```
pub struct RpcBuilder<S: Serialiser = Raw> {
    worker: Worker,
    function: String,
    ser: S,
    backend: Backend,
    init: Option<(String, Vec<Vec<u8>>)>,
    done: Option<String>,
    on_error: Option<ErrorHook>,
    on_event: Option<EventHook<S>>,
    on_destroy: Option<PlainHook>,
    pub(crate) on_retire: Option<PlainHook>,
    pub(crate) on_exit: Option<ExitHook>,
    /// Sync backend: the worker sends each result before it starts the
    /// next call (no batching of results), so that when it dies, its
    /// oldest unanswered call is the one it was running (pools with a load
    /// above 1 rely on this).
    pub(crate) flush_results: bool,
    /// The worker and the receiving thread poll before they sleep (see
    /// [`crate::busy`]). Off in pools: most of their calls are dispatched
    /// through the handle's writer thread, so polling buys no round trip
    /// there, and on few cores the pollers slow the threads doing the
    /// work. A pool's `call_wait` polls all the same: it marks its call
    /// ([`wire::WAITED`]) so that the worker polls for the next one, and
    /// reads the answer itself.
    pub(crate) poll: bool,
}

impl RpcBuilder<Raw> {
    pub(crate) fn new(worker: Worker, function: &str) -> Self {
        RpcBuilder {
            worker,
            function: function.to_string(),
            ser: Raw,
            backend: Backend::Sync,
            init: None,
            done: None,
            on_error: None,
            on_event: None,
            on_destroy: None,
            on_retire: None,
            on_exit: None,
            flush_results: false,
            poll: true,
        }
    }
}

impl<S: Serialiser> RpcBuilder<S> {
    /// Chooses the serialiser (default [`Raw`]); it must match the one the
    /// worker function was registered with. Resets `on_event`.
    pub fn serialiser<T: Serialiser>(self, ser: T) -> RpcBuilder<T> {
        RpcBuilder {
            worker: self.worker,
            function: self.function,
            ser,
            backend: self.backend,
            init: self.init,
            done: self.done,
            on_error: self.on_error,
            on_event: None,
            on_destroy: self.on_destroy,
            on_retire: self.on_retire,
            on_exit: self.on_exit,
            flush_results: self.flush_results,
            poll: self.poll,
        }
    }

    /// Chooses the backend (default [`Backend::Sync`]); it must match how
    /// the worker function was registered.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Names an init function (see [`register_init`](crate::rpc::register_init))
    /// that the worker runs first, with these arguments in order.
    pub fn init(mut self, function: &str, args: Vec<Vec<u8>>) -> Self {
        self.init = Some((function.to_string(), args));
        self
    }

    /// Async backend: names a done function (see
    /// [`register_done`](crate::rpc::register_done)) the worker runs after the
    /// handle is dropped and every call is answered; it exits when that
    /// function returns.
    pub fn done(mut self, function: &str) -> Self {
        self.done = Some(function.to_string());
        self
    }

    /// Called once when the worker dies or misbehaves (after every
    /// outstanding call got its error), and for events without an
    /// `on_event` handler. Without it, errors are logged.
    pub fn on_error(mut self, f: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(f));
        self
    }

    /// Called for each event the worker emits, in emission order relative to
    /// results.
    pub fn on_event(mut self, f: impl Fn(S::Value) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(f));
        self
    }

    /// Called once after every handle is dropped, every call is answered and
    /// the worker has exited cleanly.
    pub fn on_destroy(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_destroy = Some(Arc::new(f));
        self
    }

    /// A copy of these options without the internal hooks (for pools).
    pub(crate) fn template(&self) -> RpcBuilder<S> {
        RpcBuilder {
            worker: self.worker.clone(),
            function: self.function.clone(),
            ser: self.ser.clone(),
            backend: self.backend,
            init: self.init.clone(),
            done: self.done.clone(),
            on_error: self.on_error.clone(),
            on_event: self.on_event.clone(),
            on_destroy: self.on_destroy.clone(),
            on_retire: None,
            on_exit: None,
            flush_results: self.flush_results,
            poll: self.poll,
        }
    }

    /// Hands an error to `on_error`, or logs it when there is none.
    pub(crate) fn report(&self, e: &Error) {
        report(&self.on_error, e);
    }

    /// Whether an `on_event` handler is set.
    pub(crate) fn has_on_event(&self) -> bool {
        self.on_event.is_some()
    }

    /// The serialiser.
    pub(crate) fn ser(&self) -> &S {
        &self.ser
    }

    /// The worker function's name.
    pub(crate) fn function_name(&self) -> &str {
        &self.function
    }

    /// Starts the worker process. Calls may be made at once; they queue
    /// until the worker reads them.
    pub fn spawn(self) -> Result<Rpc<S>, Error> {
        let (child, sock) = if self.poll {
            self.worker.spawn()?
        } else {
            self.worker.clone().env(wire::ENV_NO_POLL, "1").spawn()?
        };
        let pid = child.id();
        let function = self.function.clone();
        let io_err = |e: std::io::Error| Error::Io {
            function: function.clone(),
            pid,
            message: e.to_string(),
        };
        let spawned = (|| {
            let inbox = Inbox::new(sock.try_clone()?)?;
            let outbox = Outbox::start(sock, "aemp-rpc-send")?;
            Ok::<_, std::io::Error>((inbox, outbox))
        })();
        let ((inbox, woken), outbox) = match spawned {
            Ok(x) => x,
            Err(e) => {
                reap(child, Duration::ZERO);
                return Err(io_err(e));
            }
        };
        outbox.push(self.start_frame()?, true);

        let shared = Arc::new(Shared {
            function: self.function,
            pid,
            ser: self.ser,
            backend: self.backend,
            outbox,
            dropped: Arc::new(AtomicBool::new(false)),
            st: Mutex::new(State {
                next_id: 1,
                pending: HashMap::new(),
                dead: None,
                ended: false,
            }),
            ended: Condvar::new(),
            on_error: self.on_error,
            on_event: self.on_event,
            on_destroy: self.on_destroy,
            on_retire: self.on_retire,
            // A caller waiting for an answer polls, reading the channel
            // itself, also on a pool's handle (its call's id then has
            // `wire::WAITED`, so that the worker polls too).
            waiting: Mutex::new(BusyWait::new(DEFAULT_BUSY_WAIT)),
            inbox: Mutex::new(inbox),
            readers: AtomicUsize::new(0),
            nap: Condvar::new(),
        });
        let token = Arc::new(Token(shared.outbox.clone(), shared.dropped.clone()));
        Reader::spawn(shared.clone(), child, self.on_exit, woken, self.poll).map_err(io_err)?;
        Ok(Rpc { shared, token })
    }

    /// The first frame the worker reads: what to serve, and how.
    fn start_frame(&self) -> Result<Vec<u8>, Error> {
        let (init, init_args) = self.init.clone().unwrap_or_default();
        let mut params: Vec<Vec<u8>> = vec![
            wire::MAGIC.to_vec(),
            self.function.clone().into_bytes(),
            self.ser.name().as_bytes().to_vec(),
            match (self.backend, self.flush_results) {
                (Backend::Sync, false) => wire::SYNC.to_vec(),
                (Backend::Sync, true) => wire::SYNC_FLUSH.to_vec(),
                (Backend::Async, _) => wire::ASYNC.to_vec(),
            },
            init.into_bytes(),
            self.done.clone().unwrap_or_default().into_bytes(),
        ];
        params.extend(init_args);
        let mut start = wire::frame_start(256);
        Strings::pack(&params, &mut start);
        wire::frame_finish(&mut start, wire::START, 0, "init arguments")?;
        Ok(start)
    }
}
