//! Running the `aemp` binary in tests with a time limit (included with
//! `#[path = "support/run.rs"] mod run;`): no command can hang a test.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a finished command did.
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?} after {:?}\nstdout: {}\nstderr: {}",
            self.code, self.took, self.stdout, self.stderr
        )
    }
}

impl Out {
    pub fn ok(self) -> Out {
        assert_eq!(self.code, Some(0), "{self:?}");
        self
    }

    pub fn fails(self, code: i32) -> Out {
        assert_eq!(self.code, Some(code), "{self:?}");
        self
    }
}

/// Runs `cmd` to completion, capturing its output; kills it and fails the
/// test after `limit`.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Out {
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let t2 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = Out {
        code: status.and_then(|s| s.code()),
        stdout: t1.join().unwrap(),
        stderr: t2.join().unwrap(),
        took: start.elapsed(),
    };
    assert!(status.is_some(), "killed after {limit:?}: {out:?}");
    out
}

/// `aemp ARGS` with its configuration file at `rc` and `HOME` at `home`,
/// and no inherited logging or configuration variables; output piped.
pub fn aemp_command(rc: &Path, home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aemp"));
    c.args(args)
        .env("AEMP_RC", rc)
        .env("HOME", home)
        .env_remove("PERL_ANYEVENT_MP_RC")
        .env_remove("RUST_LOG")
        .env_remove("AEMP_VERBOSE")
        .env_remove("AEMP_TRACE")
        .current_dir(home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// A long-running child (`aemp run`, `aemp db mon`) whose stdout lines
/// are read as they come; killed and reaped on drop.
pub struct Proc {
    child: Child,
    lines: crossbeam_channel::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Proc {
    pub fn start(mut cmd: Command) -> Proc {
        let mut child = cmd.spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let (tx, lines) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                let _ = tx.send(line);
            }
        });
        Proc {
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    /// The next line of stdout (at most 10 s).
    pub fn line(&mut self) -> Option<String> {
        self.line_within(Duration::from_secs(10))
    }

    /// A line of stdout already printed, without waiting.
    pub fn pending_line(&mut self) -> Option<String> {
        self.lines.try_recv().ok()
    }

    /// The next line of stdout, waiting at most `limit`.
    pub fn line_within(&mut self, limit: Duration) -> Option<String> {
        self.lines.recv_timeout(limit).ok()
    }

    /// Sends `signal` (if given) and waits at most 15 s for the exit code.
    pub fn wait(&mut self, signal: Option<libc::c_int>) -> Option<i32> {
        if let Some(signal) = signal {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("child did not exit within 15 s (signal {signal:?})");
    }

    /// Its standard error, once it has exited.
    pub fn stderr(&mut self) -> String {
        self.stderr.take().unwrap().join().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
