//! The commands that look at the network through its global nodes:
//! `nodes`, `trace`, `stats` and `db family|keys|values|mon FAMILY`.
//!
//! Each joins as a short-lived node `aemp/%n/%u` (no listeners) with the
//! configuration file's secret or cert and seeds (`--connect` replaces the
//! seeds), waits until a seed answers and becomes its database master,
//! asks the master and leaves.

use crate::cmd::{spec, Arity, Failure, Session, Spec};
use crate::net_cmds::{print_line, seeds, usage, StopSignals};
use aemp::protocol::db::{DbMonEvent, GLOBALS, LISTENERS};
use aemp::rcfile;
use aemp::{Config, Node, NodeId};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

type Res = Result<(), Failure>;

const DEFAULT_TIMEOUT: f64 = 5.0;

/// How often `db mon` looks for signals and for the master.
const TICK: Duration = Duration::from_millis(100);

const JOIN: &str = "\
Joining: the command joins as a short-lived node aemp/<host>/<random> without
listeners, with the configuration file's secret or cert (global section, then
profile `aemp`, or the profile chosen by an earlier `profile NAME`) and its
seeds; --connect HOST:PORT replaces the seeds. The first seed that answers
becomes its database master (a global node), which answers the queries. If no
seed answers within the time-out, the command fails (exit 1) naming the seeds
it tried.";

/// The commands, in help order.
pub fn commands() -> Vec<Spec> {
    vec![
        with_options(
            spec(
                "nodes",
                None,
                Arity::Rest {
                    value: "OPTIONS",
                    help: "--connect / --timeout only",
                },
                "List the nodes of the network as the global nodes know them",
                nodes,
            )
            .usage("aemp nodes [--connect HOST:PORT]... [--timeout SECS]")
            .long(format!(
                "Prints one node ID per line, sorted; a global node's line is \
`NODEID global`. The nodes are those with an entry in the database family 'l (every \
node with listeners publishes its addresses there; a node without listeners cannot be \
reached and is not listed) or 'g (the global nodes), as the master knows them.\n\n{JOIN}"
            )),
        ),
        with_options(
            spec(
                "trace",
                None,
                Arity::Rest {
                    value: "OPTIONS",
                    help: "--connect / --timeout only",
                },
                "Show the network as the global nodes see it: nodes, addresses, globals",
                trace,
            )
            .usage("aemp trace [--connect HOST:PORT]... [--timeout SECS]")
            .long(format!(
                "The original's trace walked every node's up_nodes; AnyEvent::MP 2.x (and \
aemp) have no such request, so aemp prints what the global nodes know instead: first \
`master MASTER` (the global node that answered), then one line per node, sorted:\n\n  \
NODEID global|slave ADDR,ADDR...\n\n\
`global` for the nodes in family 'g, `slave` for the others; the addresses are the \
node's listen addresses from family 'l (`-` when it published none). Which global node \
a slave is attached to is not in the database, so it is not shown. The command's own \
node is left out.\n\n{JOIN}"
            )),
        ),
        with_options(
            spec(
                "stats",
                None,
                Arity::Rest {
                    value: "NODE",
                    help: "the nodes to ask (default: every node the master knows)",
                },
                "Show each node's peers (state, unsent bytes, traffic, last heard) and ports",
                stats,
            )
            .usage("aemp stats [--connect HOST:PORT]... [--timeout SECS] [NODE]...")
            .long(format!(
                "Asks each NODE (default: every node in the database's 'l and 'g families, as for `aemp nodes`) for its Node::stats through the node-port function aemp::stats (every aemp node has it; a Perl node does not answer), all at once, and prints per node:

  NODE: P ports, T thread ports (longest mailbox M: PORT)
    PEER STATE QUEUED UNSENT SENT RECEIVED HEARD AGE

one line per peer the node has a link state for: STATE idle|connecting|up|down, QUEUED messages waiting for a connection, UNSENT encoded bytes not yet written (a stalled peer's grows up to unsent_limit), SENT and RECEIVED packets/bytes of the current connection, HEARD seconds since anything arrived from the peer, AGE seconds the connection has been up. A node that does not answer within the time-out is listed as `NODE: no answer`, and the command exits 1 after printing the rest.

{JOIN}"
            )),
        ),
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
        ),
    ]
}

