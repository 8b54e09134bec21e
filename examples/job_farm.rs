//! A master farming jobs to workers it finds through the database, and
//! collecting the results in job order with selective receive.
//!
//! Four nodes in one process talk over TCP on 127.0.0.1: a seed (the
//! global node holding the database), three workers and a master. Each
//! worker registers its port in the `workers` family; the master waits
//! until it sees all three, hands out the jobs, and then takes the
//! results one job at a time (they arrive in any order), or stops at the
//! first worker that dies. Runs on its own and exits.
//!
//! ```text
//! cargo run --example job_farm
//! ```

use aemp::{msg, Config, Node, PortId};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Any error, with its message.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

const JOBS: u64 = 12;
const WORKERS: usize = 3;

/// To a worker: `["square", id, n, reply]` on the wire.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "snake_case")]
enum Job {
    Square { id: u64, n: u64, reply: PortId },
}

/// To the master: `["done", id, value, worker]`.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Done { id: u64, value: u64, worker: String },
}

/// A worker's thread: squares numbers, slower for some, so that the
/// answers come back out of order.
fn worker(mb: &mut aemp::Mailbox) -> aemp::Result<()> {
    loop {
        let Job::Square { id, n, reply } = mb.get_as()?;
        std::thread::sleep(Duration::from_millis(n % 4 * 5));
        let worker = mb.node().id().to_string();
        let value = n * n;
        mb.node()
            .snd_value(&reply, &Answer::Done { id, value, worker })?;
    }
}

/// The master's thread: the workers' ports in, the results out (in job
/// order).
fn master(mb: &mut aemp::Mailbox, workers: &[PortId]) -> Result<Vec<(u64, String)>, BoxError> {
    let me = mb.port().clone();
    for w in workers {
        // A worker's death arrives in this mailbox as ["down", worker, reason...].
        mb.node().mon_send(w, &me, msg!["down", w]).forget();
    }
    for id in 0..JOBS {
        let job = Job::Square {
            id,
            n: id + 1,
            reply: me.clone(),
        };
        mb.node()
            .snd_value(&workers[id as usize % workers.len()], &job)?;
    }
    let mut results = Vec::new();
    for id in 0..JOBS {
        // Selective receive: this job's answer, or any worker's death;
        // other answers stay queued until their turn.
        let m =
            mb.get_cond(|m| m.tag() == Some("down") || (m.tag() == Some("done") && m[1] == id))?;
        if m.tag() == Some("down") {
            return Err(format!("a worker died: {m}").into());
        }
        let Answer::Done { value, worker, .. } = m.decode()?;
        results.push((value, worker));
    }
    Ok(results)
}

fn main() -> Result<(), BoxError> {
    env_logger::init();
    let secret = "job-farm-example";
    let config = |name: &str| Config::new(name).bind("127.0.0.1:0").secret(secret);

    // The seed: a node whose own address is among its seeds is global.
    let seed = Node::with_config(config("farm-seed/%u"))?;
    let at = seed.listen_addrs()[0].to_string();
    seed.add_seed(&at)?;

    let mut nodes = vec![seed];
    for i in 0..WORKERS {
        let node = Node::with_config(config(&format!("farm-worker{i}/%u")).seeds([at.clone()]))?;
        let port = node.port_thread(worker);
        // The entry lives as long as the port (or the node's connection).
        node.db_reg("workers", &port)?.forget();
        nodes.push(node);
    }

    let boss = Node::with_config(config("farm-master/%u").seeds([at.clone()]))?;
    // Wait until the database shows every worker.
    let (tx, rx) = crossbeam_channel::unbounded();
    let watch = boss.db_mon("workers", move |_| {
        let _ = tx.send(());
    })?;
    let workers = loop {
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| "the workers never showed up")?;
        let keys = boss.db_keys_wait("workers", Duration::from_secs(5))?;
        if keys.len() == WORKERS {
            break keys;
        }
    };
    drop(watch);
    println!("found {} workers through the database", workers.len());
    let workers: Vec<PortId> = workers
        .iter()
        .map(|k| k.parse())
        .collect::<aemp::Result<_>>()?;

    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    boss.port_thread(move |mb| {
        let _ = done_tx.send(master(mb, &workers));
    });
    let results = done_rx
        .recv_timeout(Duration::from_secs(20))
        .map_err(|_| "the master never finished")??;

    for (id, (value, worker)) in results.iter().enumerate() {
        println!("job {id}: {value} (by {worker})");
        assert_eq!(*value, (id as u64 + 1).pow(2));
    }
    let by: std::collections::BTreeSet<_> = results.iter().map(|(_, w)| w).collect();
    println!("{JOBS} results in job order from {} workers", by.len());

    boss.shutdown();
    for node in nodes.into_iter().rev() {
        node.shutdown();
    }
    Ok(())
}
