//! Joining the network for one query: the options that choose the seeds
//! and the time-out (`--connect`, `--timeout`), the short-lived node
//! ([`Joined`]) that waits for a master, and what the master knows of
//! the network's nodes.

use super::Res;
use crate::cmd::{Failure, Session};
use crate::net_cmds::{seeds, usage};
use aemp::protocol::db::{GLOBALS, LISTENERS};
use aemp::rcfile;
use aemp::{Config, Node, NodeId};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

pub(super) const DEFAULT_TIMEOUT: f64 = 5.0;

/// The short-lived node, joined to the network.
pub(super) struct Joined {
    cmd: &'static str,
    pub(super) node: Node,
    pub(super) timeout: Duration,
    pub(super) deadline: Instant,
    pub(super) seeds: Vec<String>,
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
    pub(super) fn start(
        cmd: &'static str,
        s: &Session,
        Options {
            connect, timeout, ..
        }: Options,
    ) -> Result<Joined, Failure> {
        let resolved = short_lived_config(cmd, s)?;
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
        let cfg = Config::from_rc(&resolved).map_err(|e| Failure::Failed(format!("{cmd}: {e}")))?;
        let node = start_node(cmd, cfg, &seeds)?;
        let timeout = Duration::from_secs_f64(timeout);
        let j = Joined {
            cmd,
            node,
            timeout,
            deadline: Instant::now() + timeout,
            seeds,
        };
        j.wait_for_master(j.deadline)?;
        Ok(j)
    }

    /// The master, once it is connected.
    pub(super) fn master(&self) -> Option<NodeId> {
        self.node
            .db_master()
            .filter(|m| self.node.node_is_up(m) == Some(true))
    }

    pub(super) fn wait_for_master(&self, deadline: Instant) -> Result<NodeId, Failure> {
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
        let why = self
            .seeds
            .iter()
            .find_map(|s| self.node.last_connect_error(s).map(|w| format!("{s}: {w}")));
        if let Some(why) = why {
            // The cause, e.g. an authentication failure (a wrong secret).
            text += &format!(" (the latest attempt failed: {why})");
        }
        self.failed(text)
    }

    pub(super) fn failed(&self, text: String) -> Failure {
        Failure::Failed(format!("{}: {text}", self.cmd))
    }

    pub(super) fn remaining(&self) -> Duration {
        self.deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100))
    }

    pub(super) fn family(&self, family: &str) -> Result<aemp::protocol::db::Family, Failure> {
        self.node
            .db_family_wait(family, self.remaining())
            .map_err(|e| self.failed(format!("family {family:?}: {e}")))
    }
}

/// The configuration of the short-lived node `aemp/%n/%u` (no listeners,
/// no services) that a command joins as: the chosen profile's, else
/// profile `aemp`'s (shared by every command that joins the network).
pub(crate) fn short_lived_config(cmd: &str, s: &Session) -> Result<rcfile::Resolved, Failure> {
    let profile = s.section.clone().unwrap_or_else(|| "aemp".to_string());
    let args = json!({"nodeid": "aemp/%n/%u", "binds": [], "services": [], "force": true});
    let args = args.as_object().expect("an object");
    rcfile::resolve(&s.rc, Some(&profile), args, true, false)
        .map_err(|e| Failure::Failed(format!("{cmd}: {e}")))
}

/// Starts the short-lived node with `cfg`, `seeds` as its seeds.
pub(crate) fn start_node(cmd: &str, mut cfg: Config, seeds: &[String]) -> Result<Node, Failure> {
    cfg.seeds = seeds.to_vec();
    let node = Node::with_config(cfg).map_err(|e| Failure::Failed(format!("{cmd}: {e}")))?;
    log::debug!("{cmd}: joined as {}", node.id());
    Ok(node)
}

/// The options of a command that joins the network.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Options {
    /// `--connect` addresses (replacing the configured seeds).
    pub connect: Vec<String>,
    /// `--timeout` in seconds.
    pub timeout: f64,
    /// `--json`/`-j`: the data arguments are JSON (only where allowed).
    pub json: bool,
}

/// Takes `--connect`, `--timeout` (and, when `json_flag`, `--json`/`-j`)
/// out of the arguments, wherever they stand (shared by every command
/// that joins the network); the others stay, in order. A `--` ends the
/// options: it is dropped and every later argument stays, even one that
/// looks like an option. An unknown option before it is a usage error (a
/// word starting with `-` and a digit, like `-3`, is not an option).
pub(crate) fn options(
    cmd: &'static str,
    a: &mut VecDeque<Value>,
    json_flag: bool,
) -> Result<Options, Failure> {
    let mut o = Options {
        connect: Vec::new(),
        timeout: DEFAULT_TIMEOUT,
        json: false,
    };
    let mut rest = VecDeque::with_capacity(a.len());
    while let Some(v) = a.pop_front() {
        let word = match &v {
            Value::String(w) if is_option(w) => w.clone(),
            _ => {
                rest.push_back(v);
                continue;
            }
        };
        if word == "--" {
            rest.extend(a.drain(..));
            break;
        }
        let (name, inline) = match word.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (word.as_str(), None),
        };
        if json_flag && inline.is_none() && (name == "--json" || name == "-j") {
            o.json = true;
            continue;
        }
        if name != "--connect" && name != "--timeout" {
            let json = if json_flag { ", --json" } else { "" };
            return Err(usage(
                cmd,
                format!(
                    "unknown option {word} (options: --connect, --timeout{json}; \
                     an argument that starts with - goes after --)"
                ),
            ));
        }
        let value = match inline {
            Some(v) => v,
            None => match a.pop_front() {
                Some(Value::String(v)) => v,
                Some(other) => other.to_string(),
                None => return Err(usage(cmd, format!("{name} needs a value"))),
            },
        };
        if name == "--connect" {
            o.connect.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string),
            );
        } else {
            o.timeout = value
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
    *a = rest;
    Ok(o)
}

/// Whether a word is an option (or `--`): it starts with `-`, and is not
/// `-` alone or a negative number.
fn is_option(w: &str) -> bool {
    let mut c = w.chars();
    c.next() == Some('-') && c.next().is_some_and(|c| !c.is_ascii_digit() && c != '.')
}

pub(super) fn no_more(cmd: &'static str, a: &VecDeque<Value>) -> Res {
    match a.front() {
        Some(extra) => Err(usage(cmd, format!("unexpected argument {extra}"))),
        None => Ok(()),
    }
}

/// Every node the master knows: ID → (listen addresses, global), without
/// our own node.
pub(super) fn network(j: &Joined) -> Result<BTreeMap<String, (Vec<String>, bool)>, Failure> {
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
