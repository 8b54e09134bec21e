//! The receiving thread of one worker's handle: a [`Reader`] reads the
//! worker's frames and runs the callbacks (one method per kind of frame);
//! when the channel ends it reaps the child, fails every outstanding call
//! and runs the end hooks ([`Reader::finish`]).

use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{guarded, Answer, ExitHook, Origin, Pending, Shared};
use crate::busy::{BusyWait, DEFAULT_BUSY_WAIT};
use crate::rpc::serialiser::Serialiser;
use crate::rpc::wire::{self, Frame};
use crate::rpc::{Backend, Error};

/// Why the reader stopped reading.
enum End {
    /// The channel reached end of file.
    Eof,
    /// The worker reported a panic or refused to serve; it exits by itself.
    Exits(Error),
    /// Bad data or a broken channel: kill the worker.
    Kill(Error),
}

/// The state of one receiving thread: the handle's shared state, the
/// channel's read half and the child process to reap at the end.
pub(super) struct Reader<S: Serialiser> {
    shared: Arc<Shared<S>>,
    sock: BufReader<UnixStream>,
    child: Child,
    on_exit: Option<ExitHook>,
    /// Polls for the worker's next frame before blocking.
    busy: BusyWait,
}

impl<S: Serialiser> Reader<S> {
    /// Starts the receiving thread of the worker `child`.
    pub(super) fn spawn(
        shared: Arc<Shared<S>>,
        sock: UnixStream,
        child: Child,
        on_exit: Option<ExitHook>,
    ) -> std::io::Result<()> {
        let mut reader = Reader {
            shared,
            sock: BufReader::with_capacity(1 << 20, sock),
            child,
            on_exit,
            busy: BusyWait::new(DEFAULT_BUSY_WAIT),
        };
        std::thread::Builder::new()
            .name(format!("aemp-rpc-recv-{}", reader.shared.pid))
            .spawn(move || {
                let end = reader.read_all();
                reader.finish(end);
            })?;
        Ok(())
    }