fn with_options(s: Spec) -> Spec {
    s.option(
        clap::Arg::new("connect")
            .long("connect")
            .value_name("HOST:PORT")
            .action(clap::ArgAction::Append)
            .help("a seed to use instead of the configured ones (repeatable, or comma-separated)"),
    )
    .option(
        clap::Arg::new("timeout")
            .long("timeout")
            .value_name("SECS")
            .help("how long to wait for a seed and for the answers [default: 5]"),
    )
}

/// The short-lived node, joined to the network.
struct Joined {
    cmd: &'static str,
    node: Node,
    timeout: Duration,
    deadline: Instant,
    seeds: Vec<String>,
    can_authenticate: bool,
}

impl Drop for Joined {
    fn drop(&mut self) {
        // Leaving is expected: its connection warnings are noise (a
        // chosen AEMP_VERBOSE/RUST_LOG above warn still shows them).
        if log::max_level() <= log::LevelFilter::Warn {
            log::set_max_level(log::LevelFilter::Error);
        }
        self.node.net_shutdown();
    }
}

impl Joined {
    /// Joins (`connect`: seeds replacing the configured ones) and waits
    /// for a master.
    fn start(
        cmd: &'static str,
        s: &Session,
        (connect, timeout): (Vec<String>, f64),
    ) -> Result<Joined, Failure> {
        let profile = s.section.clone().unwrap_or_else(|| "aemp".to_string());
        let args = json!({"nodeid": "aemp/%n/%u", "binds": [], "services": [], "force": true});
        let args = args.as_object().expect("an object");
        let resolved = rcfile::resolve(&s.rc, Some(&profile), args, true, false)
            .map_err(|e| Failure::Failed(format!("{cmd}: {e}")))?;
        let seeds = if connect.is_empty() {
            seeds(&resolved.config)
        } else {
            connect
        };
        if seeds.is_empty() {
            return Err(Failure::Failed(format!(
                "{cmd}: no seeds: give --connect HOST:PORT, or set seeds (aemp seeds HOST:PORT)"
            )));
        }
        let mut cfg =
            Config::from_rc(&resolved).map_err(|e| Failure::Failed(format!("{cmd}: {e}")))?;
        cfg.seeds = seeds.clone();
        let can_authenticate = cfg.secret.is_some() || cfg.cert.is_some();
        let node = Node::with_config(cfg).map_err(|e| Failure::Failed(format!("{cmd}: {e}")))?;
        log::debug!("{cmd}: joined as {}", node.id());
        let timeout = Duration::from_secs_f64(timeout);
        let j = Joined {
            cmd,
            node,
            timeout,
            deadline: Instant::now() + timeout,
            seeds,
            can_authenticate,
        };
        j.wait_for_master(j.deadline)?;
        Ok(j)
    }

    /// The master, once it is connected.
    fn master(&self) -> Option<NodeId> {
        self.node
            .db_master()
            .filter(|m| self.node.node_is_up(m) == Some(true))
    }

