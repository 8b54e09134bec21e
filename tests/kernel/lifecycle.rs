//! A node's lifecycle: shutdown, waiting for it, and what a node does
//! after it (issue 13, item 2).

use super::*;
use aemp::{msg, Error, Reason};
use crossbeam_channel::{unbounded, Sender};

/// Monitors `port`, sending `(i, reason)` to `tx` when it dies.
fn watch(
    node: &aemp::Node,
    port: &aemp::PortId,
    i: usize,
    tx: &Sender<(usize, Reason)>,
) -> aemp::MonGuard {
    let tx = tx.clone();
    node.mon(port, move |r| tx.send((i, r)).unwrap())
}

/// Runs `f` with a handle on `node` on a thread of its own; its result
/// arrives on the channel.
fn on_thread<T: Send + 'static>(
    node: &aemp::Node,
    f: impl FnOnce(aemp::Node) -> T + Send + 'static,
) -> crossbeam_channel::Receiver<T> {
    let (tx, rx) = unbounded();
    let node = node.clone();
    std::thread::spawn(move || tx.send(f(node)).unwrap());
    rx
}

#[test]
fn shutdown_kills_every_port_and_fires_each_monitor_once() {
    let n = node();
    let (tx, fired) = unbounded();
    let idle = n.port_fn(|_| {});
    let bare = n.port();
    let (started, running) = unbounded();
    let thread = n.port_thread(move |mb| -> aemp::Result<()> {
        started.send(()).unwrap();
        loop {
            mb.get()?;
        }
    });
    recv(&running);
    let _guards: Vec<_> = [&idle, &bare, &thread, &idle]
        .into_iter()
        .enumerate()
        .map(|(i, p)| watch(&n, p, i, &tx))
        .collect();
    assert_eq!(n.port_count(), 4);
    n.shutdown();
    assert!(n.is_shutting_down() && n.is_shut_down());
    assert_eq!(n.port_count(), 1, "only the node port is left");
    // Every monitor fired before shutdown returned, once.
    let mut got: Vec<usize> = fired
        .try_iter()
        .map(|(i, r)| {
            assert_eq!(r, Reason::shutdown());
            i
        })
        .collect();
    got.sort();
    assert_eq!(got, vec![0, 1, 2, 3]);
}

#[test]
fn messages_queued_before_the_shutdown_are_processed_first() {
    let n = node();
    let (tx, rx) = unbounded();
    let p = n.port_fn(move |m| tx.send(m).unwrap());
    for i in 0..1000 {
        n.snd(&p, msg![i]);
    }
    n.shutdown();
    assert_eq!(rx.try_iter().count(), 1000);
}

#[test]
fn wait_returns_after_a_shutdown_from_another_thread() {
    let n = node();
    let done = on_thread(&n, |n| {
        n.wait().unwrap();
        n.is_shut_down()
    });
    let stopped = on_thread(&n, |n| n.shutdown());
    assert!(recv(&done));
    recv(&stopped);
    // Once shut down, wait returns at once.
    n.wait().unwrap();
}

#[test]
fn shutdown_inside_a_callback_does_not_deadlock() {
    let n = node();
    let (tx, fired) = unbounded();
    let (seen_tx, seen) = unbounded();
    let stopper = n.port_fn(move |_| {
        let node = aemp::node();
        node.shutdown();
        // On the dispatcher: returns at once; a second call too, and
        // waiting is refused.
        node.shutdown();
        seen_tx
            .send((node.is_shutting_down(), node.wait().is_err()))
            .unwrap();
    });
    let other = n.port_fn(|_| {});
    let _g0 = watch(&n, &stopper, 0, &tx);
    let _g1 = watch(&n, &other, 1, &tx);
    n.snd(&stopper, msg!["stop"]);
    assert_eq!(recv(&seen), (true, true));
    n.wait().unwrap();
    assert!(n.is_shut_down());
    let mut got: Vec<(usize, Reason)> = fired.try_iter().collect();
    got.sort_by_key(|(i, _)| *i);
    assert_eq!(got, vec![(0, Reason::shutdown()), (1, Reason::shutdown())]);
}

#[test]
fn shutdown_is_idempotent_and_concurrent_calls_all_wait_for_it() {
    let n = node();
    let (tx, fired) = unbounded();
    let p = n.port_fn(|_| {});
    let _guard = watch(&n, &p, 0, &tx);
    let callers: Vec<_> = (0..4)
        .map(|i| {
            on_thread(&n, move |n| {
                n.shutdown_with(aemp::reason!["stop", i]);
                n.is_shut_down()
            })
        })
        .collect();
    for c in callers {
        assert!(recv(&c), "shutdown returned before it completed");
    }
    n.shutdown();
    let got: Vec<(usize, Reason)> = fired.try_iter().collect();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1.kind(), Some("stop"));
}

#[test]
fn the_dispatcher_thread_has_ended_when_shutdown_returns() {
    struct OnExit(Sender<()>);
    impl Drop for OnExit {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    thread_local! {
        static EXIT: std::cell::RefCell<Option<OnExit>> = const { std::cell::RefCell::new(None) };
    }
    let n = node();
    let (tx, ended) = unbounded();
    let (set_tx, set) = unbounded();
    let p = n.port_fn(move |_| {
        EXIT.with(|e| *e.borrow_mut() = Some(OnExit(tx.clone())));
        set_tx.send(()).unwrap();
    });
    n.snd(&p, msg!["set"]);
    recv(&set);
    assert!(ended.try_recv().is_err());
    n.shutdown();
    // The thread's locals were dropped: it ended, and was joined.
    assert!(ended.try_recv().is_ok());
}

#[test]
fn after_a_shutdown_ports_are_dead_at_birth_and_sends_are_dropped() {
    let n = node();
    let old = n.port_fn(|_| panic!("no message may arrive"));
    n.shutdown();
    n.snd(&old, msg!["late"]);
    let p = n.port_fn(|_| {});
    assert!(matches!(
        n.rcv(&p, "x", |_| {}),
        Err(Error::NoSuchPort { .. })
    ));
    let (tx, rx) = unbounded();
    n.port_thread(move |mb| tx.send(mb.get().is_err()).unwrap());
    assert!(recv(&rx), "a thread port's get fails at once");
    assert_eq!(n.port_count(), 1);
}

#[test]
fn wait_for_termination_returns_none_after_a_shutdown_by_other_means() {
    let n = node();
    let rx = on_thread(&n, |n| n.wait_for_termination().unwrap());
    n.shutdown();
    assert_eq!(recv(&rx), None);
    // Already shut down: returns at once.
    assert_eq!(n.wait_for_termination().unwrap(), None);
}

#[test]
fn a_thread_port_may_shut_its_node_down() {
    let n = node();
    let (tx, rx) = unbounded();
    let p = n.port_thread(move |mb| {
        mb.get().unwrap(); // "go", once the monitor is in place
        mb.node().shutdown();
        // Its own port died meanwhile, like every other.
        tx.send((mb.node().is_shut_down(), mb.get().is_err()))
            .unwrap();
    });
    let (tx2, fired) = unbounded();
    let _g = watch(&n, &p, 0, &tx2);
    n.snd(&p, msg!["go"]);
    assert_eq!(recv(&rx), (true, true));
    n.wait().unwrap();
    assert_eq!(fired.try_recv().unwrap(), (0, Reason::shutdown()));
}
