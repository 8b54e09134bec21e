//! Ports, rcv, snd and ordering: items 1–16 and 20.

use crate::{node, nothing, recv};
use aemp::{msg, reason, Error, Message, PortId, Reason};
use crossbeam_channel::unbounded;
use std::collections::HashSet;

#[test]
fn port_id_names_node_1() {
    let n = node();
    let p = n.port();
    assert!(p.as_str().starts_with(&format!("{}#", n.id())));
    assert!(!p.name().is_empty());
    assert_eq!(p.node(), n.id().as_str());
    assert_eq!(&p.node_id(), n.id());
    assert!(n.port_is_local(&p));
    let other: PortId = "elsewhere#x".parse().unwrap();
    assert!(!n.port_is_local(&other));
}

#[test]
fn port_ids_never_repeat_2() {
    let n = node();
    let mut seen = HashSet::new();
    for i in 0..20_000 {
        let p = n.port_fn(|_| {});
        assert!(seen.insert(p.clone()), "repeated port ID {p}");
        if i % 2 == 0 {
            n.kil(&p, Reason::normal()).unwrap();
        }
    }
}

#[test]
fn port_fn_gets_whole_message_with_self_set_3() {
    let n = node();
    let (tx, rx) = unbounded();
    let p = n.port_fn(move |m| tx.send((m, aemp::self_port())).unwrap());
    n.snd(&p, msg!["tag", 1, "two"]);
    let (m, me) = recv(&rx);
    assert_eq!(m, msg!["tag", 1, "two"]);
    assert_eq!(me, Some(p));
    assert_eq!(aemp::self_port(), None);
}

#[test]
fn bare_port_dies_on_first_message_4() {
    let n = node();
    let p = n.port();
    let (tx, rx) = unbounded();
    n.mon(&p, move |r| tx.send(r).unwrap()).forget();
    n.snd(&p, msg!["hello\u{1}world", 1]);
    let r = recv(&rx);
    assert_eq!(r.kind(), Some("unhandled_message"));
    assert_eq!(
        r[1], "no callback found for message 'hello.world'",
        "reason names the tag: {r}"
    );
}

#[test]
fn tag_callback_gets_message_without_tag_5() {
    let n = node();
    let (tx, rx) = unbounded();
    let tx2 = tx.clone();
    let p = n.port_fn(move |m| tx.send(("default", m)).unwrap());
    n.rcv(&p, "a", move |m| tx2.send(("a", m)).unwrap())
        .unwrap();
    n.snd(&p, msg!["a", 1]);
    n.snd(&p, msg!["b", 2]);
    assert_eq!(recv(&rx), ("a", msg![1]));
    assert_eq!(recv(&rx), ("default", msg!["b", 2]));
}

#[test]
fn rcv_remove_unregisters_6() {
    let n = node();
    let (tx, rx) = unbounded();
    let tx2 = tx.clone();
    let p = n.port_fn(move |m| tx.send(("default", m)).unwrap());
    n.rcv(&p, "a", move |m| tx2.send(("a", m)).unwrap())
        .unwrap();
    n.snd(&p, msg!["a", 1]);
    n.rcv_remove(&p, "a").unwrap();
    n.snd(&p, msg!["a", 2]);
    assert_eq!(recv(&rx), ("a", msg![1]));
    assert_eq!(recv(&rx), ("default", msg!["a", 2]));
}

#[test]
fn rcv_returns_the_port_7() {
    let n = node();
    let (tx, rx) = unbounded();
    let p = n.rcv(&n.port(), "a", move |m| tx.send(m).unwrap()).unwrap();
    n.snd(&p, msg!["a", "x"]);
    assert_eq!(recv(&rx), msg!["x"]);
}

#[test]
fn rcv_on_remote_port_fails_8() {
    let n = node();
    let remote: PortId = "other-node#abc".parse().unwrap();
    let err = n.rcv(&remote, "a", |_| {}).unwrap_err();
    assert!(matches!(err, Error::NotLocal { .. }), "{err}");
    assert!(err.to_string().contains("other-node#abc"), "{err}");
}

#[test]
fn panic_in_callback_kills_with_die_9() {
    let n = node();
    let p = n.port_fn(|_| {});
    n.rcv(&p, "boom", |_| panic!("it broke\n")).unwrap();
    let (tx, rx) = unbounded();
    n.mon(&p, move |r| tx.send(r).unwrap()).forget();
    n.snd(&p, msg!["boom"]);
    assert_eq!(recv(&rx), reason!["die", "it broke"]);
}

