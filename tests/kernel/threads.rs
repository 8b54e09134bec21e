//! Thread ports and selective receive (Coro::MP): items 118–127.

use crate::{node, nothing, recv};
use aemp::{msg, reason, Error, Message, Node, Reason};
use crossbeam_channel::unbounded;
use std::time::{Duration, Instant};

#[test]
fn get_tag_takes_in_order_and_leaves_others_118() {
    let n = node();
    let (tx, rx) = unbounded();
    let (go_tx, go_rx) = unbounded::<()>();
    let p = n.port_thread(move |mb| -> aemp::Result<()> {
        go_rx.recv().unwrap();
        tx.send(mb.get_tag("x")?).unwrap();
        tx.send(mb.get_tag("x")?).unwrap();
        tx.send(mb.get()?).unwrap();
        tx.send(mb.get()?).unwrap();
        Ok(())
    });
    n.snd(&p, msg!["y", 1]);
    n.snd(&p, msg!["x", 2]);
    n.snd(&p, msg!["y", 3]);
    n.snd(&p, msg!["x", 4]);
    go_tx.send(()).unwrap();
    assert_eq!(recv(&rx), msg![2]);
    assert_eq!(recv(&rx), msg![4]);
    assert_eq!(recv(&rx), msg!["y", 1], "others stayed queued, in order");
    assert_eq!(recv(&rx), msg!["y", 3]);
}

#[test]
fn get_timeouts_119() {
    let n = node();
    let (tx, rx) = unbounded();
    n.port_thread(move |mb| -> aemp::Result<()> {
        let start = Instant::now();
        let none = mb.get_tag_timeout("x", Duration::ZERO)?;
        tx.send((none, start.elapsed())).unwrap();
        let start = Instant::now();
        let none = mb.get_tag_timeout("x", Duration::from_millis(100))?;
        tx.send((none, start.elapsed())).unwrap();
        Ok(())
    });
    let (m, took) = recv(&rx);
    assert_eq!(m, None);
    assert!(
        took < Duration::from_millis(50),
        "zero means no wait: {took:?}"
    );
    let (m, took) = recv(&rx);
    assert_eq!(m, None);
    assert!(took >= Duration::from_millis(100), "{took:?}");
}

#[test]
fn get_cond_returns_whole_message_120() {
    let n = node();
    let (tx, rx) = unbounded();
    let p = n.port_thread(move |mb| -> aemp::Result<()> {
        let m = mb.get_cond_timeout(
            |m| m.tag() == Some("d") && m[1] == "id7",
            Duration::from_secs(5),
        )?;
        tx.send(m).unwrap();
        Ok(())
    });
    n.snd(&p, msg!["d", "id1", "x"]);
    n.snd(&p, msg!["e", "id7"]);
    n.snd(&p, msg!["d", "id7", "y"]);
    assert_eq!(recv(&rx), Some(msg!["d", "id7", "y"]));
}

#[test]
fn get_returns_oldest_121() {
    let n = node();
    let (tx, rx) = unbounded();
    let (go_tx, go_rx) = unbounded::<()>();
    let p = n.port_thread(move |mb| -> aemp::Result<()> {
        go_rx.recv().unwrap();
        for _ in 0..3 {
            tx.send(mb.get_cond(|_| true)?).unwrap();
        }
        Ok(())
    });
    for i in 0..3 {
        n.snd(&p, msg![i]);
    }
    go_tx.send(()).unwrap();
    for i in 0..3 {
        assert_eq!(recv(&rx), msg![i]);
    }
}

#[test]
fn select_runs_handler_on_removed_message_122() {
    let n = node();
    let (tx, rx) = unbounded();
    type Handler = Box<dyn FnOnce(Message) -> String>;
    let p = n.port_thread(move |mb| -> aemp::Result<()> {
        for _ in 0..2 {
            let out = mb.select(|m| -> Option<Handler> {
                match m.tag() {
                    Some("add") => Some(Box::new(|m| format!("add {}", m[1]))),
                    Some("quit") => Some(Box::new(|_| "quit".into())),
                    _ => None,
                }
            })?;
            tx.send(out).unwrap();
        }
        tx.send(format!("left {}", mb.len())).unwrap();
        Ok(())
    });
    n.snd(&p, msg!["noise"]);
    n.snd(&p, msg!["add", 5]);
    n.snd(&p, msg!["quit"]);
    assert_eq!(recv(&rx), "add 5");
    assert_eq!(recv(&rx), "quit");
    assert_eq!(recv(&rx), "left 1");
}

