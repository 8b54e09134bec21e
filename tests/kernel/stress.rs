//! Concurrency: many senders, kills in flight, monitors from many threads,
//! many ports.

use crate::{node, recv};
use aemp::{msg, reason, Message, Reason};
use crossbeam_channel::unbounded;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn many_senders_keep_per_sender_order() {
    let n = node();
    const SENDERS: u64 = 8;
    const EACH: u64 = 20_000;
    let (tx, rx) = unbounded();
    let mut next = vec![0u64; SENDERS as usize];
    let p = n.port_fn(move |m: Message| {
        let (s, i): (u64, u64) = (m[0].as_u64().unwrap(), m[1].as_u64().unwrap());
        assert_eq!(next[s as usize], i, "sender {s} out of order");
        next[s as usize] += 1;
        if next.iter().all(|&c| c == EACH) {
            tx.send(()).unwrap();
        }
    });
    let (dtx, drx) = unbounded();
    n.mon(&p, move |r| dtx.send(r).unwrap()).forget();
    let threads: Vec<_> = (0..SENDERS)
        .map(|s| {
            let (n, p) = (n.clone(), p.clone());
            std::thread::spawn(move || {
                for i in 0..EACH {
                    n.snd(&p, msg![s, i]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        rx.recv_timeout(Duration::from_secs(30)).is_ok(),
        "not all messages arrived; port died? {:?}",
        drx.try_recv()
    );
}

#[test]
fn kill_while_messages_in_flight_leaves_no_hole() {
    let n = node();
    let (tx, rx) = unbounded();
    let p = n.port_fn(move |m: Message| tx.send(m[0].as_u64().unwrap()).unwrap());
    let (dtx, drx) = unbounded();
    n.mon(&p, move |r| dtx.send(r).unwrap()).forget();
    let sender = {
        let (n, p) = (n.clone(), p.clone());
        std::thread::spawn(move || {
            for i in 0..200_000u64 {
                n.snd(&p, msg![i]);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(5));
    n.kil(&p, reason!["stop"]).unwrap();
    sender.join().unwrap();
    assert_eq!(recv(&drx), reason!["stop"]);
    // What arrived is a prefix 0..k: no hole, nothing after the kill.
    let got: Vec<u64> = rx.try_iter().collect();
    for (i, v) in got.iter().enumerate() {
        assert_eq!(*v, i as u64, "hole in delivered sequence");
    }
    std::thread::sleep(Duration::from_millis(20));
    assert!(rx.try_recv().is_err(), "delivery after death");
}

#[test]
fn monitors_from_many_threads_fire_exactly_once() {
    let n = node();
    let p = n.port_fn(|_| {});
    let fired = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = unbounded();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (n, p, fired, tx) = (n.clone(), p.clone(), fired.clone(), tx.clone());
            std::thread::spawn(move || {
                for _ in 0..500 {
                    let (fired, tx) = (fired.clone(), tx.clone());
                    n.mon(&p, move |r: Reason| {
                        fired.fetch_add(1, Ordering::SeqCst);
                        tx.send(r).unwrap();
                    })
                    .forget();
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1));
    n.kil(&p, reason!["x"]).unwrap();
    for t in threads {
        t.join().unwrap();
    }
    for _ in 0..4000 {
        let r = recv(&rx);
        assert!(
            r == reason!["x"] || r.kind() == Some("no_such_port"),
            "unexpected reason {r}"
        );
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(fired.load(Ordering::SeqCst), 4000);
}

#[test]
fn thousand_ports_thousand_messages_each_in_order() {
    let n = node();
    let (tx, rx) = unbounded();
    let ports: Vec<_> = (0..1000)
        .map(|_| {
            let tx = tx.clone();
            let mut expect = 0u64;
            n.port_fn(move |m: Message| {
                assert_eq!(m[0].as_u64().unwrap(), expect);
                expect += 1;
                if expect == 1000 {
                    tx.send(()).unwrap();
                }
            })
        })
        .collect();
    for i in 0..1000u64 {
        for p in &ports {
            n.snd(p, msg![i]);
        }
    }
    for _ in 0..1000 {
        recv(&rx);
    }
    for p in &ports {
        n.kil(p, Reason::normal()).unwrap();
    }
    crate::eventually(|| n.port_count() == 1);
}
