//! `aemp stats`: asks nodes for their `Node::stats` (all at once) and
//! prints each node's peers and ports.

use super::joined::{network, options, Joined};
use super::{print_text, with_options, Res, JOIN};
use crate::cmd::{spec, Arity, Session, Spec};
use crate::net_cmds::usage;
use aemp::NodeId;
use serde_json::Value;
use std::collections::VecDeque;
use std::time::Duration;

/// `aemp stats`.
pub(super) fn stats_spec() -> Spec {
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
    )
}

fn stats(s: &mut Session, a: Vec<Value>) -> Res {
    let mut a = VecDeque::from(a);
    let opts = options("stats", &mut a, false)?;
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
            .and_then(|m| m.into_iter().next())
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
