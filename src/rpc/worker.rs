//! Which program a worker runs, and how it is started.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use super::Error;

pub(crate) use super::wire::{ENV_EXTRA_FD, ENV_FD};

/// How to start a worker process: a program, its arguments and environment,
/// and optionally one extra file descriptor handed to the child.
///
/// A `Worker` is a template: cloning it and starting several workers from it
/// gives each the same arguments (pools do this). The child is always a new
/// program image (`exec`), so it never inherits the parent's threads or
/// locks. The child's standard input is `/dev/null`; its standard output and
/// error are the parent's.
///
/// ```
/// use aemp::rpc::Worker;
/// // Re-run this program; its `main` calls `aemp::rpc::serve_if_worker()`.
/// let w = Worker::current_exe().arg("--quiet");
/// // Or any executable that serves workers:
/// let w2 = Worker::program("/usr/local/bin/my-worker").env("RUST_LOG", "info");
/// ```
#[derive(Clone, Debug)]
pub struct Worker {
    program: Option<PathBuf>,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    fd: Option<Arc<OwnedFd>>,
}

impl Worker {
    /// Re-executes the current program as the worker. Its `main` must call
    /// [`serve_if_worker`](super::serve_if_worker) early, after registering
    /// its worker functions.
    ///
    /// ```
    /// use aemp::rpc::{Function, Worker};
    /// use std::time::Duration;
    /// const PID: Function<(), u32> = Function::json("pid");
    /// // In the worker (this program, started again): register, then serve.
    /// PID.register(|(), _| Ok(std::process::id()));
    /// aemp::rpc::serve_if_worker()?; // a worker serves here and exits
    ///
    /// let rpc = PID.rpc(Worker::current_exe()).spawn()?;
    /// let child = rpc.call_wait((), Duration::from_secs(5)).unwrap();
    /// assert_eq!(child, rpc.pid());
    /// assert_ne!(child, std::process::id()); // another process
    /// rpc.join(Duration::from_secs(5))?;
    /// # Ok::<(), aemp::rpc::Error>(())
    /// ```
    pub fn current_exe() -> Worker {
        Worker {
            program: None,
            args: Vec::new(),
            env: Vec::new(),
            fd: None,
        }
    }

    /// Runs the given executable, which must serve workers (call
    /// [`serve_if_worker`](super::serve_if_worker)).
    pub fn program(path: impl Into<PathBuf>) -> Worker {
        Worker {
            program: Some(path.into()),
            ..Worker::current_exe()
        }
    }

    /// Adds a command-line argument for the child.
    ///
    /// ```
    /// use aemp::rpc::{Function, Worker};
    /// use std::time::Duration;
    /// const ARGS: Function<(), Vec<String>> = Function::json("args");
    /// ARGS.register(|(), _| Ok(std::env::args().skip(1).collect()));
    /// aemp::rpc::serve_if_worker()?;
    ///
    /// let rpc = ARGS.rpc(Worker::current_exe().arg("--quiet").args(["-n", "3"])).spawn()?;
    /// assert_eq!(rpc.call_wait((), Duration::from_secs(5)).unwrap(), ["--quiet", "-n", "3"]);
    /// rpc.join(Duration::from_secs(5))?;
    /// # Ok::<(), aemp::rpc::Error>(())
    /// ```
    pub fn arg(mut self, arg: impl Into<OsString>) -> Worker {
        self.args.push(arg.into());
        self
    }

