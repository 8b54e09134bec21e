//! Figures of the local kernel, each beside a bare crossbeam channel
//! carrying the same messages between two threads; local sending and
//! ping-pong also beside Erlang/OTP's, when it is installed (erlang.rs).

use super::erlang::Erlang;
use super::{median, mid, ratio, turns, Figure, Group};
use aemp::{msg, Message, Node, PortId, Reason};
use crossbeam_channel::{bounded, unbounded};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The kernel's figure groups: `(group name, measure)`.
pub fn groups(quick: bool, allocated: fn() -> usize) -> Vec<Group> {
    let runs = if quick { 3 } else { 5 };
    let n_msgs: u64 = if quick { 500_000 } else { 2_000_000 };
    let rounds: u32 = if quick { 20_000 } else { 100_000 };
    let sel_rounds = if quick { 2_000 } else { 10_000 };
    let ports = if quick { 200_000 } else { 1_000_000 };
    let idle = if quick { 20_000 } else { 100_000 };
    vec![
        Group::new("local_send", move || {
            let mut erlang = Erlang::start();
            let v = match erlang.as_mut() {
                Some(erl) => turns(
                    runs,
                    &mut [
                        &mut || local_send(n_msgs),
                        &mut || channel_send(n_msgs),
                        &mut || erl.send(n_msgs),
                        &mut || local_send_read(n_msgs),
                    ],
                ),
                None => turns(
                    runs,
                    &mut [
                        &mut || local_send(n_msgs),
                        &mut || channel_send(n_msgs),
                        &mut || local_send_read(n_msgs),
                    ],
                ),
            };
            let read = v.last().expect("local_send_read's runs");
            let mut figures = vec![
                Figure::new("local_send_msgs_per_s", mid(&v[0]), "msgs/s"),
                Figure::new("local_send_read_msgs_per_s", mid(read), "msgs/s"),
                Figure::new("baseline_channel_msgs_per_s", mid(&v[1]), "msgs/s"),
                Figure::new("local_send_vs_channel", ratio(&v[0], &v[1]), "ratio"),
            ];
            if let Some(erl) = &erlang {
                figures.extend([
                    Figure::new(
                        "baseline_erlang_local_send_msgs_per_s",
                        mid(&v[2]),
                        "msgs/s",
                    ),
                    Figure::new("local_send_vs_erlang", ratio(&v[0], &v[2]), "ratio"),
                    Figure::new("baseline_erlang_schedulers", erl.schedulers, "schedulers"),
                ]);
            }
            figures
        }),
        Group::new("local_pingpong", move || {
            let mut erlang = Erlang::start();
            let v = match erlang.as_mut() {
                Some(erl) => turns(
                    runs,
                    &mut [
                        &mut || local_pingpong(rounds),
                        &mut || channel_pingpong(rounds),
                        &mut || callback_pingpong(rounds),
                        &mut || spin_pingpong(rounds),
                        &mut || erl.pingpong(rounds),
                    ],
                ),
                None => turns(
                    runs,
                    &mut [
                        &mut || local_pingpong(rounds),
                        &mut || channel_pingpong(rounds),
                        &mut || callback_pingpong(rounds),
                        &mut || spin_pingpong(rounds),
                    ],
                ),
            };
            let mut figures = vec![
                Figure::new("local_pingpong_rtt_us", mid(&v[0]), "us"),
                Figure::new("baseline_channel_pingpong_rtt_us", mid(&v[1]), "us"),
                Figure::new("local_pingpong_vs_channel", ratio(&v[0], &v[1]), "ratio"),
                Figure::new("local_callback_pingpong_rtt_us", mid(&v[2]), "us"),
                Figure::new("baseline_cross_core_spin_rtt_us", mid(&v[3]), "us"),
                Figure::new(
                    "local_pingpong_vs_cross_core_spin",
                    ratio(&v[0], &v[3]),
                    "ratio",
                ),
            ];
            if let Some(erl) = &erlang {
                let callback_vs_erlang = ratio(&v[2], &v[4]);
                figures.extend([
                    Figure::new("baseline_erlang_local_pingpong_rtt_us", mid(&v[4]), "us"),
                    Figure::new("local_pingpong_vs_erlang", ratio(&v[0], &v[4]), "ratio"),
                    Figure::new(
                        "local_callback_pingpong_vs_erlang",
                        callback_vs_erlang,
                        "ratio",
                    ),
                    Figure::new("baseline_erlang_schedulers", erl.schedulers, "schedulers"),
                ]);
            }
            figures
        }),
        Group::new("thread_port_send", move || {
            let tp = median(runs, || thread_port_send(n_msgs));
            vec![Figure::new("thread_port_send_msgs_per_s", tp, "msgs/s")]
        }),
        Group::new("selective_receive", move || {
            let q0 = median(runs, || selective_receive(0, sel_rounds));
            let q10k = median(runs, || selective_receive(10_000, sel_rounds));
            let q100k = median(runs, || selective_receive(100_000, sel_rounds));
            vec![
                Figure::new("selective_receive_q0_us", q0, "us"),
                Figure::new("selective_receive_q10k_us", q10k, "us"),
                Figure::new("selective_receive_q100k_us", q100k, "us"),
                Figure::new("selective_receive_q100k_vs_q0", q100k / q0, "ratio"),
            ]
        }),
        Group::new("call_rtt", move || {
            let c0 = median(runs, || call_rtt(0, sel_rounds));
            let c100k = median(runs, || call_rtt(100_000, sel_rounds));
            vec![
                Figure::new("call_rtt_q0_us", c0, "us"),
                Figure::new("call_rtt_q100k_us", c100k, "us"),
                Figure::new("call_rtt_q100k_vs_q0", c100k / c0, "ratio"),
            ]
        }),
        Group::new("port_create_kill", move || {
            let ck = median(runs, || create_kill(ports, false));
            let watched = median(runs, || create_kill(ports, true));
            vec![
                Figure::new("port_create_kill_per_s", ck, "ports/s"),
                Figure::new("port_create_mon_kill_per_s", watched, "ports/s"),
            ]
        }),
        Group::new("idle_callback_port", move || {
            let bytes = idle_port_bytes(idle, &allocated);
            vec![Figure::new("idle_callback_port_bytes", bytes, "bytes")]
        }),
    ]
}

