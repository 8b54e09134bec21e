//! The worker side: registering worker functions, serving them, and the
//! functions a worker function may call (`event`, `retire`).

use std::any::Any;
use std::collections::HashMap;
use std::io::BufReader;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use once_cell::sync::{Lazy, OnceCell};
use parking_lot::{Condvar, Mutex};

use super::serialiser::{Serialiser, Strings};
use super::wire::{self, Outbox};
use super::worker::{ENV_EXTRA_FD, ENV_FD};
use super::{Backend, Error};

type SyncFn = Arc<dyn Fn(&[u8], &mut Vec<u8>) -> Result<(), String> + Send + Sync>;
type AsyncFn = Arc<dyn Fn(u32, &[u8]) -> Result<(), String> + Send + Sync>;
type EventFn = Arc<dyn Fn(&dyn Any, &mut Vec<u8>) -> Result<(), Error> + Send + Sync>;
type InitFn = Arc<dyn Fn(Vec<Vec<u8>>) -> Result<(), String> + Send + Sync>;
type DoneFn = Arc<dyn Fn() + Send + Sync>;

enum Body {
    Sync(SyncFn),
    Async(AsyncFn),
}

struct Entry {
    serialiser: &'static str,
    body: Body,
    event: EventFn,
}

#[derive(Default)]
struct Registry {
    functions: HashMap<String, Entry>,
    inits: HashMap<String, InitFn>,
    dones: HashMap<String, DoneFn>,
}

static REGISTRY: Lazy<Mutex<Registry>> = Lazy::new(Default::default);

/// What the serving process is doing; set once serving starts.
struct Serving {
    outbox: Arc<Outbox>,
    function: String,
    serialiser: &'static str,
    backend: Backend,
    event: OnceCell<EventFn>,
    /// Outstanding async calls, and a condvar to wait for zero.
    outstanding: Mutex<usize>,
    idle: Condvar,
}

static SERVING: OnceCell<Serving> = OnceCell::new();
static EXTRA_FD: Mutex<Option<OwnedFd>> = Mutex::new(None);
static IS_WORKER: AtomicBool = AtomicBool::new(false);

fn event_encoder<S: Serialiser>(ser: S, function: &str) -> EventFn {
    let function = function.to_string();
    Arc::new(
        move |v: &dyn Any, out: &mut Vec<u8>| match v.downcast_ref::<S::Value>() {
            Some(v) => ser.encode(v, out),
            None => Err(Error::EventType {
                function: function.clone(),
                serialiser: ser.name(),
                got: "value of another type",
            }),
        },
    )
}

/// Registers a synchronous worker function under `name`, for the `sync`
/// backend: it gets the decoded arguments and returns the result. Calls run
/// one at a time, in order.
///
/// A panic in `f` ends the worker; the parent gets the panic's message.
///
/// ```no_run
/// use aemp::rpc::{self, Json};
/// use serde_json::{json, Value};
/// fn main() {
///     rpc::register_sync("add", Json::new(), |v: Value| json!(v[0].as_i64().unwrap() + v[1].as_i64().unwrap()));
///     rpc::serve_if_worker();
///     // ... the parent's program goes on here
/// }
/// ```
pub fn register_sync<S, F>(name: &str, serialiser: S, f: F)
where
    S: Serialiser,
    F: Fn(S::Value) -> S::Value + Send + Sync + 'static,
{
    let ser = serialiser.clone();
    let body: SyncFn = Arc::new(move |args: &[u8], out: &mut Vec<u8>| {
        let v = ser.decode(args).map_err(|e| format!("arguments: {e}"))?;
        let r = f(v);
        ser.encode(&r, out).map_err(|e| format!("result: {e}"))
    });
    REGISTRY.lock().functions.insert(
        name.to_string(),
        Entry {
            serialiser: serialiser.name(),
            body: Body::Sync(body),
            event: event_encoder(serialiser, name),
        },
    );
}

/// Completes one call of an asynchronous worker function. Call
/// [`Done::done`] with the result, from any thread, before or after the
/// worker function returns. Dropping it without completing ends the call
/// with [`Error::Abandoned`] in the parent.
pub struct Done<S: Serialiser> {
    id: u32,
    ser: S,
    finished: bool,
}

impl<S: Serialiser> Done<S> {
    /// The call's id (unique among the calls outstanding).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Sends the result to the parent.
    pub fn done(mut self, result: S::Value) {
        self.finished = true;
        let mut f = wire::frame_start(64);
        let frame = match self.ser.encode(&result, &mut f) {
            Ok(()) => match wire::frame_finish(&mut f, wire::RESULT, self.id, "result") {
                Ok(()) => f,
                Err(e) => wire::frame(wire::CALL_ERROR, self.id, e.to_string().as_bytes()),
            },
            Err(e) => wire::frame(wire::CALL_ERROR, self.id, format!("result: {e}").as_bytes()),
        };
        finish_async(frame);
    }
}

