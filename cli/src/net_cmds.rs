//! The network commands: `run` (a node, until SIGINT/SIGTERM, or
//! restarted by `restart`) and the protocol commands `snd`, `cal`, `mon`
//! and `restart`, which join the network as a short-lived node
//! `aemp/%n/%u`.
//!
//! A protocol command joins through the seeds of the configuration (or the
//! `--connect HOST:PORT` addresses, used as seeds instead) and reaches the
//! target port's node wherever it is: a seed itself, or any node the
//! network's global nodes know (discovery: the master is asked for its
//! addresses).

use crate::cmd::{spec, Arity, Failure, Session, Spec};
use aemp::{msg, Error, Message, Node, NodeId, PortId};
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::io::Write;

mod run;
use run::run;
pub(crate) use run::StopSignals;
use std::time::{Duration, Instant};

type Res = Result<(), Failure>;

/// The node-port function that asks a node to restart: the one the
/// original's `aemp restart` calls (AnyEvent::Watchdog's); `aemp run`
/// nodes register it.
pub(crate) const RESTART_FN: &str = "AnyEvent::Watchdog::Util::restart";

/// How often `run` looks for signals and restart requests.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// How long `snd` waits after the confirmation for its monitor of the
/// port to report that the port does not exist.
const SND_GRACE: Duration = Duration::from_millis(250);