fn node() -> Node {
    Node::anonymous()
}

/// One sender thread, one counting callback port.
fn local_send(n: u64) -> f64 {
    let node = node();
    let (done_tx, done_rx) = bounded(1);
    let mut count = 0u64;
    let p = node.port_fn(move |m: Message| {
        count += 1;
        std::hint::black_box(&m);
        if count == n {
            done_tx.send(()).unwrap();
        }
    });
    let start = Instant::now();
    for i in 0..n {
        node.snd(&p, msg!["tag", i]);
    }
    done_rx.recv().unwrap();
    let rate = n as f64 / start.elapsed().as_secs_f64();
    node.kil(&p, Reason::normal()).unwrap();
    rate
}

/// As [`local_send`], the port reading each message's tag and number (a
/// message may be cheaper to send than to read, if reading it builds
/// something).
fn local_send_read(n: u64) -> f64 {
    let node = node();
    let (done_tx, done_rx) = bounded(1);
    let (mut count, mut sum) = (0u64, 0u64);
    let p = node.port_fn(move |m: Message| {
        count += 1;
        if m.tag() == Some("tag") {
            sum = sum.wrapping_add(m[1].as_u64().unwrap_or(0));
        }
        if count == n {
            done_tx.send(std::hint::black_box(sum)).unwrap();
        }
    });
    let start = Instant::now();
    for i in 0..n {
        node.snd(&p, msg!["tag", i]);
    }
    let sum = done_rx.recv().unwrap();
    let rate = n as f64 / start.elapsed().as_secs_f64();
    assert_eq!(sum, n * (n - 1) / 2, "every message read");
    node.kil(&p, Reason::normal()).unwrap();
    rate
}

fn channel_send(n: u64) -> f64 {
    let (tx, rx) = unbounded::<Message>();
    let start = Instant::now();
    let receiver = std::thread::spawn(move || {
        let mut count = 0u64;
        while let Ok(m) = rx.recv() {
            std::hint::black_box(&m);
            count += 1;
            if count == n {
                break;
            }
        }
    });
    for i in 0..n {
        tx.send(msg!["tag", i]).unwrap();
    }
    receiver.join().unwrap();
    n as f64 / start.elapsed().as_secs_f64()
}