impl<S: Serialiser> Drop for Done<S> {
    fn drop(&mut self) {
        if !self.finished {
            finish_async(wire::frame(wire::ABANDONED, self.id, b""));
        }
    }
}

fn finish_async(frame: Vec<u8>) {
    if let Some(s) = SERVING.get() {
        s.outbox.push(frame, true);
        let mut n = s.outstanding.lock();
        *n = n.saturating_sub(1);
        if *n == 0 {
            s.idle.notify_all();
        }
    }
}

/// Registers an asynchronous worker function under `name`, for the `async`
/// backend: it gets a [`Done`] handle and the decoded arguments, and may
/// complete the call later, from any thread. Many calls run concurrently;
/// the parent matches results to calls by id.
///
/// ```no_run
/// use aemp::rpc::{self, Done, Raw};
/// rpc::register_async("echo_later", Raw, |done: Done<Raw>, args: Vec<u8>| {
///     std::thread::spawn(move || done.done(args));
/// });
/// ```
pub fn register_async<S, F>(name: &str, serialiser: S, f: F)
where
    S: Serialiser,
    F: Fn(Done<S>, S::Value) + Send + Sync + 'static,
{
    let ser = serialiser.clone();
    let body: AsyncFn = Arc::new(move |id: u32, args: &[u8]| {
        let v = ser.decode(args).map_err(|e| format!("arguments: {e}"))?;
        f(
            Done {
                id,
                ser: ser.clone(),
                finished: false,
            },
            v,
        );
        Ok(())
    });
    REGISTRY.lock().functions.insert(
        name.to_string(),
        Entry {
            serialiser: serialiser.name(),
            body: Body::Async(body),
            event: event_encoder(serialiser, name),
        },
    );
}

/// Registers an `init` function: the parent names it with
/// [`RpcBuilder::init`](super::RpcBuilder::init), and the worker runs it
/// first, with the init arguments in order, before serving any call. An
/// `Err` refuses to serve; the parent's calls fail with
/// [`Error::Refused`] carrying the message. It cannot send events.
pub fn register_init<F>(name: &str, f: F)
where
    F: Fn(Vec<Vec<u8>>) -> Result<(), String> + Send + Sync + 'static,
{
    REGISTRY.lock().inits.insert(name.to_string(), Arc::new(f));
}

/// Registers a `done` function for the async backend: when the parent closes
/// the channel and every call has completed, the worker runs it instead of
/// exiting at once, and exits when it returns (the original's `done`
/// option). Named by [`RpcBuilder::done`](super::RpcBuilder::done).
pub fn register_done<F>(name: &str, f: F)
where
    F: Fn() + Send + Sync + 'static,
{
    REGISTRY.lock().dones.insert(name.to_string(), Arc::new(f));
}

/// Sends an event to the parent's `on_event` handler. The value must have
/// the type of the worker function's serialiser (`Vec<u8>` for [`Raw`](super::Raw),
/// `serde_json::Value` for `Json`, ...). Events and results reach the
/// parent in the order they were emitted. Callable from any thread of a
/// worker.
pub fn event<V: Any>(value: &V) -> Result<(), Error> {
    let s = SERVING.get().ok_or(Error::NotWorker { what: "event" })?;
    let enc = s.event.get().ok_or(Error::NotWorker { what: "event" })?;
    let mut f = wire::frame_start(64);
    enc(value, &mut f).map_err(|e| match e {
        Error::EventType {
            function,
            serialiser,
            ..
        } => Error::EventType {
            function,
            serialiser,
            got: std::any::type_name::<V>(),
        },
        e => e,
    })?;
    wire::frame_finish(&mut f, wire::EVENT, 0, "event")?;
    s.outbox.push(f, s.backend == Backend::Async);
    if s.backend == Backend::Sync {
        s.outbox.flush_now();
    }
    Ok(())
}

/// Asks a pool to retire this worker: it gets no new calls, finishes the
/// ones it has, and is then stopped (and replaced when needed). Calling it
/// again is harmless. Outside a pool the parent ignores it.
pub fn retire() -> Result<(), Error> {
    let s = SERVING.get().ok_or(Error::NotWorker { what: "retire" })?;
    s.outbox.push(wire::frame(wire::RETIRE, 0, b""), true);
    Ok(())
}

/// Takes the extra file descriptor the parent passed with
/// [`Worker::fd`](super::Worker::fd), once.
pub fn take_extra_fd() -> Option<OwnedFd> {
    EXTRA_FD.lock().take()
}

/// Whether this process was started as a worker.
pub fn is_worker() -> bool {
    IS_WORKER.load(Ordering::Relaxed) || std::env::var_os(ENV_FD).is_some()
}

