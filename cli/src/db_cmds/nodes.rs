//! `aemp nodes` and `aemp trace`: the network's nodes as the global
//! nodes know them.

use super::joined::{network, no_more, options, Joined};
use super::{print_text, with_options, Res, JOIN};
use crate::cmd::{spec, Arity, Session, Spec};
use serde_json::Value;
use std::collections::VecDeque;

/// `aemp nodes`.
pub(super) fn nodes_spec() -> Spec {
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
    )
}

/// `aemp trace`.
pub(super) fn trace_spec() -> Spec {
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
    )
}

fn nodes(s: &mut Session, a: Vec<Value>) -> Res {
    let mut a = VecDeque::from(a);
    let opts = options("nodes", &mut a, false)?;
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
    let opts = options("trace", &mut a, false)?;
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