    fn wait_for_master(&self, deadline: Instant) -> Result<NodeId, Failure> {
        loop {
            if let Some(m) = self.master() {
                return Ok(m);
            }
            if Instant::now() >= deadline {
                return Err(self.no_seed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn no_seed(&self) -> Failure {
        let mut text = format!(
            "no seed answered within {} s: tried {}",
            self.timeout.as_secs_f64(),
            self.seeds.join(", ")
        );
        if !self.can_authenticate {
            text += " (no secret or cert is configured: nodes cannot authenticate; see aemp \
                     gensecret)";
        }
        self.failed(text)
    }

    fn failed(&self, text: String) -> Failure {
        Failure::Failed(format!("{}: {text}", self.cmd))
    }

    fn remaining(&self) -> Duration {
        self.deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100))
    }

    fn family(&self, family: &str) -> Result<aemp::protocol::db::Family, Failure> {
        self.node
            .db_family_wait(family, self.remaining())
            .map_err(|e| self.failed(format!("family {family:?}: {e}")))
    }
}

/// `--connect` and `--timeout` from the front of the arguments (shared by
/// every command that joins the network).
pub(crate) fn options(
    cmd: &'static str,
    a: &mut VecDeque<Value>,
) -> Result<(Vec<String>, f64), Failure> {
    let mut connect: Vec<String> = Vec::new();
    let mut timeout = DEFAULT_TIMEOUT;
    while let Some(Value::String(word)) = a.front().cloned() {
        let (name, inline) = match word.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (word.clone(), None),
        };
        if name != "--connect" && name != "--timeout" {
            if word == "--" {
                a.pop_front();
            }
            break;
        }
        a.pop_front();
        let value = match inline {
            Some(v) => v,
            None => match a.pop_front() {
                Some(Value::String(v)) => v,
                Some(other) => other.to_string(),
                None => return Err(usage(cmd, format!("{name} needs a value"))),
            },
        };
        if name == "--connect" {
            connect.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string),
            );
        } else {
            timeout = value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|t| t.is_finite() && *t > 0.0)
                .ok_or_else(|| {
                    usage(
                        cmd,
                        format!("--timeout {value}: expected a number of seconds"),
                    )
                })?;
        }
    }
    Ok((connect, timeout))
}

fn no_more(cmd: &'static str, a: &VecDeque<Value>) -> Res {
    match a.front() {
        Some(extra) => Err(usage(cmd, format!("unexpected argument {extra}"))),
        None => Ok(()),
    }
}

/// Every node the master knows: ID → (listen addresses, global), without
/// our own node.
fn network(j: &Joined) -> Result<BTreeMap<String, (Vec<String>, bool)>, Failure> {
    let listeners = j.family(LISTENERS)?;
    let globals = j.family(GLOBALS)?;
    let mut nodes: BTreeMap<String, (Vec<String>, bool)> = BTreeMap::new();
    for (id, addrs) in listeners {
        let addrs = match addrs {
            Value::Array(a) => a
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect(),
            Value::Null => Vec::new(),
            other => vec![other.to_string()],
        };
        nodes.entry(id).or_default().0 = addrs;
    }
    for id in globals.into_keys() {
        nodes.entry(id).or_default().1 = true;
    }
    nodes.remove(j.node.id().as_str());
    Ok(nodes)
}

fn nodes(s: &mut Session, a: Vec<Value>) -> Res {
    let mut a = VecDeque::from(a);
    let opts = options("nodes", &mut a)?;
    no_more("nodes", &a)?;
    let j = Joined::start("nodes", s, opts)?;
    let mut out = String::new();
    for (id, (_, global)) in network(&j)? {
        out += &id;
        if global {
            out += " global";
        }
        out.push('\n');
    }
    print_text(&out);
    Ok(())
}

fn trace(s: &mut Session, a: Vec<Value>) -> Res {
    let mut a = VecDeque::from(a);
    let opts = options("trace", &mut a)?;
    no_more("trace", &a)?;
    let j = Joined::start("trace", s, opts)?;
    let master = j.wait_for_master(j.deadline)?;
    let mut out = format!("master {master}\n");
    for (id, (addrs, global)) in network(&j)? {
        let role = if global { "global" } else { "slave" };
        let addrs = if addrs.is_empty() {
            "-".to_string()
        } else {
            addrs.join(",")
        };
        out += &format!("{id} {role} {addrs}\n");
    }
    print_text(&out);
    Ok(())
}

