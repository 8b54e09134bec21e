//! `aemp run`: a node configured from the configuration file, running
//! until SIGINT/SIGTERM (or restarted by `aemp restart`), then shut down
//! cleanly ([`Node::shutdown`](aemp::Node::shutdown)).

use super::{Res, RESTART_FN, TICK};
use crate::cmd::{Failure, Session};
use serde_json::{Map, Value};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::collections::VecDeque;
use std::io::Write;

pub(super) fn run(s: &mut Session, a: Vec<Value>) -> Res {
    let (mut profile, args) = configure_args(a)?;
    // A named profile must exist (the host name's, the default, need not).
    let named = profile.clone().or_else(|| {
        args.get("profile")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    if let Some(name) = &named {
        crate::config_cmds::known_profile("run", s, name)?;
    }
    if profile.is_none() && !args.contains_key("profile") {
        profile = s.section.clone();
    }
    let mut signals = StopSignals::catch()?;
    let node = aemp::configure_profile(profile.as_deref(), &args, |_| {})
        .map_err(|e| Failure::Failed(format!("run: {e}")))?;
    // `aemp restart NODE` calls it through the node port.
    let (restart_tx, restart_rx) = crossbeam_channel::bounded(1);
    node.register(RESTART_FN, move |_| {
        let _ = restart_tx.try_send(());
    });
    let addrs: Vec<String> = node
        .listen_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    {
        let mut out = std::io::stdout().lock();
        let listening = if addrs.is_empty() {
            "not listening".to_string()
        } else {
            format!("listening on {}", addrs.join(", "))
        };
        let _ = writeln!(out, "{} {listening}", node.id());
        let _ = out.flush();
    }
    let restart = loop {
        if let Some(signal) = signals.pending() {
            log::info!("run: {signal} received, stopping node {}", node.id());
            break false;
        }
        if restart_rx.recv_timeout(TICK).is_ok() {
            log::warn!("run: restart requested, restarting node {}", node.id());
            break true;
        }
    };
    // Ports killed with ["shutdown"] (other nodes' monitors see it),
    // connections flushed and closed, threads joined.
    node.shutdown();
    if restart {
        return Err(restart_self());
    }
    Ok(())
}

/// Replaces this process with a new `aemp` run with the same arguments
/// (and environment, so `--rc` still holds); returns only on failure.
fn restart_self() -> Failure {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return Failure::Failed(format!("run: cannot restart: {e}")),
    };
    let e = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .exec();
    Failure::Failed(format!("run: cannot restart: {e}"))
}

/// `[PROFILE] [KEY VALUE]...` as the original's configure reads them.
fn configure_args(a: Vec<Value>) -> Result<(Option<String>, Map<String, Value>), Failure> {
    let mut a = VecDeque::from(a);
    let mut profile = None;
    if a.len() % 2 == 1 {
        match a.pop_front() {
            Some(Value::String(p)) if !p.is_empty() => profile = Some(p),
            Some(other) => {
                return Err(Failure::Usage(format!(
                    "run: {other} is not a profile name (an odd first argument names the profile)"
                )))
            }
            None => unreachable!("odd length"),
        }
    }
    let mut args = Map::new();
    while let (Some(k), Some(v)) = (a.pop_front(), a.pop_front()) {
        match k {
            Value::String(k) if !k.is_empty() => {
                args.insert(k, v);
            }
            other => {
                return Err(Failure::Usage(format!(
                    "run: {other} is not a configuration key"
                )))
            }
        }
    }
    Ok((profile, args))
}

/// SIGINT and SIGTERM, caught (signal-hook) for a command that runs until
/// one of them arrives.
pub(crate) struct StopSignals(Signals);

impl StopSignals {
    /// Starts catching SIGINT and SIGTERM.
    pub(crate) fn catch() -> Result<StopSignals, Failure> {
        Signals::new([SIGINT, SIGTERM])
            .map(StopSignals)
            .map_err(|e| Failure::Failed(format!("cannot catch SIGINT/SIGTERM: {e}")))
    }

    /// The name of one that arrived since the last look, without waiting.
    pub(crate) fn pending(&mut self) -> Option<&'static str> {
        self.0.pending().next().map(signal_name)
    }
}

fn signal_name(sig: std::ffi::c_int) -> &'static str {
    if sig == SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    }
}

// ------------------------------------------------- the protocol commands