/// The entry point of a worker process. Call it early in `main`, after
/// registering the worker functions: when the process was started as a
/// worker it serves the function the parent asked for and then exits the
/// process (it never returns); otherwise it returns at once.
///
/// ```no_run
/// // First thing in `main`:
/// aemp::rpc::register_sync("square", aemp::rpc::Raw, |v: Vec<u8>| vec![v[0] * v[0]]);
/// aemp::rpc::serve_if_worker();
/// // The parent's code goes on from here.
/// ```
pub fn serve_if_worker() {
    let Some(fd) = std::env::var_os(ENV_FD) else {
        return;
    };
    IS_WORKER.store(true, Ordering::Relaxed);
    std::env::remove_var(ENV_FD);
    let fd: i32 = match fd.to_str().and_then(|s| s.parse().ok()) {
        Some(fd) if fd > 2 => fd,
        _ => {
            log::error!("rpc worker: bad {ENV_FD} value {fd:?}");
            std::process::exit(2);
        }
    };
    if let Some(extra) = std::env::var_os(ENV_EXTRA_FD) {
        std::env::remove_var(ENV_EXTRA_FD);
        if let Some(x) = extra.to_str().and_then(|s| s.parse::<i32>().ok()) {
            // SAFETY: the parent passed this descriptor open for us alone.
            *EXTRA_FD.lock() = Some(unsafe { OwnedFd::from_raw_fd(x) });
        }
    }
    // SAFETY: the parent passed this descriptor (our channel) open for us alone.
    let sock = unsafe { UnixStream::from_raw_fd(fd) };
    // Our own children must not inherit the channel.
    // SAFETY: plain fcntl on a descriptor we own.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    let code = serve(sock);
    std::process::exit(code);
}

fn fatal(outbox: &Outbox, message: String) -> i32 {
    log::error!("rpc worker: {message}");
    outbox.push(wire::frame(wire::FATAL, 0, message.as_bytes()), true);
    outbox.close();
    outbox.wait_finished(Duration::from_secs(5));
    3
}

fn install_panic_hook() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        prev(info);
        let what = if let Some(s) = info.payload().downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "Box<dyn Any>".to_string()
        };
        let message = match info.location() {
            Some(l) => format!("{what} (at {}:{})", l.file(), l.line()),
            None => what,
        };
        if let Some(s) = SERVING.get() {
            s.outbox
                .push(wire::frame(wire::PANIC, 0, message.as_bytes()), true);
            s.outbox.close();
            s.outbox.wait_finished(Duration::from_secs(5));
        }
        std::process::exit(101);
    }));
}

