//! The commands that look at the network through its global nodes:
//! `nodes`, `trace`, `stats`, `db family|keys|values|mon FAMILY` and
//! `log [LEVEL]`.
//!
//! Each joins as a short-lived node `aemp/%n/%u` (no listeners) with the
//! configuration file's secret or cert and seeds (`--connect` replaces the
//! seeds), waits until a seed answers and becomes its database master,
//! asks the master and leaves.
//!
//! One file per command (`nodes.rs` has `nodes` and `trace`, then
//! `stats.rs`, `db.rs`, `logs.rs`); `joined.rs` joins the network for them, and for
//! the protocol commands of `net_cmds.rs`.

mod db;
mod joined;
mod logs;
mod nodes;
mod stats;

use crate::cmd::{Failure, Spec};

pub(crate) use joined::{options, short_lived_config, start_node};

type Res = Result<(), Failure>;

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
        nodes::nodes_spec(),
        nodes::trace_spec(),
        stats::stats_spec(),
        db::db_spec(),
        logs::log_spec(),
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

/// Prints `text`; false when stdout is gone (a closed pipe).
fn print_text(text: &str) -> bool {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_ok()
}