#[test]
fn tag_callbacks_intercept_before_mailbox_123() {
    let n = node();
    let (tx, rx) = unbounded();
    let (ctx, crx) = unbounded();
    let p = n.port_thread(move |mb| -> aemp::Result<()> {
        loop {
            let m = mb.get()?;
            tx.send(m).unwrap();
        }
    });
    n.rcv(&p, "cb", move |m| ctx.send(m).unwrap()).unwrap();
    n.snd(&p, msg!["cb", 1]);
    n.snd(&p, msg!["mb", 2]);
    n.snd(&p, msg!["cb", 3]);
    assert_eq!(recv(&crx), msg![1]);
    assert_eq!(recv(&crx), msg![3]);
    assert_eq!(recv(&rx), msg!["mb", 2]);
    nothing(&rx, 50);
    n.kil(&p, Reason::normal()).unwrap();
}

#[test]
fn thread_panic_or_outside_kill_124() {
    let n = node();
    // Panics: die.
    let (gate_tx, gate_rx) = unbounded::<()>();
    let p3 = n.port_thread(move |_mb| -> () {
        gate_rx.recv().unwrap();
        panic!("thread failed")
    });
    let (dtx, drx) = unbounded();
    n.mon(&p3, move |r| dtx.send(r).unwrap()).forget();
    gate_tx.send(()).unwrap();
    assert_eq!(recv(&drx), reason!["die", "thread failed"]);

    // Killed from outside: the blocked get returns Killed.
    let (etx, erx) = unbounded();
    let p4 = n.port_thread(move |mb| {
        let r = mb.get();
        etx.send(r).unwrap();
    });
    n.kil(&p4, reason!["stop", "now"]).unwrap();
    match recv(&erx) {
        Err(Error::Killed { reason, port }) => {
            assert_eq!(reason, reason!["stop", "now"]);
            assert_eq!(port, p4);
        }
        other => panic!("expected Killed, got {other:?}"),
    }
}

#[test]
fn thread_return_is_a_normal_kill_124() {
    let n = node();
    let (gate_tx, gate_rx) = unbounded::<()>();
    let p = n.port_thread(move |_mb| {
        gate_rx.recv().unwrap();
    });
    let linked = n.port_fn(|_| {});
    n.mon_link(&p, &linked).forget();
    let (tx, rx) = unbounded();
    let tx2 = tx.clone();
    n.mon(&p, move |r| tx.send(("p", r)).unwrap()).forget();
    n.mon(&linked, move |r| tx2.send(("linked", r)).unwrap())
        .forget();
    gate_tx.send(()).unwrap();
    assert_eq!(recv(&rx), ("p", Reason::normal()));
    nothing(&rx, 50);
}

/// Adapted: in Rust, `get` needs the thread's `&mut Mailbox`, so it cannot
/// be called from a thread without a port. What remains checkable: a
/// second thread cannot attach to a port, nor a thread to a dead port.
#[test]
fn second_thread_or_dead_port_refused_125() {
    let n = node();
    let (gate_tx, gate_rx) = unbounded::<()>();
    let p = n.port_thread(move |_mb| {
        let _ = gate_rx.recv();
    });
    let err = n.rcv_thread(&p, |_mb| ()).unwrap_err();
    assert!(matches!(err, Error::ThreadAlreadyAttached { .. }), "{err}");
    gate_tx.send(()).unwrap();
    let ghost = aemp::PortId::parse(&format!("{}#ghost", n.id())).unwrap();
    let err = n.rcv_thread(&ghost, |_mb| ()).unwrap_err();
    assert!(matches!(err, Error::NoSuchPort { .. }), "{err}");
}

#[test]
fn blocking_call_126() {
    let n = node();
    let echo = n.port_fn(|m: Message| {
        let reply: aemp::PortId = m.decode::<(String, String, _)>().unwrap().2;
        aemp::snd(&reply, msg!["re", m[1].clone()]);
    });
    let silent = n.port_fn(|_| {});
    let (tx, rx) = unbounded();
    let (echo2, silent2) = (echo.clone(), silent.clone());
    n.port_thread(move |mb| -> aemp::Result<()> {
        // Unrelated queued messages are not touched by call.
        let reply = mb.call(&echo2, msg!["q", "hello"], Duration::from_secs(5))?;
        tx.send(Ok(reply)).unwrap();
        let start = Instant::now();
        let timeout = mb.call(&silent2, msg!["q", "x"], Duration::from_millis(200));
        assert!(start.elapsed() >= Duration::from_millis(200));
        tx.send(timeout).unwrap();
        // The replies went straight to call, not into this mailbox.
        tx.send(Ok(msg![mb.len()])).unwrap();
        Ok(())
    });
    assert_eq!(recv(&rx).unwrap(), msg!["re", "hello"]);
    assert!(matches!(recv(&rx), Err(Error::Timeout { .. })));
    assert_eq!(recv(&rx).unwrap(), msg![0]);
}

