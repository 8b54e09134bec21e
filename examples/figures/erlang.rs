//! Erlang/OTP beside aemp's local message figures: the `local_send` and
//! `local_pingpong` groups (kernel.rs) also run Erlang's two loops,
//! in turns with aemp's, when Erlang is installed.
//!
//! The Erlang program is `erlang/aemp_bench.erl` (built into this
//! binary): one process sending N messages `{tag, I}` to another that
//! counts them, and two processes bouncing one message (`{ping, Pid}`,
//! `{pong, Pid}`) — the shapes of aemp's `msg!["tag", i]` and of its
//! ping-pong carrying a port ID. When `erlc` and `erl` are on `PATH`, it
//! is compiled into a temporary directory and started once per group
//! with `erl -noshell`, with Erlang's defaults (one scheduler per core);
//! it then runs one loop per line it reads, so each Erlang run takes its
//! turn between aemp's and the channel's, and startup is never timed.
//! The figures:
//!
//! - `baseline_erlang_local_send_msgs_per_s`, `local_send_vs_erlang`
//!   (aemp's rate / Erlang's: 1 or more is as fast or faster);
//! - `baseline_erlang_local_pingpong_rtt_us`, `local_pingpong_vs_erlang`
//!   (aemp's round trip / Erlang's: 1 or less is as fast or faster);
//! - `local_callback_pingpong_vs_erlang`: the same for aemp's two
//!   callback ports (`local_callback_pingpong_rtt_us`), which share the
//!   dispatcher thread as Erlang's two processes may share a scheduler,
//!   where two thread ports are two OS threads;
//! - `baseline_erlang_schedulers`: how many schedulers Erlang ran.
//!
//! Without Erlang (as on CI) these figures are left out and a note goes
//! to stderr.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

const SOURCE: &str = include_str!("erlang/aemp_bench.erl");

/// A running Erlang node that runs the loops on request.
pub struct Erlang {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    dir: PathBuf,
    /// Erlang's scheduler threads (online).
    pub schedulers: f64,
}

impl Erlang {
    /// Compiles and starts the Erlang side; `None` (with a note on
    /// stderr) when Erlang is not installed or does not start.
    pub fn start() -> Option<Erlang> {
        let dir = std::env::temp_dir().join(format!("aemp-figures-erlang-{}", std::process::id()));
        match Self::start_in(&dir) {
            Ok(erlang) => Some(erlang),
            Err(why) => {
                let _ = std::fs::remove_dir_all(&dir);
                eprintln!("note: no Erlang baseline ({why})");
                None
            }
        }
    }

    fn start_in(dir: &PathBuf) -> Result<Erlang, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let src = dir.join("aemp_bench.erl");
        std::fs::write(&src, SOURCE).map_err(|e| e.to_string())?;
        let built = Command::new("erlc")
            .arg("-o")
            .arg(dir)
            .arg(&src)
            .status()
            .map_err(|e| format!("erlc: {e}"))?;
        if !built.success() {
            return Err(format!("erlc: {built}"));
        }
        let mut child = Command::new("erl")
            .args(["-noshell", "-pa"])
            .arg(dir)
            .args(["-run", "aemp_bench", "main"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("erl: {e}"))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut erlang = Erlang {
            child,
            stdin,
            stdout,
            dir: dir.clone(),
            schedulers: 0.0,
        };
        let ready = erlang.line()?;
        erlang.schedulers = ready
            .strip_prefix("READY ")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("erl said {ready:?}"))?;
        Ok(erlang)
    }

    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) => Err("erl exited".to_string()),
            Ok(_) => Ok(line.trim().to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn run(&mut self, request: &str) -> f64 {
        writeln!(self.stdin, "{request}").expect("erl stdin");
        self.stdin.flush().expect("erl stdin");
        let answer = self.line().expect("erl answer");
        answer.parse().expect("erl answers a number")
    }

    /// Erlang's messages per second: one process sends `n` to another.
    pub fn send(&mut self, n: u64) -> f64 {
        self.run(&format!("send {n}"))
    }

    /// Erlang's ping-pong round trip, in microseconds.
    pub fn pingpong(&mut self, rounds: u32) -> f64 {
        self.run(&format!("pingpong {rounds}"))
    }
}

impl Drop for Erlang {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