/// Two thread ports bouncing a message. The pong reads the ping's port
/// with `Message::port_at`, as the callback ping-pong does (see there).
fn local_pingpong(rounds: u32) -> f64 {
    let node = node();
    let (done_tx, done_rx) = bounded(1);
    let pong = node.port_thread(|mb| -> aemp::Result<()> {
        loop {
            let m = mb.get()?;
            let Some(to) = m.port_at(1) else { continue };
            mb.node().snd(&to?, msg!["pong", mb.port()]);
        }
    });
    let start_tx = {
        let (tx, rx) = bounded::<Instant>(1);
        let pong = pong.clone();
        node.port_thread(move |mb| -> aemp::Result<()> {
            let me = mb.port().clone();
            rx.recv().unwrap();
            let start = Instant::now();
            for _ in 0..rounds {
                mb.node().snd(&pong, msg!["ping", &me]);
                mb.get()?;
            }
            done_tx.send(start.elapsed()).unwrap();
            Ok(())
        });
        tx
    };
    start_tx.send(Instant::now()).unwrap();
    let took: Duration = done_rx.recv().unwrap();
    node.kil(&pong, Reason::normal()).unwrap();
    took.as_secs_f64() * 1e6 / rounds as f64
}

/// Two callback ports bouncing a message: both run on the node's
/// dispatcher thread, as two Erlang processes may share one scheduler.
/// The pong reads the ping's port with `Message::port_at`, the cheap way to
/// read an element: no vector of values is made (`m.get(1)`, through the
/// `Vec` a message derefs to, would build one, with a `String`, first).
fn callback_pingpong(rounds: u32) -> f64 {
    let node = node();
    let (done_tx, done_rx) = bounded(1);
    let pong = node.port_fn(|m: Message| {
        if let Some(Ok(to)) = m.port_at(1) {
            aemp::snd(&to, msg!["pong", aemp::self_port()]);
        }
    });
    let to_pong = pong.clone();
    let (mut left, mut start) = (rounds, None);
    let ping = node.port_fn(move |_| {
        let start = *start.get_or_insert_with(Instant::now);
        if left == 0 {
            done_tx.send(start.elapsed()).unwrap();
            return;
        }
        left -= 1;
        aemp::snd(&to_pong, msg!["ping", aemp::self_port()]);
    });
    node.snd(&ping, msg!["go"]);
    let took: Duration = done_rx.recv().unwrap();
    node.kil(&pong, Reason::normal()).unwrap();
    node.kil(&ping, Reason::normal()).unwrap();
    took.as_secs_f64() * 1e6 / rounds as f64
}

/// Two threads bouncing a counter in one atomic, each spinning on it:
/// no message, no queue, no sleep. The floor of any ping-pong between two
/// threads, which is what a thread port's is: one cache line crossing
/// between the two CPUs and back, as fast as this machine's cores (and,
/// on a virtual machine, the host's placement of them at that moment)
/// allow. Erlang's ping-pong is not bound by it: its two processes share
/// one scheduler thread. A spinner yields now and then, so that the
/// figure ends even when both threads share one CPU.
fn spin_pingpong(rounds: u32) -> f64 {
    let ball = Arc::new(AtomicU64::new(0));
    /// Waits until the counter is `want`.
    fn wait_for(ball: &AtomicU64, want: u64) {
        let mut spins = 0u32;
        while ball.load(Ordering::Acquire) != want {
            spins += 1;
            if spins % 4096 == 0 {
                std::thread::yield_now();
            }
            std::hint::spin_loop();
        }
    }
    let rounds = u64::from(rounds);
    let other = {
        let ball = ball.clone();
        std::thread::spawn(move || {
            for i in 0..rounds {
                wait_for(&ball, 2 * i + 1);
                ball.store(2 * i + 2, Ordering::Release);
            }
        })
    };
    let start = Instant::now();
    for i in 0..rounds {
        ball.store(2 * i + 1, Ordering::Release);
        wait_for(&ball, 2 * i + 2);
    }
    let took = start.elapsed();
    other.join().unwrap();
    took.as_secs_f64() * 1e6 / rounds as f64
}

