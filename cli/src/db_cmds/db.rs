//! `aemp db family|keys|values|mon FAMILY`: prints a database family, or
//! watches it and prints every change until stopped.

use super::joined::{no_more, options, Joined};
use super::{print_text, with_options, Res, JOIN};
use crate::cmd::{spec, Arity, Session, Spec};
use crate::net_cmds::{print_line, usage, StopSignals};
use aemp::protocol::db::DbMonEvent;
use aemp::NodeId;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How often `db mon` looks for signals and for the master.
const TICK: Duration = Duration::from_millis(100);

/// `aemp db`.
pub(super) fn db_spec() -> Spec {
    with_options(
        spec(
            "db",
            None,
            Arity::Rest {
                value: "family|keys|values|mon FAMILY",
                help: "what to ask, and the family",
            },
            "Print a database family (family, keys, values) or watch it (mon)",
            db,
        )
        .usage(
            "aemp db [--connect HOST:PORT]... [--timeout SECS] family|keys|values|mon FAMILY",
        )
        .long(format!(
            "db family FAMILY prints the family as a pretty JSON object (key: value); \
db keys FAMILY its keys and db values FAMILY its values, each as a pretty JSON array. An \
unknown family is empty.\n\n\
db mon FAMILY prints the current entries, then every change as it happens, one line \
each:\n\n  + KEY VALUE   (an entry appeared; first the current ones)\n  ~ KEY VALUE   \
(its value changed)\n  - KEY         (it disappeared)\n\n\
VALUE is compact JSON; KEY is printed as is, or as a JSON string when it is empty or \
contains white space or starts with a quote. It runs until SIGINT or SIGTERM (exit 0) \
or until the connection to the network is lost: no master for the time-out (exit 1). \
When the master changes, the new master's differences are printed; a closed output (a pipe into head) ends it too (exit 0).\n\n{JOIN}"
        )),
    )
}

fn db(s: &mut Session, a: Vec<Value>) -> Res {
    let mut a = VecDeque::from(a);
    // Options may come anywhere: before or after the subcommand word or FAMILY.
    let opts = options("db", &mut a, false)?;
    let what = match a.pop_front() {
        Some(Value::String(w)) if ["family", "keys", "values", "mon"].contains(&w.as_str()) => w,
        Some(other) => {
            let shown = other
                .as_str()
                .map_or_else(|| other.to_string(), str::to_string);
            return Err(usage(
                "db",
                format!("{shown:?}: expected family, keys, values or mon"),
            ));
        }
        None => return Err(usage("db", "family, keys, values or mon is missing".into())),
    };
    let family = match a.pop_front() {
        Some(Value::String(f)) => f,
        Some(other) => {
            return Err(usage(
                "db",
                format!("FAMILY {other}: a family name is a string"),
            ))
        }
        None => return Err(usage("db", "FAMILY is missing".into())),
    };
    no_more("db", &a)?;
    aemp::protocol::db::error::check_family(&family)
        .map_err(|e| usage("db", format!("FAMILY {family:?}: {e}")))?;
    // Caught before joining, so that a signal during the join still stops `mon`.
    let signals = if what == "mon" {
        Some(StopSignals::catch()?)
    } else {
        None
    };
    let j = Joined::start("db", s, opts)?;
    let fail = |e: aemp::Error| j.failed(format!("{what} {family:?}: {e}"));
    let pretty = |v: &Value| serde_json::to_string_pretty(v).expect("JSON values serialise");
    match what.as_str() {
        "family" => {
            let f = j.family(&family)?;
            print_line(&pretty(&Value::Object(f.into_iter().collect())));
        }
        "keys" => {
            let k = j.node.db_keys_wait(&family, j.remaining()).map_err(fail)?;
            print_line(&pretty(&json!(k)));
        }
        "values" => {
            let v = j
                .node
                .db_values_wait(&family, j.remaining())
                .map_err(fail)?;
            print_line(&pretty(&Value::Array(v)));
        }
        _ => {
            let mut signals = signals.expect("caught for mon");
            return db_mon(&j, &family, &mut signals);
        }
    }
    Ok(())
}

/// A key as `db mon` prints it.
fn key_text(k: &str) -> String {
    if k.is_empty() || k.starts_with('"') || k.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        Value::String(k.to_string()).to_string()
    } else {
        k.to_string()
    }
}

fn event_lines(ev: &DbMonEvent) -> String {
    let value = |k: &String| ev.fam.get(k).map_or("null".into(), Value::to_string);
    let mut out = String::new();
    for k in &ev.add {
        out += &format!("+ {} {}\n", key_text(k), value(k));
    }
    for k in &ev.chg {
        out += &format!("~ {} {}\n", key_text(k), value(k));
    }
    for k in &ev.del {
        out += &format!("- {}\n", key_text(k));
    }
    out
}

fn db_mon(j: &Joined, family: &str, signals: &mut StopSignals) -> Res {
    let (tx, rx) = crossbeam_channel::unbounded();
    let _guard = j
        .node
        .db_mon(family, move |ev| {
            let _ = tx.send(event_lines(ev));
        })
        .map_err(|e| j.failed(format!("mon {family:?}: {e}")))?;
    let mut lost_since: Option<(Instant, Option<NodeId>)> = None;
    let mut last_master = j.master();
    loop {
        // Looked at before each event too: a steady stream of events must
        // not keep a signal waiting.
        if let Some(sig) = signals.pending() {
            log::info!("db mon: {sig} received, stopping");
            return Ok(());
        }
        match rx.recv_timeout(TICK) {
            Ok(lines) => {
                if !print_text(&lines) {
                    // Nobody reads any more (`aemp db mon F | head`).
                    return Ok(());
                }
                continue;
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                return Err(j.failed(format!("mon {family:?}: the monitor went away")))
            }
        }
        match j.master() {
            Some(m) => {
                lost_since = None;
                last_master = Some(m);
            }
            None => {
                let (since, _) =
                    lost_since.get_or_insert_with(|| (Instant::now(), last_master.clone()));
                if since.elapsed() >= j.timeout {
                    let was = last_master
                        .as_ref()
                        .map_or_else(String::new, |m| format!(" (master {m} is gone)"));
                    return Err(j.failed(format!(
                        "mon {family:?}: lost the connection to the network{was}, and no \
                         seed answered within {} s: tried {}",
                        j.timeout.as_secs_f64(),
                        j.seeds.join(", ")
                    )));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_quoted_only_when_needed() {
        assert_eq!(key_text("seed#worker"), "seed#worker");
        assert_eq!(key_text("a b"), "\"a b\"");
        assert_eq!(key_text(""), "\"\"");
        assert_eq!(key_text("\"x"), "\"\\\"x\"");
    }
}