#[test]
fn default_callback_can_be_replaced_10() {
    let n = node();
    let (tx, rx) = unbounded();
    let tx2 = tx.clone();
    let p = n.port_fn(move |m| tx.send(("old", m)).unwrap());
    n.snd(&p, msg![1]);
    n.rcv_default(&p, move |m| tx2.send(("new", m)).unwrap())
        .unwrap();
    n.snd(&p, msg![2]);
    assert_eq!(recv(&rx), ("old", msg![1]));
    assert_eq!(recv(&rx), ("new", msg![2]));
}

#[test]
fn spawned_tag_only_port_ignores_unmatched_11() {
    let n = node();
    let (tx, rx) = unbounded();
    n.register("t11::init", move |_args| {
        let tx = tx.clone();
        let me = aemp::self_port().unwrap();
        aemp::rcv(&me, "a", move |m| tx.send(m).unwrap()).unwrap();
    });
    let p = n.spawn(n.id(), "t11::init", msg![]).unwrap();
    let (dtx, drx) = unbounded();
    n.mon(&p, move |r| dtx.send(r).unwrap()).forget();
    n.snd(&p, msg!["unmatched"]);
    n.snd(&p, msg!["a", 1]);
    assert_eq!(recv(&rx), msg![1]);
    nothing(&drx, 50);
}

#[test]
fn tag_callback_unregisters_itself_12() {
    let n = node();
    let (tx, rx) = unbounded();
    let tx2 = tx.clone();
    let p = n.port_fn(move |m| tx.send(("default", m)).unwrap());
    n.rcv(&p, "once", move |m| {
        aemp::rcv_remove(&aemp::self_port().unwrap(), "once").unwrap();
        tx2.send(("once", m)).unwrap();
    })
    .unwrap();
    // Both are queued before the first is processed.
    n.snd(&p, msg!["once", 1]);
    n.snd(&p, msg!["once", 2]);
    assert_eq!(recv(&rx), ("once", msg![1]));
    assert_eq!(recv(&rx), ("default", msg!["once", 2]));
}

#[test]
fn thousand_messages_in_order_13() {
    let n = node();
    let (tx, rx) = unbounded();
    let p = n.port_fn(move |m| tx.send(m[1].as_u64().unwrap()).unwrap());
    for i in 0..1000u64 {
        n.snd(&p, msg!["n", i]);
    }
    for i in 0..1000u64 {
        assert_eq!(recv(&rx), i);
    }
}

#[test]
fn snd_to_nonexistent_port_is_dropped_14() {
    let n = node();
    let (tx, rx) = unbounded();
    let p = n.port_fn(move |m| tx.send(m).unwrap());
    let ghost = PortId::parse(&format!("{}#nosuchname", n.id())).unwrap();
    let before = n.port_count();
    n.snd(&ghost, msg!["lost"]);
    assert_eq!(n.port_count(), before, "sending creates nothing");
    n.snd(&p, msg!["after"]);
    assert_eq!(recv(&rx), msg!["after"]);
}

#[test]
fn snd_list_with_port_first_15() {
    let n = node();
    let (tx, rx) = unbounded();
    let p = n.port_fn(move |m| tx.send(m).unwrap());
    n.snd_list(msg![&p, "x", 1]).unwrap();
    n.snd(&p, msg!["x", 2]);
    assert_eq!(recv(&rx), msg!["x", 1]);
    assert_eq!(recv(&rx), msg!["x", 2]);
}

#[test]
fn deep_ping_pong_does_not_blow_the_stack_16() {
    let n = node();
    let (tx, rx) = unbounded();
    let a = n.port();
    let b = n.port();
    let (a2, b2) = (a.clone(), b.clone());
    n.rcv_default(&a, move |m: Message| {
        let i = m[0].as_u64().unwrap();
        if i == 200_000 {
            tx.send(i).unwrap();
        } else {
            aemp::snd(&b2, msg![i + 1]);
        }
    })
    .unwrap();
    n.rcv_default(&b, move |m: Message| {
        aemp::snd(&a2, msg![m[0].as_u64().unwrap() + 1])
    })
    .unwrap();
    n.snd(&a, msg![0]);
    assert_eq!(recv(&rx), 200_000);
}

#[test]
fn empty_node_id_is_refused_20() {
    let n = node();
    assert!(matches!(
        PortId::parse("#abc"),
        Err(Error::InvalidPortId { .. })
    ));
    let err = n.snd_list(msg!["#abc", "x"]).unwrap_err();
    assert!(err.to_string().contains("#abc"), "{err}");
    assert!(n.snd_list(msg![]).is_err());
    assert!(n.snd_list(msg![42]).is_err());
    assert!(aemp::NodeId::new("").is_err());
}

