//! Thread ports at scale: what one costs to create and to keep, beside a
//! bare `std::thread` doing the same.

use super::{median, rss, Figure, Group};
use aemp::{msg, Node, Reason};
use crossbeam_channel::bounded;
use std::time::{Duration, Instant};

/// The thread-port figure groups.
pub fn groups(quick: bool) -> Vec<Group> {
    let runs = if quick { 3 } else { 5 };
    let rounds = if quick { 2_000 } else { 10_000 };
    let live = if quick { 2_000 } else { 10_000 };
    vec![
        Group::new("thread_port_create", move || {
            let tp = median(runs, || create_message_exit(rounds));
            let std = median(runs, || std_spawn_message_join(rounds / 4));
            vec![
                Figure::new("thread_port_create_us", tp, "us"),
                Figure::new("baseline_thread_spawn_us", std, "us"),
            ]
        }),
        Group::new("thread_port_rss", move || {
            vec![Figure::new(
                "thread_port_rss_kib",
                live_thread_port_kib(live),
                "KiB",
            )]
        }),
    ]
}

/// Mean time to create a thread port, have it take its first message and
/// end, one after the other: a thread port starts a helper thread port,
/// sends it a message and takes its answer (a finished port's thread is
/// reused).
fn create_message_exit(rounds: u32) -> f64 {
    let node = Node::anonymous();
    let (tx, rx) = bounded(1);
    node.port_thread(move |mb| -> aemp::Result<()> {
        let me = mb.port().clone();
        let node = mb.node().clone();
        let mut one = || -> aemp::Result<()> {
            let helper = node.port_thread(|mb| -> aemp::Result<()> {
                let (_, reply): (String, aemp::PortId) = mb.get()?.decode()?;
                aemp::snd(&reply, msg!["done"]);
                Ok(())
            });
            node.snd(&helper, msg!["go", &me]);
            mb.get_tag("done").map(drop)
        };
        // Warm up: the first ones create threads.
        for _ in 0..10 {
            one()?;
        }
        let t = Instant::now();
        for _ in 0..rounds {
            one()?;
        }
        tx.send(t.elapsed()).unwrap();
        Ok(())
    });
    let took = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    took.as_secs_f64() * 1e6 / f64::from(rounds)
}

/// The same with a new `std::thread` each time: spawn, one message over a
/// channel, join.
fn std_spawn_message_join(rounds: u32) -> f64 {
    let t = Instant::now();
    for _ in 0..rounds {
        let (tx, rx) = bounded::<u32>(1);
        let h = std::thread::spawn(move || rx.recv().unwrap());
        tx.send(1).unwrap();
        h.join().unwrap();
    }
    t.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
}

/// Resident memory per live thread port waiting in its mailbox, in KiB.
fn live_thread_port_kib(n: usize) -> f64 {
    let node = Node::anonymous();
    let (tx, rx) = bounded(n);
    let before = rss();
    let ports: Vec<_> = (0..n)
        .map(|_| {
            let tx = tx.clone();
            node.port_thread(move |mb| -> aemp::Result<()> {
                tx.send(()).unwrap();
                mb.get()?;
                Ok(())
            })
        })
        .collect();
    for _ in 0..n {
        rx.recv_timeout(Duration::from_secs(30)).unwrap();
    }
    let per = (rss() - before) / n as f64 / 1024.0;
    for p in &ports {
        let _ = node.kil(p, Reason::normal());
    }
    per
}