fn serve(sock: UnixStream) -> i32 {
    let write_half = match sock.try_clone() {
        Ok(s) => s,
        Err(e) => {
            log::error!("rpc worker: cannot clone channel: {e}");
            return 2;
        }
    };
    let outbox = match Outbox::start(write_half, "aemp-rpc-writer") {
        Ok(o) => o,
        Err(e) => {
            log::error!("rpc worker: cannot start writer thread: {e}");
            return 2;
        }
    };
    let mut reader = BufReader::with_capacity(256 << 10, sock);
    let start = match wire::read_frame(&mut reader, wire::FROM_PARENT) {
        Ok(Some(f)) if f.kind == wire::START => f,
        Ok(None) => return 0, // parent gave up before starting us
        Ok(Some(f)) => {
            return fatal(
                &outbox,
                format!("expected a start frame, got kind 0x{:02x}", f.kind),
            )
        }
        Err(e) => return fatal(&outbox, format!("reading start frame: {e}")),
    };
    let params = match Strings::unpack(&start.payload) {
        Ok(p) if p.len() >= 6 && p[0] == wire::MAGIC => p,
        Ok(p) => {
            return fatal(
                &outbox,
                format!(
                    "start frame is not {}: {:?}",
                    String::from_utf8_lossy(wire::MAGIC),
                    p.first().map(|m| String::from_utf8_lossy(m).into_owned())
                ),
            )
        }
        Err(e) => return fatal(&outbox, format!("bad start frame: {e}")),
    };
    let text = |i: usize| String::from_utf8_lossy(&params[i]).into_owned();
    let (function, serialiser, backend, init, done) = (text(1), text(2), text(3), text(4), text(5));
    let init_args = params[6..].to_vec();
    let backend = if backend == "async" {
        Backend::Async
    } else {
        Backend::Sync
    };

    let (entry_ser, body, event, init_fn, done_fn) = {
        let reg = REGISTRY.lock();
        let Some(entry) = reg.functions.get(&function) else {
            let mut names: Vec<&str> = reg.functions.keys().map(String::as_str).collect();
            names.sort_unstable();
            return fatal(
                &outbox,
                format!(
                    "no worker function named {function:?} is registered in {} (registered: {})",
                    exe_name(),
                    names.join(", ")
                ),
            );
        };
        let body = match &entry.body {
            Body::Sync(f) => Body::Sync(f.clone()),
            Body::Async(f) => Body::Async(f.clone()),
        };
        let init_fn = if init.is_empty() {
            None
        } else {
            match reg.inits.get(&init) {
                Some(f) => Some(f.clone()),
                None => {
                    return fatal(
                        &outbox,
                        format!(
                            "no init function named {init:?} is registered in {}",
                            exe_name()
                        ),
                    )
                }
            }
        };
        let done_fn = if done.is_empty() {
            None
        } else {
            match reg.dones.get(&done) {
                Some(f) => Some(f.clone()),
                None => {
                    return fatal(
                        &outbox,
                        format!(
                            "no done function named {done:?} is registered in {}",
                            exe_name()
                        ),
                    )
                }
            }
        };
        (
            entry.serialiser,
            body,
            entry.event.clone(),
            init_fn,
            done_fn,
        )
    };
    if entry_ser != serialiser {
        return fatal(
            &outbox,
            format!("worker function {function:?} uses the {entry_ser} serialiser, the parent asked for {serialiser}"),
        );
    }
    let fn_backend = match body {
        Body::Sync(_) => Backend::Sync,
        Body::Async(_) => Backend::Async,
    };
    if fn_backend != backend {
        return fatal(
            &outbox,
            format!("worker function {function:?} is registered for the {fn_backend:?} backend, the parent asked for {backend:?}"),
        );
    }

    let _ = SERVING.set(Serving {
        outbox: outbox.clone(),
        function: function.clone(),
        serialiser: entry_ser,
        backend,
        event: OnceCell::new(),
        outstanding: Mutex::new(0),
        idle: Condvar::new(),
    });
    let serving = SERVING.get().expect("just set");
    install_panic_hook();
    if let Some(init_fn) = init_fn {
        if let Err(e) = init_fn(init_args) {
            return fatal(&outbox, format!("init function {init:?} failed: {e}"));
        }
    }
    let _ = serving.event.set(event);
    log::debug!(
        "rpc worker {} serving {function:?} ({:?}, {})",
        std::process::id(),
        serving.backend,
        serving.serialiser
    );

    let result = match body {
        Body::Sync(f) => serve_sync(&mut reader, &outbox, &f),
        Body::Async(f) => serve_async(&mut reader, serving, &f),
    };
    if let Err(message) = result {
        return fatal(&outbox, message);
    }
    if let (Backend::Async, Some(done_fn)) = (backend, done_fn) {
        done_fn();
    }
    outbox.close();
    outbox.wait_finished(Duration::from_secs(3600));
    log::debug!(
        "rpc worker {} for {} exits",
        std::process::id(),
        serving.function
    );
    0
}

fn exe_name() -> String {
    std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "this program".into())
}

fn serve_sync(
    reader: &mut BufReader<UnixStream>,
    outbox: &Outbox,
    f: &SyncFn,
) -> Result<(), String> {
    loop {
        let frame = match wire::read_frame(reader, wire::FROM_PARENT) {
            Ok(Some(fr)) => fr,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("reading from parent: {e}")),
        };
        if frame.kind != wire::CALL {
            return Err(format!(
                "unexpected frame kind 0x{:02x} from parent",
                frame.kind
            ));
        }
        let mut out = wire::frame_start(64);
        let reply = match f(&frame.payload, &mut out) {
            Ok(()) => match wire::frame_finish(&mut out, wire::RESULT, frame.id, "result") {
                Ok(()) => out,
                Err(e) => wire::frame(wire::CALL_ERROR, frame.id, e.to_string().as_bytes()),
            },
            Err(msg) => wire::frame(wire::CALL_ERROR, frame.id, msg.as_bytes()),
        };
        outbox.push(reply, false);
        // Batch results while more calls are already buffered.
        if reader.buffer().is_empty() {
            outbox.flush_now();
        }
    }
}

fn serve_async(
    reader: &mut BufReader<UnixStream>,
    serving: &Serving,
    f: &AsyncFn,
) -> Result<(), String> {
    loop {
        let frame = match wire::read_frame(reader, wire::FROM_PARENT) {
            Ok(Some(fr)) => fr,
            Ok(None) => break,
            Err(e) => return Err(format!("reading from parent: {e}")),
        };
        if frame.kind != wire::CALL {
            return Err(format!(
                "unexpected frame kind 0x{:02x} from parent",
                frame.kind
            ));
        }
        *serving.outstanding.lock() += 1;
        if let Err(msg) = f(frame.id, &frame.payload) {
            finish_async(wire::frame(wire::CALL_ERROR, frame.id, msg.as_bytes()));
        }
    }
    let mut n = serving.outstanding.lock();
    while *n > 0 {
        serving.idle.wait(&mut n);
    }
    Ok(())
}