    /// Serves frames until the channel ends or the worker misbehaves.
    fn read_all(&mut self) -> End {
        loop {
            let step = self.next_frame().and_then(|fr| self.on_frame(fr));
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// The next frame from the worker, or why there is none.
    fn next_frame(&mut self) -> Result<Frame, End> {
        match wire::read_frame_polling(&mut self.sock, wire::FROM_CHILD, &mut self.busy) {
            Ok(Some(fr)) => Ok(fr),
            Ok(None) => Err(End::Eof),
            // The worker died with our data unread: the same as an end.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Err(End::Eof),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
                ) =>
            {
                Err(self.protocol(e.to_string()))
            }
            Err(e) => Err(End::Kill(self.error(|function, pid| Error::Io {
                function,
                pid,
                message: e.to_string(),
            }))),
        }
    }

    /// Handles one frame by its kind; a frame that ends the worker (or
    /// one of an unknown kind) gives the end.
    fn on_frame(&self, fr: Frame) -> Result<(), End> {
        let text = || String::from_utf8_lossy(&fr.payload).into_owned();
        match fr.kind {
            wire::RESULT | wire::CALL_ERROR | wire::ABANDONED => self.on_answer(&fr),
            wire::EVENT => {
                self.on_event(&fr);
                Ok(())
            }
            wire::RETIRE => {
                if let Some(f) = &self.shared.on_retire {
                    guarded("retire", || f());
                }
                Ok(())
            }
            wire::PANIC => Err(End::Exits(self.error(|function, pid| Error::Panicked {
                function,
                pid,
                message: text(),
            }))),
            wire::FATAL => Err(End::Exits(self.error(|function, pid| Error::Refused {
                function,
                pid,
                message: text(),
            }))),
            k => {
                let shown: Vec<u8> = fr.payload.iter().take(16).copied().collect();
                Err(self.protocol(format!(
                    "a frame of unknown kind 0x{k:02x} (id {}, {} octets, starting {:?})",
                    fr.id,
                    fr.payload.len(),
                    String::from_utf8_lossy(&shown)
                )))
            }
        }
    }

    /// The error `make` builds from the worker's function name and pid.
    fn error(&self, make: impl FnOnce(String, u32) -> Error) -> Error {
        make(self.shared.function.clone(), self.shared.pid)
    }

    /// Bad data from the worker.
    fn protocol(&self, detail: String) -> End {
        End::Kill(self.error(|function, pid| Error::Protocol {
            function,
            pid,
            detail,
        }))
    }

    /// A result, a call's error or an abandoned call: runs its callback.
    fn on_answer(&self, fr: &Frame) -> Result<(), End> {
        let sh = &*self.shared;
        let Some(p) = sh.take_pending(fr.id) else {
            return Err(self.protocol(format!(
                "an answer to call {}, which is not outstanding",
                fr.id
            )));
        };
        let result = match fr.kind {
            wire::RESULT => sh.ser.decode(&fr.payload).map_err(|e| match e {
                Error::Decode {
                    serialiser,
                    len,
                    message,
                    ..
                } => Error::Decode {
                    serialiser,
                    what: "result",
                    len,
                    message,
                },
                e => e,
            }),
            wire::CALL_ERROR => Err(Error::Call {
                function: sh.function.clone(),
                id: fr.id,
                message: String::from_utf8_lossy(&fr.payload).into_owned(),
            }),
            _ => Err(Error::Abandoned {
                function: sh.function.clone(),
                id: fr.id,
            }),
        };
        guarded("result", || (p.cb)(Answer::Done(result)));
        Ok(())
    }

    /// An event: to the handler of the call it belongs to (its frame's id),
    /// else to `on_event`, else to `on_error`.
    fn on_event(&self, fr: &Frame) {
        let sh = &*self.shared;
        let per_call = match fr.id {
            0 => None,
            id => sh.st.lock().pending.get(&id).and_then(|p| p.events.clone()),
        };
        if per_call.is_none() && sh.on_event.is_none() {
            return sh.report(&Error::UnhandledEvent {
                function: sh.function.clone(),
            });
        }
        let value = match sh.ser.decode(&fr.payload) {
            Ok(v) => v,
            Err(e) => return sh.report(&e),
        };
        match (per_call, &sh.on_event) {
            (Some(sink), _) => {
                let origin = Origin {
                    pid: sh.pid,
                    worker: 0,
                };
                guarded("on_event", || sink(origin, value))
            }
            (None, Some(f)) => guarded("on_event", || f(value)),
            (None, None) => {}
        }
    }

    /// The worker is gone or must go: stops sending, reaps it, fails every
    /// outstanding call (in id order) and runs `on_error` or `on_destroy`,
    /// then the exit hook, and marks the handle ended.
    ///
    /// A sync worker runs its calls one at a time, in order, so only the
    /// oldest outstanding call can have started: the others end with
    /// [`Answer::NotStarted`] (a pool sends them to another worker). Not so
    /// when the worker refused to serve (it would refuse them again), nor
    /// for the async backend (every call it read has started).
    fn finish(self, end: End) {
        let Reader {
            shared,
            child,
            on_exit,
            ..
        } = self;
        shared.outbox.abort();
        let grace = match end {
            End::Eof | End::Exits(_) => Duration::from_secs(2),
            End::Kill(_) => Duration::ZERO,
        };
        let (status, clean) = reap(child, grace);
        let mut st = shared.st.lock();
        let clean_end = st.pending.is_empty() && shared.dropped.load(Ordering::SeqCst) && clean;
        let error = shared.end_error(end, clean_end, status, st.pending.len());
        st.dead = Some(error.clone().unwrap_or(Error::Closed {
            function: shared.function.clone(),
        }));
        let pending: Vec<Pending<S>> = {
            let mut ids: Vec<u32> = st.pending.keys().copied().collect();
            ids.sort_unstable();
            ids.into_iter()
                .filter_map(|id| st.pending.remove(&id))
                .collect()
        };
        drop(st);
        match &error {
            Some(e) => {
                log::debug!("rpc: {e}");
                let requeue =
                    shared.backend == Backend::Sync && !matches!(e, Error::Refused { .. });
                for (i, p) in pending.into_iter().enumerate() {
                    let answer = match i {
                        0 => Answer::Done(Err(e.clone())),
                        _ if requeue => Answer::NotStarted(e.clone()),
                        _ => Answer::Done(Err(e.clone())),
                    };
                    guarded("result", || (p.cb)(answer));
                }
                shared.report(e);
            }
            None => {
                if let Some(f) = &shared.on_destroy {
                    guarded("on_destroy", || f());
                }
            }
        }
        if let Some(f) = on_exit {
            guarded("exit", || f(error.as_ref()));
        }
        shared.st.lock().ended = true;
        shared.ended.notify_all();
    }
}

impl<S: Serialiser> Shared<S> {
    /// The error that ends the worker (`None`: a clean end, when the
    /// channel ended with nothing outstanding, every handle dropped and a
    /// successful exit).
    fn end_error(
        &self,
        end: End,
        clean_end: bool,
        status: String,
        outstanding: usize,
    ) -> Option<Error> {
        match end {
            End::Eof if clean_end => None,
            End::Eof => Some(Error::WorkerDied {
                function: self.function.clone(),
                pid: self.pid,
                status,
                outstanding,
            }),
            End::Exits(e) | End::Kill(e) => Some(e),
        }
    }
}

/// Waits up to `grace` for the child to exit, then kills it; always reaps.
pub(super) fn reap(mut child: Child, grace: Duration) -> (String, bool) {
    let deadline = Instant::now() + grace;
    let mut nap = Duration::from_micros(100);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (status.to_string(), status.success()),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let status = match child.wait() {
                    Ok(status) => format!("{status}, killed by the parent"),
                    Err(e) => format!("unknown status: {e}"),
                };
                return (status, false);
            }
        }
    }
}
