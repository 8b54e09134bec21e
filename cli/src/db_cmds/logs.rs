//! `aemp log [LEVEL]`: catches the log records of every node of the
//! network (AnyEvent::MP::LogCatcher) and prints them as they come.

use super::joined::{no_more, options, Joined};
use super::{print_text, with_options, Res, JOIN};
use crate::cmd::{spec, Arity, Session, Spec};
use crate::net_cmds::{usage, StopSignals};
use aemp::logcatch::{self, Caught};
use serde_json::Value;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How often `log` looks for signals and for the master.
const TICK: Duration = Duration::from_millis(100);

/// `aemp log`.
pub(super) fn log_spec() -> Spec {
    with_options(
        spec(
            "log",
            None,
            Arity::Rest {
                value: "[LEVEL]",
                help: "the least severe level to show: 1-9 or a name (default 9, everything)",
            },
            "Print the log records of every node of the network as they come",
            logs,
        )
        .usage("aemp log [--connect HOST:PORT]... [--timeout SECS] [LEVEL]")
        .long(format!(
            "Catches the log records of every node in the database family 'l (every node \
with listeners), as AnyEvent::MP::LogCatcher::catch does, and prints one line each:\n\n  \
[NODE] LEVEL CONTEXT: TEXT\n\n\
NODE is followed by the delay (e.g. [n1+0.250s]) when the record is more than a \
millisecond old (or the clocks differ). LEVEL is AnyEvent::Log's name: fatal alert \
critical error warn note info debug trace (1-9); LEVEL on the command line may be either. \
A node that comes later is caught too, and again when it comes back. A Rust node is \
caught when its logger forwards (aemp run nodes do; a program calls \
aemp::logcatch::install); a Perl node always. Records a node could not send in time are \
reported by a line `N log records dropped: ...`.\n\n\
It runs until SIGINT or SIGTERM (exit 0) or until the connection to the network is \
lost: no master for the time-out (exit 1); a closed output ends it too (exit 0).\n\n{JOIN}"
        )),
    )
}

fn logs(s: &mut Session, a: Vec<Value>) -> Res {
    let mut a = VecDeque::from(a);
    let opts = options("log", &mut a, false)?;
    let level = match a.pop_front() {
        None => 9,
        Some(v) => match logcatch::parse_level(&v) {
            Some(l) if l > 0 => l,
            _ => {
                return Err(usage(
                    "log",
                    format!("LEVEL {v}: expected 1-9 or fatal, alert, critical, error, warn, note, info, debug, trace"),
                ))
            }
        },
    };
    no_more("log", &a)?;
    let mut signals = StopSignals::catch()?;
    let j = Joined::start("log", s, opts)?;
    let (tx, rx) = crossbeam_channel::unbounded();
    logcatch::catch_with(&j.node, Some(level), move |c| {
        let _ = tx.send(line(&c));
    })
    .map_err(|e| j.failed(e.to_string()))?;
    let mut lost_since: Option<Instant> = None;
    loop {
        // Looked at before each record too: records may come faster than
        // the tick. The master too.
        if let Some(sig) = signals.pending() {
            log::info!("log: {sig} received, stopping");
            let _ = logcatch::catch(&j.node, None);
            return Ok(());
        }
        if j.master().is_some() {
            lost_since = None;
        } else if lost_since.get_or_insert_with(Instant::now).elapsed() >= j.timeout {
            return Err(j.failed(format!(
                "lost the connection to the network, and no seed answered within {} s: tried {}",
                j.timeout.as_secs_f64(),
                j.seeds.join(", ")
            )));
        }
        match rx.recv_timeout(TICK) {
            Ok(text) => {
                if !print_text(&text) {
                    return Ok(());
                }
                continue;
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                return Err(j.failed("the catcher went away".into()))
            }
        }
    }
}

/// `[NODE±delay] LEVEL CONTEXT: TEXT`, with a newline.
fn line(c: &Caught) -> String {
    let mut text = format!(
        "{} {} {}: {}",
        c.origin(),
        logcatch::level_name(c.level),
        c.context,
        c.text
    );
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_the_node_level_and_context() {
        let c = Caught {
            node: "n1".into(),
            time: 100.0,
            received: 100.0,
            context: "demo".into(),
            level: 5,
            text: "hot".into(),
        };
        assert_eq!(line(&c), "[n1] warn demo: hot\n");
        let late = Caught {
            received: 100.25,
            ..c
        };
        assert_eq!(line(&late), "[n1+0.250s] warn demo: hot\n");
    }
}