#[test]
fn call_from_dispatcher_is_refused_126() {
    let n = node();
    let (tx, rx) = unbounded();
    let target = n.port_fn(|_| {});
    let p = n.port_fn(move |_| {
        tx.send(aemp::call(&target, msg!["x"], Duration::from_secs(1)))
            .unwrap()
    });
    n.snd(&p, msg!["go"]);
    assert!(matches!(recv(&rx), Err(Error::WouldBlockDispatcher { .. })));
}

#[test]
fn call_to_dying_port_reports_reason_126() {
    let n = node();
    let p = n.port();
    // The bare port dies of the call's message.
    let err = n.call(&p, msg!["q"], Duration::from_secs(5)).unwrap_err();
    match err {
        Error::NoReply { reason, .. } => assert_eq!(reason.kind(), Some("unhandled_message")),
        other => panic!("{other}"),
    }
}

#[test]
fn call_without_a_bound_waits_for_the_reply_126() {
    let n = node();
    let n2 = n.clone();
    let echo = n.port_fn(move |m| {
        let reply = aemp::PortId::try_from(m.last().unwrap()).unwrap();
        n2.snd(&reply, msg!["echo", m[0].clone()]);
    });
    // A timeout past what an `Instant` can hold: no deadline.
    let reply = n.call(&echo, msg!["hi"], Duration::MAX).unwrap();
    assert_eq!(reply, msg!["echo", "hi"]);
    // And a reply later than the busy-wait's polling: taken after a sleep.
    let n3 = n.clone();
    let slow = n.port_fn(move |m| {
        let reply = aemp::PortId::try_from(m.last().unwrap()).unwrap();
        let n3 = n3.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            n3.snd(&reply, msg!["late"]);
        });
    });
    let reply = n.call(&slow, msg!["hi"], Duration::MAX).unwrap();
    assert_eq!(reply, msg!["late"]);
}

#[test]
fn rcv_thread_attaches_and_gets_fifo_127() {
    let n = node();
    let p = n.port();
    let (tx, rx) = unbounded();
    n.rcv_thread(&p, move |mb| -> aemp::Result<()> {
        for _ in 0..3 {
            tx.send(mb.get()?).unwrap();
        }
        Ok(())
    })
    .unwrap();
    for i in 0..3 {
        n.snd(&p, msg!["m", i]);
    }
    for i in 0..3 {
        assert_eq!(recv(&rx), msg!["m", i]);
    }
}

/// A finished thread port's OS thread runs a later thread port (of any
/// node): each one still runs in its own context (its port, its node).
#[test]
fn finished_port_threads_are_reused_with_a_fresh_context() {
    let (a, b) = (Node::new("reuse-a").unwrap(), Node::new("reuse-b").unwrap());
    let mut threads = std::collections::HashSet::new();
    let mut reused = 0;
    for round in 0..50 {
        let node = if round % 2 == 0 { &a } else { &b };
        // A rendezvous: the port lives until the monitor below is set
        // (else it may fire for a port already gone, `no_such_port`).
        let (tx, rx) = crossbeam_channel::bounded(0);
        let p = node.port_thread(move |mb| {
            // A port made here belongs to the current node.
            let made = aemp::port();
            tx.send((
                std::thread::current().id(),
                aemp::self_port(),
                made,
                mb.port().clone(),
            ))
            .unwrap();
        });
        let (died_tx, died) = crossbeam_channel::bounded(1);
        node.mon(&p, move |r| died_tx.send(r).unwrap()).forget();
        let (thread, me, made, port) = recv(&rx);
        assert_eq!(me.as_ref(), Some(&p), "round {round}");
        assert_eq!(port, p);
        assert_eq!(made.node(), node.id().as_str(), "round {round}");
        assert!(recv(&died).is_normal());
        reused += usize::from(!threads.insert(thread));
    }
    assert!(reused > 0, "no thread was reused in 50 rounds");
}