    /// Adds command-line arguments for the child.
    pub fn args<I, A>(mut self, args: I) -> Worker
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the child.
    ///
    /// ```
    /// use aemp::rpc::{Function, Worker};
    /// use std::time::Duration;
    /// const GREETING: Function<(), String> = Function::json("greeting");
    /// GREETING.register(|(), _| std::env::var("GREETING").map_err(|e| e.to_string()));
    /// aemp::rpc::serve_if_worker()?;
    ///
    /// let rpc = GREETING.rpc(Worker::current_exe().env("GREETING", "hej")).spawn()?;
    /// assert_eq!(rpc.call_wait((), Duration::from_secs(5)), Ok("hej".to_string()));
    /// rpc.join(Duration::from_secs(5))?;
    /// # Ok::<(), aemp::rpc::Error>(())
    /// ```
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Worker {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Hands the child a duplicate of `fd` at start; the child takes it with
    /// [`take_extra_fd`](super::take_extra_fd). Every worker started from
    /// this template gets its own duplicate of the same descriptor.
    ///
    /// ```
    /// use aemp::rpc::{Function, Worker};
    /// use std::io::{Read, Seek, Write};
    /// use std::time::Duration;
    /// const LOG: Function<String, ()> = Function::json("log");
    /// // The worker writes its lines to the descriptor it was handed.
    /// LOG.register(|line, _| {
    ///     static OUT: std::sync::OnceLock<std::sync::Mutex<std::fs::File>> = std::sync::OnceLock::new();
    ///     let out = OUT.get_or_init(|| {
    ///         let fd = aemp::rpc::take_extra_fd().expect("a descriptor from the parent");
    ///         std::sync::Mutex::new(std::fs::File::from(fd))
    ///     });
    ///     writeln!(out.lock().unwrap(), "{line}").map_err(|e| e.to_string())
    /// });
    /// aemp::rpc::serve_if_worker()?;
    ///
    /// let mut file = tempfile::tempfile().unwrap();
    /// let fd = file.try_clone().unwrap().into();
    /// let rpc = LOG.rpc(Worker::current_exe().fd(fd)).spawn()?;
    /// rpc.call_wait("hello".to_string(), Duration::from_secs(5)).unwrap();
    /// rpc.join(Duration::from_secs(5))?;
    /// let mut text = String::new();
    /// file.rewind().unwrap();
    /// file.read_to_string(&mut text).unwrap();
    /// assert_eq!(text, "hello\n");
    /// # Ok::<(), aemp::rpc::Error>(())
    /// ```
    pub fn fd(mut self, fd: OwnedFd) -> Worker {
        self.fd = Some(Arc::new(fd));
        self
    }

    /// The program's path as it will be run.
    pub(crate) fn program_path(&self) -> Result<PathBuf, Error> {
        match &self.program {
            Some(p) => Ok(p.clone()),
            None => std::env::current_exe().map_err(|e| Error::Spawn {
                program: "<current executable>".into(),
                message: e.to_string(),
            }),
        }
    }

    /// Starts the child; returns it and the parent's end of the channel.
    pub(crate) fn spawn(&self) -> Result<(Child, UnixStream), Error> {
        super::child::check_spawn()?;
        let program = self.program_path()?;
        let err = |e: std::io::Error| Error::Spawn {
            program: program.display().to_string(),
            message: e.to_string(),
        };
        let (ours, theirs) = UnixStream::pair().map_err(err)?;
        // Both descriptors must survive the child's stdio set-up, which
        // overwrites 0, 1 and 2 (a parent with closed stdio may get those).
        let theirs = above_stdio(theirs.as_raw_fd()).map_err(err)?;
        let extra_fd = match &self.fd {
            Some(f) => Some(above_stdio(f.as_raw_fd()).map_err(err)?),
            None => None,
        };
        let chan = theirs.as_raw_fd();
        let extra = extra_fd.as_ref().map(|f| f.as_raw_fd());
        let mut cmd = Command::new(&program);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env(ENV_FD, chan.to_string())
            .stdin(Stdio::null());
        match extra {
            Some(fd) => cmd.env(ENV_EXTRA_FD, fd.to_string()),
            None => cmd.env_remove(ENV_EXTRA_FD),
        };
        // SAFETY: the closure runs between fork and exec and only calls
        // fcntl, which is async-signal-safe. Both descriptors are open in the
        // parent (close-on-exec there) for the whole spawn.
        unsafe {
            cmd.pre_exec(move || {
                for fd in std::iter::once(chan).chain(extra) {
                    if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(err)?;
        drop(theirs);
        drop(extra_fd);
        Ok((child, ours))
    }
}

/// A close-on-exec duplicate of `fd` numbered 3 or higher.
fn above_stdio(fd: RawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a descriptor we hold open; the new
    // descriptor is ours alone.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `new` was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}
