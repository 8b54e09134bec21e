//! RPC with types: a worker function declared once as a [`Function`] with
//! its own argument, result, event and error types, registered in the
//! worker ([`Function::register`]) and called from the parent through a
//! [`TypedRpc`] (one worker) or a [`TypedPool`]. The compiler checks both
//! ends against the one declaration.
//!
//! Under the typed layer sit the untyped handles: a typed call's payload
//! is its value encoded with the function's [`Codec`]; a typed answer is
//! one octet (0: the function's `Ok`, 1: its `Err`) and the encoded value.
//! Events travel in frames tagged with the call's id, so the parent hands
//! each to the call it belongs to.

mod pool;
mod rpc;

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::child::{register_sync_fn, send_event, EventFn, SyncFn};
use super::handle::{EventSink, Origin};
use super::serialiser::{Cbor, Json, Serialiser};
use super::{wire, Error};

pub use pool::{TypedPool, TypedPoolBuilder};
pub use rpc::{TypedRpc, TypedRpcBuilder};

/// What a typed call's arguments, results, events and errors must be:
/// serde types that can cross threads. Implemented for every such type.
pub trait Payload: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> Payload for T {}

/// How a typed function's values become octets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// JSON text (serde_json).
    Json,
    /// CBOR (RFC 8949, ciborium).
    Cbor,
}

impl Codec {
    /// Its name, which starts a typed function's signature.
    fn name(self) -> &'static str {
        match self {
            Codec::Json => "typed-json",
            Codec::Cbor => "typed-cbor",
        }
    }

    fn encode<T: Payload>(
        self,
        value: &T,
        what: &'static str,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        match self {
            Codec::Json => Json::<T>::new().encode(value, out),
            Codec::Cbor => Cbor::<T>::new().encode(value, out),
        }
        .map_err(|e| match e {
            Error::Encode {
                serialiser,
                message,
                ..
            } => Error::Encode {
                serialiser,
                what,
                message,
            },
            e => e,
        })
    }

    fn decode<T: Payload>(self, bytes: &[u8], what: &'static str) -> Result<T, Error> {
        match self {
            Codec::Json => Json::<T>::new().decode(bytes),
            Codec::Cbor => Cbor::<T>::new().decode(bytes),
        }
        .map_err(|e| match e {
            Error::Decode {
                serialiser,
                len,
                message,
                ..
            } => Error::Decode {
                serialiser,
                what,
                len,
                message,
            },
            e => e,
        })
    }
}

/// The untyped handles' serialiser for typed calls: payloads are already
/// encoded, and pass as they are; the name (the function's
/// [`signature`](Function::signature)) tells the worker the codec and the
/// types.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Encoded(&'static str);

impl Serialiser for Encoded {
    type Value = Vec<u8>;

    fn name(&self) -> &'static str {
        self.0
    }

    fn encode(&self, value: &Vec<u8>, out: &mut Vec<u8>) -> Result<(), Error> {
        out.extend_from_slice(value);
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(bytes.to_vec())
    }
}

/// The first octet of a typed answer: the function returned `Ok`.
const OK: u8 = 0;
/// The first octet of a typed answer: the function returned `Err`.
const FAILED: u8 = 1;

/// A worker function's name and types, declared once and shared by the
/// worker ([`register`](Function::register)) and the parent
/// ([`rpc`](Function::rpc), [`pool`](Function::pool)): arguments `A`,
/// result `R`, events `Ev` (default `()`: none) and the function's own
/// error `E` (default `String`). All four are serde types ([`Payload`]).
///
/// The worker function gets its arguments and an [`Events`] sender, and
/// returns `Result<R, E>`; the caller gets `Result<R, CallError<E>>`,
/// where [`CallError::Failed`] is the function's own error and
/// [`CallError::Rpc`] a failure of the call (the worker died, ...). Only
/// the sync backend is typed: a worker runs one call at a time.
///
/// ```
/// use aemp::rpc::{self, CallError, Function, Worker};
/// use std::time::Duration;
///
/// /// Square root of a number, with a progress event (a percentage).
/// const SQRT: Function<f64, f64, u8> = Function::json("sqrt");
///
/// fn main() -> Result<(), rpc::Error> {
///     SQRT.register(|x, events| {
///         events.send(&50).map_err(|e| e.to_string())?; // type-checked: u8
///         if x < 0.0 {
///             return Err(format!("{x} has no real square root"));
///         }
///         Ok(x.sqrt())
///     });
///     rpc::serve_if_worker()?; // a worker serves here and exits
///
///     let rpc = SQRT
///         .rpc(Worker::current_exe())
///         .on_event(|ev| println!("call {}: {}%", ev.call, ev.value))
///         .spawn()?;
///     let t = Duration::from_secs(5);
///     assert_eq!(rpc.call_wait(16.0, t).unwrap(), 4.0);
///     match rpc.call_wait(-1.0, t) {
///         Err(CallError::Failed(message)) => println!("refused: {message}"),
///         other => panic!("{other:?}"),
///     }
///     rpc.join(t)
/// }
/// ```
pub struct Function<A, R, Ev = (), E = String> {
    name: &'static str,
    codec: Codec,
    types: PhantomData<Signature<A, R, Ev, E>>,
}