const REACH: &str = "\
Finding the node: the command joins as a short-lived node aemp/<host>/<random>
with the configuration file's secret or cert (global section, then profile
`aemp`, or the profile chosen by an earlier `profile NAME`). It connects to
the configuration's seeds (--connect HOST:PORT replaces them) and reaches
PORT's node wherever it is: at one of those addresses, or anywhere in the
network, through discovery (the seed that answers becomes the database
master, which knows where the network's nodes listen). If the node cannot be
reached within the time-out, the command fails (exit 1), naming what answered.

PORT is a port ID NODE#NAME; a bare node ID means that node's node port.";

const DATA: &str = "\
The message: each ARG is a string, except that an argument starting with [, {
or \" is JSON. With --json (-j) every ARG is JSON (relaxed: trailing commas and
# comments are fine): 3 is a number, true a boolean, '\"3\"' a string; a bad
one is a usage error naming it.

Options may stand anywhere on the line, before or after PORT and the ARGs;
everything after -- is data, even a word that looks like an option
(aemp snd PORT -- --timeout sends \"--timeout\"). An unknown option is an error.";

/// Every network command, in help order.
pub fn commands() -> Vec<Spec> {
    vec![
        spec(
            "run",
            None,
            Arity::Rest {
                value: "CONFIGURE_ARGS",
                help: "[PROFILE] [KEY VALUE]...: configure arguments (values may be JSON)",
            },
            "Run a node configured from the file until SIGINT or SIGTERM (ends the chain)",
            run,
        )
        .usage("aemp run [PROFILE] [KEY VALUE]...")
        .long(
            "Configures the node like the original's configure: the profile (an odd first \
argument, a `profile NAME` pair, or an earlier `aemp profile NAME`; default the host \
name; a named profile that the file does not have is an error listing the known ones), \
then KEY VALUE pairs as configure \
arguments (nodeid, binds, secret, ...), below the file's keys unless `force 1`. The \
profile's services run at start; of the original's functions, aemp has \
AnyEvent::MP::LogCatcher::catch (services '[[\"AnyEvent::MP::LogCatcher::catch\", 9]]' \
logs every other node's records here, shown at the AEMP_VERBOSE level); another service \
name fails. Prints `NODEID listening on ADDR, ...` once running, e.g.\n\n  \
aemp run profile seed\n  aemp run nodeid test binds '[\"127.0.0.1:4040\"]'\n\n\
The node connects to its seeds; a node whose own address is among its seeds is a \
global node.",
        ),
        with_net_options(
            spec(
                "snd",
                None,
                Arity::Rest {
                    value: "PORT ARG",
                    help: "the port, then the message (JSON arguments stay JSON)",
                },
                "Send a message to a port and confirm that its node got it (ends the chain)",
                snd,
            )
            .option(json_option())
            .usage("aemp snd [--connect HOST:PORT]... [--timeout SECS] [--json] PORT [ARG]... [-- ARG...]")
            .long(format!(
                "Sends [ARG...] to PORT, then asks PORT's node to relay a reply to us: \
prints \"message sent successfully\" when it arrives, or fails (exit 1) with the \
reason when PORT does not exist (reported by PORT's node within 0.25 s of the \
confirmation) or its node cannot be reached, e.g.\n\n  aemp snd seed#worker job 42\n  \
aemp snd --json seed#worker '\"job\"' 42 '[1,2]' '{{\"k\":true}}'\n\n{DATA}\n\n{REACH}"
            )),
        ),
        with_net_options(
            spec(
                "cal",
                None,
                Arity::Rest {
                    value: "PORT ARG",
                    help: "the port, then the request (a reply port is appended)",
                },
                "Send a request with a reply port and print the reply (ends the chain)",
                cal,
            )
            .option(json_option())
            .usage("aemp cal [--connect HOST:PORT]... [--timeout SECS] [--json] PORT [ARG]... [-- ARG...]")
            .long(format!(
                "Sends [ARG..., REPLYPORT] to PORT and prints the reply as comma-separated \
JSON (an array without brackets), e.g. `aemp cal NODE time` prints the node's clock. \
Fails (exit 1) when no reply comes within the time-out or PORT dies.\n\n{DATA}\n\n{REACH}"
            )),
        ),
        with_net_options(
            spec(
                "mon",
                None,
                Arity::Rest {
                    value: "PORT",
                    help: "the port to watch",
                },
                "Wait until a port dies and print the reason (ends the chain)",
                mon,
            )
            .usage("aemp mon [--connect HOST:PORT]... [--timeout SECS] PORT")
            .long(format!(
                "Monitors PORT and waits (without a time-out once connected) until it \
dies; prints the kill reason as comma-separated JSON (an empty line for a normal kill, \
\"transport_error\",... when the connection is lost) and exits 0.\n\n{REACH}"
            )),
        ),
        with_net_options(
            spec(
                "restart",
                None,
                Arity::Rest {
                    value: "NODE",
                    help: "the node to restart",
                },
                "Ask a node to restart and wait until it goes down (ends the chain)",
                restart,
            )
            .usage("aemp restart [--connect HOST:PORT]... [--timeout SECS] NODE")
            .long(format!(
                "Calls the function {RESTART_FN} through NODE's node port, as the original \
does, and waits (up to the time-out) until the connection to NODE is lost; prints \
\"node NODE is restarting\". An `aemp run` node answers it: it stops its node and runs \
again with the same arguments (a new process image, same process ID), re-reading the \
configuration; so does a Perl node under AnyEvent::Watchdog. Other nodes refuse the \
unknown function, and the command fails (exit 1) when NODE is still up at the \
time-out.\n\n{REACH}"
            )),
        ),
    ]
}

/// `--json`/`-j` of `snd` and `cal`.
fn json_option() -> clap::Arg {
    clap::Arg::new("json")
        .long("json")
        .short('j')
        .action(clap::ArgAction::SetTrue)
        .help("read every data argument as JSON (3 is a number, '\"3\"' a string)")
}

/// The options of the protocol commands; their arguments are decoded by
/// the command (`--json`, `--`).
fn with_net_options(s: Spec) -> Spec {
    s.raw_args().option(
        clap::Arg::new("connect")
            .long("connect")
            .value_name("HOST:PORT")
            .action(clap::ArgAction::Append)
            .help("a seed (or the target node) to use instead of the configured seeds (repeatable, or comma-separated)"),
    )
    .option(
        clap::Arg::new("timeout")
            .long("timeout")
            .value_name("SECS")
            .help("how long to wait for the node (and the reply) [default: 5]"),
    )
}

// ---------------------------------------------------------------- run

/// What the protocol commands share: the short-lived node, the target
/// and the deadline.
struct Call {
    cmd: &'static str,
    node: Node,
    port: PortId,
    target: NodeId,
    args: Vec<Value>,
    deadline: Instant,
    timeout: Duration,
}

impl Call {
    /// Reads the options and PORT, joins the network and reaches PORT's
    /// node.
    fn start(cmd: &'static str, s: &Session, a: Vec<Value>) -> Result<Call, Failure> {
        let mut a = VecDeque::from(a);
        let opts = crate::db_cmds::options(cmd, &mut a, matches!(cmd, "snd" | "cal"))?;
        let (mut connect, timeout) = (opts.connect, opts.timeout);
        let decode = |v: Value| {
            if s.decoded {
                Ok(v)
            } else {
                crate::argv::decode_one(v)
            }
        };
        let port = match a.pop_front().map(decode).transpose()? {
            Some(Value::String(p)) => {
                PortId::parse(&p).map_err(|e| usage(cmd, format!("PORT {p:?}: {e}")))?
            }
            Some(other) => return Err(usage(cmd, format!("PORT {other}: a port ID is a string"))),
            None => return Err(usage(cmd, "PORT is missing".into())),
        };
        let a: Vec<Value> = if opts.json && !s.decoded {
            a.into_iter()
                .map(|v| crate::argv::json_data(cmd, v))
                .collect::<Result<_, _>>()?
        } else {
            a.into_iter().map(decode).collect::<Result<_, _>>()?
        };
        let target: NodeId = port
            .node()
            .parse()
            .map_err(|e: Error| usage(cmd, e.to_string()))?;

        let resolved = crate::db_cmds::short_lived_config(cmd, s)?;
        if connect.is_empty() {
            connect = seeds(&resolved.config);
        }
        if connect.is_empty() {
            return Err(Failure::Failed(format!(
                "{cmd}: no address for node {target}: give --connect HOST:PORT, or set seeds \
                 (aemp seeds HOST:PORT)"
            )));
        }
        // The addresses are the node's seeds: it connects to them (and
        // learns the master there); the target node is then dialed by ID,
        // which finds it at a seed address or through the master.
        let cfg =
            aemp::Config::from_rc(&resolved).map_err(|e| Failure::Failed(format!("{cmd}: {e}")))?;
        let node = crate::db_cmds::start_node(cmd, cfg, &connect)?;
        let timeout = Duration::from_secs_f64(timeout);
        let call = Call {
            cmd,
            node,
            port,
            target,
            args: a,
            deadline: Instant::now() + timeout,
            timeout,
        };
        call.reach(&connect)?;
        Ok(call)
    }

    /// Waits until the target node is up: at a seed address, or found
    /// through the master.
    fn reach(&self, addrs: &[String]) -> Res {
        enum Ev {
            Up(NodeId),
            Lost(aemp::Reason),
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let up = tx.clone();
        let _guard = self
            .node
            .mon_nodes(move |id, is_up, _| {
                if is_up {
                    let _ = up.send(Ev::Up(id.clone()));
                }
            })
            .map_err(|e| self.failed(e.to_string()))?;
        // Monitoring the node port dials the node by ID: at an address
        // learned from a seed connection, else asking the master (g_find).
        // It fires when the node cannot be reached.
        let _probe = self.node.mon(&self.target.node_port(), move |reason| {
            let _ = tx.send(Ev::Lost(reason));
        });
        let mut others: Vec<String> = Vec::new();
        let mut lost = None;
        loop {
            if self.node.node_is_up(&self.target) == Some(true) {
                return Ok(());
            }
            match rx.recv_deadline(self.deadline) {
                Ok(Ev::Up(id)) if id == self.target => return Ok(()),
                Ok(Ev::Up(id)) => others.push(id.to_string()),
                Ok(Ev::Lost(reason)) => {
                    lost = Some(reason);
                    break;
                }
                Err(_) => break,
            }
        }
        let mut text = match &lost {
            Some(reason) => format!(
                "cannot reach node {} through {}: {}",
                self.target,
                addrs.join(", "),
                reason_text(reason)
            ),
            None => format!(
                "cannot reach node {} through {} within {} s",
                self.target,
                addrs.join(", "),
                self.timeout.as_secs_f64()
            ),
        };
        let why = std::iter::once(self.target.as_str())
            .chain(addrs.iter().map(String::as_str))
            .find_map(|k| self.node.last_connect_error(k).map(|w| format!("{k}: {w}")));
        if let Some(why) = why {
            // The cause, e.g. an authentication failure (a wrong secret).
            text += &format!(" (the latest attempt failed: {why})");
        } else if others.is_empty() && lost.is_none() {
            text += " (no node answered there)";
        }
        if !others.is_empty() {
            let master = match self.node.db_master() {
                Some(m) => format!("; master {m} does not know it"),
                None => "; none of them is a global node that could find it".into(),
            };
            text += &format!(" ({} answered{master})", others.join(", "));
        }
        Err(self.failed(text))
    }

    fn failed(&self, text: String) -> Failure {
        Failure::Failed(format!("{}: {text}", self.cmd))
    }

    /// For a command that takes nothing after PORT (`what`: its name in
    /// help).
    fn no_args(&self, what: &str) -> Res {
        match self.args.first() {
            Some(extra) => Err(usage(
                self.cmd,
                format!("unexpected argument {extra} after {what}"),
            )),
            None => Ok(()),
        }
    }

    /// A monitor of PORT: its kill reason arrives on the channel.
    fn watch(&self) -> (aemp::MonGuard, crossbeam_channel::Receiver<aemp::Reason>) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let guard = self.node.mon(&self.port, move |reason| {
            let _ = tx.try_send(reason);
        });
        (guard, rx)
    }

    fn no_answer(&self, what: &str) -> Failure {
        self.failed(format!(
            "no {what} from node {} within {} s",
            self.target,
            self.timeout.as_secs_f64()
        ))
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // Leaving is expected: its connection warnings are noise (a
        // chosen AEMP_VERBOSE/RUST_LOG above warn still shows them).
        if log::max_level() <= log::LevelFilter::Warn {
            log::set_max_level(log::LevelFilter::Error);
        }
        self.node.net_shutdown();
    }
}

/// A usage error of `cmd` (the hint line is added by `Failure::of`).
pub(crate) fn usage(cmd: &str, text: String) -> Failure {
    Failure::Usage(format!("{cmd}: {text}"))
}

/// The `seeds` of an effective configuration, comma lists split.
pub(crate) fn seeds(config: &Map<String, Value>) -> Vec<String> {
    let list = match config.get("seeds") {
        Some(Value::Array(a)) => a.clone(),
        Some(Value::String(s)) => vec![Value::String(s.clone())],
        _ => Vec::new(),
    };
    list.iter()
        .filter_map(Value::as_str)
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Values as comma-separated JSON (an array without brackets).
fn json_list(values: &[Value]) -> String {
    values
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn print_line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

fn snd(s: &mut Session, a: Vec<Value>) -> Res {
    let c = Call::start("snd", s, a)?;
    let (tx, rx) = crossbeam_channel::bounded(4);
    let died = tx.clone();
    let _mon = c.node.mon(&c.port, move |reason| {
        let _ = died.try_send(Err(reason));
    });
    c.node.snd(&c.port, Message::from(c.args.clone()));
    let reply = c.node.port_fn(move |m| {
        let _ = tx.try_send(Ok(m));
    });
    c.node.snd(
        &c.target.node_port(),
        msg!["snd", &reply, "message sent successfully"],
    );
    let mut got = rx.recv_deadline(c.deadline);
    if matches!(got, Ok(Ok(_))) {
        // The node answers a monitor of a missing port from its dispatcher,
        // so that answer may come just after the relayed reply: give it a
        // moment.
        let grace = (Instant::now() + SND_GRACE).min(c.deadline);
        if let Ok(Err(reason)) = rx.recv_deadline(grace) {
            got = Ok(Err(reason));
        }
    }
    match got {
        Ok(Ok(m)) => {
            let words: Vec<String> = m
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            print_line(&words.join(" "));
            Ok(())
        }
        Ok(Err(reason)) => Err(c.failed(format!("port {}: {}", c.port, reason_text(&reason)))),
        Err(_) => Err(c.no_answer("confirmation")),
    }
}

fn cal(s: &mut Session, a: Vec<Value>) -> Res {
    let c = Call::start("cal", s, a)?;
    let remaining = c.deadline.saturating_duration_since(Instant::now());
    match c
        .node
        .call(&c.port, Message::from(c.args.clone()), remaining)
    {
        Ok(m) => {
            print_line(&json_list(&m));
            Ok(())
        }
        Err(Error::Timeout { .. }) => Err(c.no_answer("reply")),
        Err(Error::NoReply { reason, .. }) => Err(c.failed(format!(
            "port {} died before replying: {}",
            c.port,
            reason_text(&reason)
        ))),
        Err(e) => Err(c.failed(e.to_string())),
    }
}

fn mon(s: &mut Session, a: Vec<Value>) -> Res {
    let c = Call::start("mon", s, a)?;
    c.no_args("PORT")?;
    let (_mon, rx) = c.watch();
    match rx.recv() {
        Ok(reason) => {
            print_line(&json_list(&reason.0));
            Ok(())
        }
        Err(_) => Err(c.failed("the monitor went away".into())),
    }
}

fn restart(s: &mut Session, a: Vec<Value>) -> Res {
    let c = Call::start("restart", s, a)?;
    c.no_args("NODE")?;
    if c.port != c.target.node_port() {
        return Err(usage(
            "restart",
            format!("{} is a port: give a node ID", c.port),
        ));
    }
    let (_mon, rx) = c.watch();
    c.node.snd(&c.port, msg![RESTART_FN]);
    match rx.recv_deadline(c.deadline) {
        Ok(_) => {
            print_line(&format!("node {} is restarting", c.target));
            Ok(())
        }
        Err(_) => Err(c.failed(format!(
            "node {} is still up after {} s: it did not restart (aemp run nodes, and \
             Perl nodes under AnyEvent::Watchdog, have {RESTART_FN}; the node's log says \
             more)",
            c.target,
            c.timeout.as_secs_f64()
        ))),
    }
}

fn reason_text(reason: &aemp::Reason) -> String {
    if reason.0.is_empty() {
        "killed (normal)".into()
    } else {
        json_list(&reason.0)
    }
}
