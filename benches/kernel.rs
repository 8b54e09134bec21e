//! Criterion benches for the kernel's hot paths (the figures program
//! measures the same paths against baselines).

use aemp::{msg, Message, Node, Reason};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use crossbeam_channel::{bounded, unbounded};
use std::time::Duration;

fn local_send(c: &mut Criterion) {
    let node = Node::anonymous();
    let (tx, rx) = unbounded();
    let mut left = 0u64;
    let port = node.port_fn(move |m: Message| {
        if m.tag() == Some("expect") {
            left = m[1].as_u64().unwrap();
        } else {
            left -= 1;
        }
        if left == 0 {
            tx.send(()).unwrap();
        }
    });
    c.bench_function("local_send_10k", |b| {
        b.iter(|| {
            node.snd(&port, msg!["expect", 10_000]);
            for i in 0..10_000u64 {
                node.snd(&port, msg!["tag", i]);
            }
            rx.recv().unwrap();
        })
    });
}

fn thread_port_pingpong(c: &mut Criterion) {
    let node = Node::anonymous();
    let echo = node.port_thread(|mb| -> aemp::Result<()> {
        loop {
            let m = mb.get()?;
            let to = aemp::PortId::try_from(&m[1])?;
            mb.node().snd(&to, msg!["pong"]);
        }
    });
    let (req_tx, req_rx) = bounded::<()>(1);
    let (done_tx, done_rx) = bounded::<()>(1);
    let echo2 = echo.clone();
    node.port_thread(move |mb| -> aemp::Result<()> {
        let me = mb.port().clone();
        while req_rx.recv().is_ok() {
            mb.node().snd(&echo2, msg!["ping", &me]);
            mb.get()?;
            done_tx.send(()).unwrap();
        }
        Ok(())
    });
    c.bench_function("thread_port_pingpong", |b| {
        b.iter(|| {
            req_tx.send(()).unwrap();
            done_rx.recv().unwrap();
        })
    });
    node.kil(&echo, Reason::normal()).unwrap();
}

fn selective_receive(c: &mut Criterion) {
    for queued in [0u32, 100_000] {
        let node = Node::anonymous();
        let (ack_tx, ack_rx) = bounded(1);
        let p = node.port_thread(move |mb| -> aemp::Result<()> {
            loop {
                mb.get_tag("x")?;
                ack_tx.send(()).unwrap();
            }
        });
        for i in 0..queued {
            node.snd(&p, msg!["other", i]);
        }
        c.bench_function(&format!("get_tag_with_{queued}_queued"), |b| {
            b.iter(|| {
                node.snd(&p, msg!["x"]);
                ack_rx.recv().unwrap();
            })
        });
        node.kil(&p, Reason::normal()).unwrap();
    }
}

fn create_kill(c: &mut Criterion) {
    let node = Node::anonymous();
    c.bench_function("port_create_kill", |b| {
        b.iter_batched(
            || (),
            |_| {
                let p = node.port_fn(|_| {});
                node.kil(&p, Reason::normal()).unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    // With a monitor, the kill goes through the dispatcher.
    c.bench_function("port_create_mon_kill", |b| {
        b.iter_batched(
            || (),
            |_| {
                let p = node.port_fn(|_| {});
                node.mon(&p, |_| {}).forget();
                node.kil(&p, Reason::normal()).unwrap();
            },
            BatchSize::SmallInput,
        )
    });
}

fn decode(c: &mut Criterion) {
    let m = msg!["write_file", "/tmp/x", 42, "node#port"];
    c.bench_function("decode_tuple", |b| {
        b.iter(|| m.decode::<(String, String, u32, aemp::PortId)>().unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = local_send, thread_port_pingpong, selective_receive, create_kill, decode
}
criterion_main!(benches);