/// The types a [`Function`] stands for (a function pointer type, so a
/// `Function` is `Copy`, `Send` and `Sync` whatever they are).
type Signature<A, R, Ev, E> = fn(A, &Events<Ev>) -> Result<R, E>;

impl<A, R, Ev, E> Clone for Function<A, R, Ev, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A, R, Ev, E> Copy for Function<A, R, Ev, E> {}

impl<A, R, Ev, E> fmt::Debug for Function<A, R, Ev, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Function({:?}, {:?})", self.name, self.codec)
    }
}

impl<A, R, Ev, E> Function<A, R, Ev, E> {
    /// The function `name`, its values encoded as JSON.
    pub const fn json(name: &'static str) -> Self {
        Function {
            name,
            codec: Codec::Json,
            types: PhantomData,
        }
    }

    /// The function `name`, its values encoded as CBOR.
    ///
    /// ```
    /// use aemp::rpc::{Codec, Function};
    /// // Declared once, as a constant both the worker and the parent use.
    /// const RESIZE: Function<(u32, u32), Vec<u8>, u8> = Function::cbor("img::resize");
    /// assert_eq!(RESIZE.name(), "img::resize");
    /// assert_eq!(RESIZE.codec(), Codec::Cbor);
    /// ```
    pub const fn cbor(name: &'static str) -> Self {
        Function {
            name,
            codec: Codec::Cbor,
            types: PhantomData,
        }
    }

    /// The name the function is registered and called by.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// How its values are encoded.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The codec and the four types, as the parent and the worker compare
    /// them at start: a worker refuses to serve a function registered with
    /// other types than the parent's (named by [`std::any::type_name`]).
    ///
    /// ```
    /// use aemp::rpc::Function;
    /// const F: Function<u32, String> = Function::json("f");
    /// assert_eq!(F.signature(), "typed-json: fn(u32) -> Result<alloc::string::String, alloc::string::String>, events ()");
    /// ```
    pub fn signature(&self) -> &'static str {
        use std::any::type_name;
        intern(format!(
            "{}: fn({}) -> Result<{}, {}>, events {}",
            self.codec.name(),
            type_name::<A>(),
            type_name::<R>(),
            type_name::<E>(),
            type_name::<Ev>()
        ))
    }
}

/// `s`, kept for the rest of the run (once per distinct string).
fn intern(s: String) -> &'static str {
    static SEEN: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut seen = SEEN.lock();
    if let Some(&old) = seen.iter().find(|&&old| old == s) {
        return old;
    }
    let new: &'static str = Box::leak(s.into_boxed_str());
    seen.push(new);
    new
}

impl<A: Payload, R: Payload, Ev: Payload, E: Payload> Function<A, R, Ev, E> {
    /// Registers the worker function `f` under this function's name (in
    /// the worker: before [`serve_if_worker`](super::serve_if_worker)).
    /// It runs one call at a time; its `Err` reaches the caller as
    /// [`CallError::Failed`]. A panic in `f` ends the worker, as with
    /// [`register_sync`](super::register_sync).
    ///
    /// ```
    /// use aemp::rpc::Function;
    /// const DOUBLE: Function<i64, i64> = Function::json("double");
    /// DOUBLE.register(|n, _events| n.checked_mul(2).ok_or_else(|| format!("{n} is too large")));
    /// ```
    pub fn register<F>(&self, f: F)
    where
        F: Fn(A, &Events<Ev>) -> Result<R, E> + Send + Sync + 'static,
    {
        let codec = self.codec;
        let body: SyncFn = Arc::new(move |id: u32, args: &[u8], out: &mut Vec<u8>| {
            let args: A = codec.decode(args, "arguments").map_err(|e| e.to_string())?;
            let events = Events {
                id,
                codec,
                types: PhantomData,
            };
            match f(args, &events) {
                Ok(r) => {
                    out.push(OK);
                    codec.encode(&r, "result", out)
                }
                Err(e) => {
                    out.push(FAILED);
                    codec.encode(&e, "error", out)
                }
            }
            .map_err(|e| e.to_string())
        });
        let function = self.name.to_string();
        let event: EventFn = Arc::new(move |_, _| {
            Err(Error::EventType {
                function: function.clone(),
                serialiser: codec.name(),
                got:
                    "value sent with rpc::event (a typed function sends events through its Events)",
            })
        });
        register_sync_fn(self.name, self.signature(), body, event);
    }