/// A port's callbacks may outlive its node in a thread's memo of the last
/// port it sent to; when that thread exits, their captures are dropped
/// there, and a send from such a destructor must still work.
#[test]
fn send_from_a_destructor_at_thread_exit() {
    struct SendsOnDrop(aemp::Node, PortId);
    impl Drop for SendsOnDrop {
        fn drop(&mut self) {
            let on = std::thread::current().name().map(String::from);
            self.0.snd(&self.1, msg!["dropped", on]);
        }
    }
    let observer = node();
    let (tx, rx) = unbounded();
    let inbox = observer.port_fn(move |m| tx.send(m).unwrap());
    let (observer2, inbox2) = (observer.clone(), inbox.clone());
    std::thread::Builder::new()
        .name("exiting".into())
        .spawn(move || {
            let short_lived = aemp::Node::anonymous();
            let guard = SendsOnDrop(observer2, inbox2);
            let (ack_tx, ack_rx) = unbounded();
            let p = short_lived.port_fn(move |_| {
                let _ = &guard;
                ack_tx.send(()).unwrap();
            });
            short_lived.snd(&p, msg!["remember me"]);
            recv(&ack_rx);
            // Let the dispatcher let go of the node, so that dropping it
            // here leaves this thread's memo the port's last owner.
            std::thread::sleep(std::time::Duration::from_millis(50));
            drop(short_lived);
        })
        .unwrap()
        .join()
        .expect("the thread exits cleanly");
    assert_eq!(recv(&rx), msg!["dropped", "exiting"]);
}

/// A thread sending to two ports in turn (its memo of recent cells holds
/// both) delivers each port's messages in order, and once one of them is
/// dead its messages are dropped while the other's still arrive.
#[test]
fn alternating_sends_to_two_ports_keep_order_and_see_a_kill() {
    let n = node();
    let (tx, rx) = unbounded();
    let tx2 = tx.clone();
    let a = n.port_fn(move |m| tx.send(("a", m)).unwrap());
    let b = n.port_fn(move |m| tx2.send(("b", m)).unwrap());
    for i in 0..1000 {
        n.snd(&a, msg![i]);
        n.snd(&b, msg![i]);
    }
    let (mut next_a, mut next_b) = (0, 0);
    for _ in 0..2000 {
        match recv(&rx) {
            ("a", m) => {
                assert_eq!(m, msg![next_a]);
                next_a += 1;
            }
            (_, m) => {
                assert_eq!(m, msg![next_b]);
                next_b += 1;
            }
        }
    }
    let (dead_tx, dead_rx) = unbounded();
    n.mon(&a, move |r| dead_tx.send(r).unwrap()).forget();
    n.kil(&a, Reason::normal()).unwrap();
    assert_eq!(recv(&dead_rx), Reason::normal());
    n.snd(&a, msg!["late"]);
    n.snd(&b, msg!["still"]);
    assert_eq!(recv(&rx), ("b", msg!["still"]));
    nothing(&rx, 50);
}

/// Two callback ports bouncing a message for as long as they like (the
/// dispatcher keeps the ports it schedules itself in a queue of its own)
/// do not shut out what other threads queue meanwhile: a message to a
/// third port, a timer's closure, a port killed from outside.
#[test]
fn an_endless_callback_ping_pong_lets_others_run() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let n = node();
    let bounces = Arc::new(AtomicU64::new(0));
    let counted = bounces.clone();
    let bounce = move |m: Message| {
        counted.fetch_add(1, Ordering::Relaxed);
        if let Some(Ok(to)) = m.port_at(1) {
            aemp::snd(&to, msg!["ball", aemp::self_port()]);
        }
    };
    let a = n.port_fn(bounce.clone());
    let b = n.port_fn(bounce);
    n.snd(&a, msg!["ball", &b]);
    crate::eventually(|| bounces.load(Ordering::Relaxed) > 1000);
    let (tx, rx) = unbounded();
    let tx2 = tx.clone();
    let other = n.port_fn(move |m| tx.send(m).unwrap());
    n.snd(&other, msg!["while bouncing"]);
    assert_eq!(recv(&rx), msg!["while bouncing"]);
    let _timer = n.after_fn(std::time::Duration::from_millis(1), move || {
        tx2.send(msg!["timer"]).unwrap()
    });
    assert_eq!(recv(&rx), msg!["timer"]);
    let (dead_tx, dead_rx) = unbounded();
    n.mon(&a, move |r| dead_tx.send(r).unwrap()).forget();
    n.kil(&a, Reason::normal()).unwrap();
    assert_eq!(recv(&dead_rx), Reason::normal());
    n.kil(&b, Reason::normal()).unwrap();
}
