//! Running the `aemp` binary in tests with a time limit (included with
//! `#[path = "support/run.rs"] mod run;`): no command can hang a test.

#![allow(dead_code)]

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
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