    /// The call's payload: `args` encoded.
    fn encode_args(&self, args: &A) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(64);
        self.codec.encode(args, "arguments", &mut out)?;
        Ok(out)
    }

    /// A typed answer from what the untyped handle delivered.
    fn decode_answer(&self, answer: Result<Vec<u8>, Error>) -> Result<R, CallError<E>> {
        let bytes = answer.map_err(CallError::Rpc)?;
        match bytes.split_first() {
            Some((&OK, value)) => self.codec.decode(value, "result").map_err(CallError::Rpc),
            Some((&FAILED, value)) => match self.codec.decode(value, "error") {
                Ok(e) => Err(CallError::Failed(e)),
                Err(e) => Err(CallError::Rpc(e)),
            },
            _ => Err(CallError::Rpc(Error::Decode {
                serialiser: self.codec.name(),
                what: "answer",
                len: bytes.len(),
                message: "does not start with 0 (a result) or 1 (an error)".into(),
            })),
        }
    }

    /// Where the untyped handle sends the events of call `call`: decoded,
    /// tagged, to `handler` (none: the untyped handle's own handling).
    fn event_sink(
        &self,
        call: CallId,
        handler: Option<EventHandler<Ev>>,
    ) -> Option<EventSink<Vec<u8>>> {
        let handler = handler?;
        let (codec, name) = (self.codec, self.name);
        Some(Arc::new(move |o: Origin, bytes: Vec<u8>| {
            match codec.decode::<Ev>(&bytes, "event") {
                Ok(value) => handler(Event {
                    call,
                    worker: o.worker,
                    pid: o.pid,
                    value,
                }),
                Err(e) => log::error!("rpc: an event of {name} call {call}: {e}"),
            }
        }))
    }
}

/// A per-call or per-handle event handler.
type EventHandler<Ev> = Arc<dyn Fn(Event<Ev>) + Send + Sync>;

/// Sends a typed worker function's events to the parent, tagged with the
/// call they belong to. Handed to the function by reference for the
/// duration of one call; events reach the parent before the call's
/// result, in the order they were sent.
///
/// ```
/// use aemp::rpc::{Events, Function};
/// const COPY: Function<Vec<String>, usize, String> = Function::json("copy");
/// COPY.register(|files, events: &Events<String>| {
///     for f in &files {
///         events.send(f).ok(); // "now copying f"
///     }
///     Ok(files.len())
/// });
/// ```
pub struct Events<Ev> {
    id: u32,
    codec: Codec,
    types: PhantomData<fn(&Ev)>,
}

impl<Ev: Payload> Events<Ev> {
    /// Sends one event to the parent (flushed at once).
    pub fn send(&self, event: &Ev) -> Result<(), Error> {
        let mut frame = wire::frame_start(64);
        self.codec.encode(event, "event", &mut frame)?;
        send_event(frame, self.id)
    }
}

/// Names one call of a [`TypedRpc`] or [`TypedPool`]: its calls are
/// numbered 1, 2, 3, … in the order they were made. `call` returns it, and
/// every [`Event`] carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An event of a typed call, with where it came from.
///
/// ```
/// use aemp::rpc::{CallId, Event};
/// fn show(ev: Event<u8>) -> String {
///     format!("call {} on worker {} (pid {}): {}%", ev.call, ev.worker, ev.pid, ev.value)
/// }
/// let ev = Event { call: CallId(3), worker: 1, pid: 4242, value: 50 };
/// assert_eq!(show(ev), "call 3 on worker 1 (pid 4242): 50%");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Event<Ev> {
    /// The call that sent it.
    pub call: CallId,
    /// The worker that ran the call: in a pool, the pool's number for it
    /// (1, 2, 3, … in the order the pool started them, never reused); 0
    /// for a single [`TypedRpc`].
    pub worker: u64,
    /// The worker's process id.
    pub pid: u32,
    /// The event.
    pub value: Ev,
}

/// Why a typed call has no result: the worker function's own error, or a
/// failure of the call itself.
///
/// ```
/// use aemp::rpc::{CallError, Error};
/// fn explain(e: CallError<String>) -> String {
///     match e {
///         CallError::Failed(why) => format!("the function said no: {why}"),
///         CallError::Rpc(Error::WorkerDied { status, .. }) => format!("worker died: {status}"),
///         CallError::Rpc(other) => format!("call failed: {other}"),
///     }
/// }
/// assert_eq!(explain(CallError::Failed("odd".into())), "the function said no: odd");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum CallError<E> {
    /// The worker function ran and returned this error.
    Failed(E),
    /// The call did not complete: the worker died, panicked, refused to
    /// start, timed out, a value did not encode, …
    Rpc(Error),
}

impl<E> From<Error> for CallError<E> {
    fn from(e: Error) -> Self {
        CallError::Rpc(e)
    }
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Failed(e) => write!(f, "the worker function failed: {e}"),
            CallError::Rpc(e) => e.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for CallError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CallError::Failed(_) => None,
            CallError::Rpc(e) => Some(e),
        }
    }
}