fn stats(s: &mut Session, a: Vec<Value>) -> Res {
    let mut a = VecDeque::from(a);
    let opts = options("stats", &mut a)?;
    let mut targets = Vec::new();
    for v in a {
        let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
        let id: NodeId = text
            .parse()
            .map_err(|e: aemp::Error| usage("stats", format!("NODE {text:?}: {e}")))?;
        targets.push(id);
    }
    let j = Joined::start("stats", s, opts)?;
    if targets.is_empty() {
        for id in network(&j)?.into_keys() {
            targets.push(
                id.parse()
                    .map_err(|e: aemp::Error| j.failed(e.to_string()))?,
            );
        }
    }
    // All at once: a node that does not answer costs one time-out in all.
    let remaining = j.remaining();
    let asks: Vec<_> = targets
        .into_iter()
        .map(|id| {
            let node = j.node.clone();
            std::thread::spawn(move || {
                let msg = aemp::msg![aemp::STATS_FUNCTION];
                let got = node.call(&id.node_port(), msg, remaining);
                (id, got)
            })
        })
        .collect();
    let mut out = String::new();
    let mut silent = 0;
    for ask in asks {
        let (id, got) = ask
            .join()
            .map_err(|_| j.failed("a query thread failed".into()))?;
        let parsed = got
            .ok()
            .and_then(|m| m.0.into_iter().next())
            .and_then(|v| serde_json::from_value::<aemp::NodeStats>(v).ok());
        match parsed {
            Some(st) => out += &stats_text(&st),
            None => {
                silent += 1;
                out += &format!("{id}: no answer\n");
            }
        }
    }
    print_text(&out);
    if silent > 0 {
        return Err(j.failed(format!(
            "{silent} node(s) did not answer within {} s (a Perl node has no aemp::stats)",
            j.timeout.as_secs_f64()
        )));
    }
    Ok(())
}

/// One node's block of `aemp stats`.
fn stats_text(st: &aemp::NodeStats) -> String {
    let mut out = format!(
        "{}: {} ports, {} thread ports",
        st.node,
        st.ports,
        st.thread_ports.len()
    );
    if let Some(t) = st.thread_ports.first() {
        out += &format!(" (longest mailbox {}: {})", t.mailbox, t.port);
    }
    out.push('\n');
    let rows: Vec<[String; 8]> = st
        .peers
        .iter()
        .map(|p| {
            let secs =
                |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64()));
            [
                p.node.clone(),
                p.state.name().into(),
                p.queued.to_string(),
                p.unsent.to_string(),
                format!("{}/{}", p.packets_sent, p.bytes_sent),
                format!("{}/{}", p.packets_received, p.bytes_received),
                secs(p.last_heard),
                secs(p.connected_for),
            ]
        })
        .collect();
    let head = [
        "PEER", "STATE", "QUEUED", "UNSENT", "SENT", "RECEIVED", "HEARD", "AGE",
    ]
    .map(String::from);
    let mut widths = head.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    for r in std::iter::once(&head).chain(&rows) {
        let cells: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out += &format!("    {}\n", cells.join("  ").trim_end());
    }
    out
}

/// Prints `text`; false when stdout is gone (a closed pipe).
fn print_text(text: &str) -> bool {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_ok()
}

fn db(s: &mut Session, a: Vec<Value>) -> Res {
    let mut a = VecDeque::from(a);
    // Options may come before or after the subcommand word or FAMILY.
    let (mut connect, mut timeout) = options("db", &mut a)?;
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
    let mut more_options = |a: &mut VecDeque<Value>| -> Res {
        let (more, t) = options("db", a)?;
        connect.extend(more);
        if t != DEFAULT_TIMEOUT {
            timeout = t;
        }
        Ok(())
    };
    more_options(&mut a)?;
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
    more_options(&mut a)?;
    no_more("db", &a)?;
    aemp::protocol::db::error::check_family(&family)
        .map_err(|e| usage("db", format!("FAMILY {family:?}: {e}")))?;
    // Caught before joining, so that a signal during the join still stops `mon`.
    let signals = if what == "mon" {
        Some(StopSignals::catch()?)
    } else {
        None
    };
    let j = Joined::start("db", s, (connect, timeout))?;
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
        if let Some(sig) = signals.pending() {
            log::info!("db mon: {sig} received, stopping");
            return Ok(());
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