fn channel_pingpong(rounds: u32) -> f64 {
    let (to_b, b_rx) = unbounded::<Message>();
    let (to_a, a_rx) = unbounded::<Message>();
    let b = std::thread::spawn(move || {
        while let Ok(m) = b_rx.recv() {
            std::hint::black_box(&m);
            if to_a.send(msg!["pong", "x"]).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    for _ in 0..rounds {
        to_b.send(msg!["ping", "x"]).unwrap();
        a_rx.recv().unwrap();
    }
    let took = start.elapsed();
    drop(to_b);
    b.join().unwrap();
    took.as_secs_f64() * 1e6 / rounds as f64
}

/// One sender thread, a thread port taking messages with `get`.
fn thread_port_send(n: u64) -> f64 {
    let node = node();
    let (done_tx, done_rx) = bounded(1);
    let p = node.port_thread(move |mb| -> aemp::Result<()> {
        for _ in 0..n {
            std::hint::black_box(mb.get()?);
        }
        done_tx.send(()).unwrap();
        Ok(())
    });
    let start = Instant::now();
    for i in 0..n {
        node.snd(&p, msg!["tag", i]);
    }
    done_rx.recv().unwrap();
    n as f64 / start.elapsed().as_secs_f64()
}

/// Mean time from sending `["x", i]` to a thread port that waits in
/// `get_tag("x")` with `queued` messages of other tags in its mailbox,
/// until it acknowledges.
fn selective_receive(queued: u32, rounds: u32) -> f64 {
    let node = node();
    let (ready_tx, ready_rx) = bounded(1);
    let (ack_tx, ack_rx) = bounded(1);
    let p = node.port_thread(move |mb| -> aemp::Result<()> {
        // Sort the backlog into the mailbox before measuring.
        while mb.get_tag_timeout("x", Duration::ZERO)?.is_none() {}
        ready_tx.send(()).unwrap();
        loop {
            let m = mb.get_tag("x")?;
            ack_tx.send(m[0].as_u64()).unwrap();
        }
    });
    for i in 0..queued {
        node.snd(&p, msg![format!("other{}", i % 16), i]);
    }
    node.snd(&p, msg!["x", "start"]);
    ready_rx.recv().unwrap();
    let start = Instant::now();
    for i in 0..rounds {
        node.snd(&p, msg!["x", i]);
        ack_rx.recv().unwrap();
    }
    let took = start.elapsed();
    node.kil(&p, Reason::normal()).unwrap();
    took.as_secs_f64() * 1e6 / rounds as f64
}

/// Mean blocking `call` round trip from a thread port with `queued`
/// unrelated messages in its mailbox, to a replying callback port.
fn call_rtt(queued: u32, rounds: u32) -> f64 {
    let node = node();
    let echo = node.port_fn(|m: Message| {
        if let Some(Ok(reply)) = m.last().map(PortId::try_from) {
            aemp::snd(&reply, msg!["re"]);
        }
    });
    let (ready_tx, ready_rx) = bounded(1);
    let (done_tx, done_rx) = bounded(1);
    let echo2 = echo.clone();
    let p = node.port_thread(move |mb| -> aemp::Result<()> {
        mb.get_tag("go")?;
        ready_tx.send(()).unwrap();
        let start = Instant::now();
        for i in 0..rounds {
            mb.call(&echo2, msg!["q", i], Duration::from_secs(10))?;
        }
        done_tx.send(start.elapsed()).unwrap();
        mb.get_tag("never")?;
        Ok(())
    });
    for i in 0..queued {
        node.snd(&p, msg!["noise", i]);
    }
    node.snd(&p, msg!["go"]);
    ready_rx.recv().unwrap();
    let took: Duration = done_rx.recv().unwrap();
    node.kil(&p, Reason::normal()).unwrap();
    node.kil(&echo, Reason::normal()).unwrap();
    took.as_secs_f64() * 1e6 / rounds as f64
}

/// Creating a callback port and killing it, until every kill was processed.
/// `watched`: with a monitor callback set in between, so that each kill
/// goes through the dispatcher (an unwatched idle port dies inside `kil`).
fn create_kill(n: u32, watched: bool) -> f64 {
    let node = node();
    let base = node.port_count();
    let fired = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    for _ in 0..n {
        let p = node.port_fn(|_| {});
        if watched {
            let fired = fired.clone();
            node.mon(&p, move |_| {
                fired.fetch_add(1, Ordering::Relaxed);
            })
            .forget();
        }
        node.kil(&p, Reason::normal()).unwrap();
    }
    while node.port_count() > base || (watched && fired.load(Ordering::Relaxed) < n as u64) {
        std::thread::yield_now();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Heap bytes per idle callback port (port table entry included).
fn idle_port_bytes(n: usize, allocated: &dyn Fn() -> usize) -> f64 {
    let node = node();
    let counter = Arc::new(AtomicU64::new(0));
    // Warm the table up so that its growth is counted fairly.
    let before = allocated();
    let ports: Vec<PortId> = (0..n)
        .map(|_| {
            let c = counter.clone();
            node.port_fn(move |_| {
                c.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();
    let after = allocated();
    // The IDs the caller keeps are not part of the port.
    let ids: usize = ports.iter().map(|p| p.as_str().len() + 16).sum::<usize>()
        + ports.capacity() * std::mem::size_of::<PortId>();
    let per_port = (after.saturating_sub(before).saturating_sub(ids)) as f64 / n as f64;
    for p in &ports {
        node.kil(p, Reason::normal()).unwrap();
    }
    per_port
}
