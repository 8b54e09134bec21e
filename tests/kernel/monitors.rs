//! peval/psub and mon/kil: items 21–40.

use crate::{eventually, node, nothing, recv};
use aemp::{msg, reason, Error, Reason};
use crossbeam_channel::unbounded;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn peval_panic_kills_and_returns_none_21() {
    let n = node();
    let p = n.port_fn(|_| {});
    let (tx, rx) = unbounded();
    n.mon(&p, move |r| tx.send(r).unwrap()).forget();
    let out: Option<()> = n.peval(&p, || panic!("bad"));
    assert_eq!(out, None);
    assert_eq!(recv(&rx), reason!["die", "bad"]);
}

#[test]
fn peval_returns_value_22() {
    let n = node();
    let p = n.port_fn(|_| {});
    assert_eq!(n.peval(&p, || (aemp::self_port(), 7)), Some((Some(p), 7)));
    assert_eq!(aemp::self_port(), None, "context restored");
}

#[test]
fn psub_outside_port_context_fails_23() {
    let err = aemp::psub(|| ()).err().expect("psub outside a port");
    assert!(
        matches!(err, Error::NoCurrentPort { what: "psub" }),
        "{err}"
    );
}

#[test]
fn psub_from_timer_runs_in_port_context_24() {
    let n = node();
    let (tx, rx) = unbounded();
    let (dtx, drx) = unbounded();
    let p = n.port_fn(move |_m| {
        let tx = tx.clone();
        let mut first = true;
        let mut f = aemp::psub(move || {
            tx.send(aemp::self_port()).unwrap();
            if !first {
                panic!("second run fails");
            }
            first = false;
        })
        .unwrap();
        let mut g = aemp::psub(|| ()).unwrap();
        g();
        aemp::after_fn(Duration::from_millis(10), move || {
            f();
            f();
        });
    });
    n.mon(&p, move |r| dtx.send(r).unwrap()).forget();
    n.snd(&p, msg!["go"]);
    assert_eq!(recv(&rx), Some(p.clone()));
    assert_eq!(recv(&rx), Some(p.clone()));
    assert_eq!(recv(&drx), reason!["die", "second run fails"]);
}

#[test]
fn plain_timer_closure_panic_kills_nothing_25() {
    let n = node();
    let (tx, rx) = unbounded();
    let (dtx, drx) = unbounded();
    let p = n.port_fn(move |m| {
        if m.tag() == Some("go") {
            let tx = tx.clone();
            aemp::after_fn(Duration::from_millis(5), move || {
                tx.send(aemp::self_port()).unwrap();
                panic!("timer closure fails");
            });
        }
    });
    n.mon(&p, move |r| dtx.send(r).unwrap()).forget();
    n.snd(&p, msg!["go"]);
    assert_eq!(recv(&rx), None, "timer closures run outside port context");
    nothing(&drx, 100);
}

#[test]
fn mon_fires_after_kil_not_inside_26() {
    let n = node();
    let p = n.port_fn(|_| {});
    let (tx, rx) = unbounded();
    n.mon(&p, move |r| {
        tx.send((r, std::thread::current().id())).unwrap()
    })
    .forget();
    n.kil(&p, Reason::normal()).unwrap();
    let (r, thread) = recv(&rx);
    assert!(r.is_normal());
    assert_ne!(thread, std::thread::current().id(), "not run inside kil");
}

#[test]
fn kil_reason_reaches_monitors_27() {
    let n = node();
    let p = n.port_fn(|_| {});
    let (tx, rx) = unbounded();
    n.mon(&p, move |r| tx.send(r).unwrap()).forget();
    n.kil(&p, reason!["err", "x"]).unwrap();
    assert_eq!(recv(&rx), reason!["err", "x"]);
}

#[test]
fn linked_ports_die_only_on_error_28() {
    let n = node();
    let (p, q) = (n.port_fn(|_| {}), n.port_fn(|_| {}));
    let (tx, rx) = unbounded();
    let tx2 = tx.clone();
    n.mon_link(&p, &q).forget();
    n.mon(&q, move |r| tx.send(("q", r)).unwrap()).forget();
    n.kil(&p, Reason::normal()).unwrap();
    nothing(&rx, 50);
    let (p2, q2) = (n.port_fn(|_| {}), n.port_fn(|_| {}));
    n.mon_link(&p2, &q2).forget();
    n.mon(&q2, move |r| tx2.send(("q2", r)).unwrap()).forget();
    n.kil(&p2, reason!["e", "m"]).unwrap();
    assert_eq!(recv(&rx), ("q2", reason!["e", "m"]));
    // q survived: it still processes messages.
    let (etx, erx) = unbounded();
    n.rcv_default(&q, move |m| etx.send(m).unwrap()).unwrap();
    n.snd(&q, msg!["alive"]);
    assert_eq!(recv(&erx), msg!["alive"]);
}

#[test]
fn mon_self_links_to_current_port_29() {
    let n = node();
    let p = n.port_fn(|_| {});
    let (tx, rx) = unbounded();
    let p2 = p.clone();
    // q links p to itself, then answers on the reply port in element 1.
    let q = n.port_fn(move |m| {
        aemp::mon_self(&p2).unwrap().forget();
        let reply: aemp::PortId = m.decode::<(String, _)>().unwrap().1;
        aemp::snd(&reply, msg!["linked"]);
    });
    n.mon(&q, move |r| tx.send(r).unwrap()).forget();
    assert_eq!(
        n.call(&q, msg!["link"], Duration::from_secs(5)).unwrap(),
        msg!["linked"]
    );
    n.kil(&p, reason!["boom"]).unwrap();
    assert_eq!(recv(&rx), reason!["boom"]);
    let err = n.mon_self(&n.port()).unwrap_err();
    assert!(matches!(err, Error::NoCurrentPort { .. }), "{err}");
}

#[test]
fn mon_send_appends_reason_30() {
    let n = node();
    let (tx, rx) = unbounded();
    let r = n.port_fn(move |m| tx.send(m).unwrap());
    let (p1, p2) = (n.port_fn(|_| {}), n.port_fn(|_| {}));
    n.mon_send(&p1, &r, msg!["tag", 1]).forget();
    n.mon_send(&p2, &r, msg!["tag", 2]).forget();
    n.kil(&p1, reason!["e", "m"]).unwrap();
    assert_eq!(recv(&rx), msg!["tag", 1, "e", "m"]);
    n.kil(&p2, Reason::normal()).unwrap();
    assert_eq!(recv(&rx), msg!["tag", 2]);
}

#[test]
fn mon_nonexistent_port_31() {
    let n = node();
    let ghost = aemp::PortId::parse(&format!("{}#ghost", n.id())).unwrap();
    let (tx, rx) = unbounded();
    n.mon(&ghost, move |r| tx.send(r).unwrap()).forget();
    assert_eq!(
        recv(&rx),
        reason![
            "no_such_port",
            "cannot monitor nonexistent port",
            ghost.as_str()
        ]
    );
}

/// Adapted: aemp delivers every message through the dispatcher, so a
/// monitor set right after `snd` may still see the port alive. A monitor
/// set once the port died of its first message gets `no_such_port`.
#[test]
fn mon_after_death_by_first_message_is_no_such_port_32() {
    let n = node();
    let p = n.port();
    let (tx, rx) = unbounded();
    let tx2 = tx.clone();
    n.mon(&p, move |r| tx.send(r).unwrap()).forget();
    n.snd(&p, msg!["x"]);
    assert_eq!(recv(&rx).kind(), Some("unhandled_message"));
    n.mon(&p, move |r| tx2.send(r).unwrap()).forget();
    assert_eq!(recv(&rx).kind(), Some("no_such_port"));
}

#[test]
fn monitors_are_one_shot_33() {
    let n = node();
    let p = n.port_fn(|_| {});
    let (tx, rx) = unbounded();
    n.mon(&p, move |r| tx.send(r).unwrap()).forget();
    n.kil(&p, reason!["a"]).unwrap();
    n.kil(&p, reason!["b"]).unwrap();
    assert_eq!(recv(&rx), reason!["a"]);
    nothing(&rx, 50);
}

#[test]
fn dropped_guard_never_fires_34() {
    let n = node();
    let p = n.port_fn(|_| {});
    let (tx, rx) = unbounded();
    let tx2 = tx.clone();
    let guard = n.mon(&p, move |_| tx.send("dropped").unwrap());
    drop(guard);
    n.mon(&p, move |_| tx2.send("kept").unwrap()).forget();
    n.kil(&p, Reason::normal()).unwrap();
    assert_eq!(recv(&rx), "kept");
    nothing(&rx, 50);
    // The same for a monitor that would fire with no_such_port. Its firing
    // is a dispatcher task: hold the dispatcher busy until the guard is
    // gone, or the task may run between `mon` and `drop`.
    let (started_tx, started) = unbounded();
    let (release, released) = unbounded::<()>();
    let blocker = n.port_fn(move |_| {
        started_tx.send(()).unwrap();
        let _ = released.recv();
    });
    n.snd(&blocker, msg!["block"]);
    recv(&started);
    let (tx3, rx3) = unbounded();
    drop(n.mon(&p, move |_| tx3.send(()).unwrap()));
    release.send(()).unwrap();
    nothing(&rx3, 50);
}

#[test]
fn two_monitors_both_fire_35() {
    let n = node();
    let p = n.port_fn(|_| {});
    let (tx, rx) = unbounded();
    let tx2 = tx.clone();
    n.mon(&p, move |_| tx.send(1).unwrap()).forget();
    n.mon(&p, move |_| tx2.send(2).unwrap()).forget();
    n.kil(&p, Reason::normal()).unwrap();
    let mut got = vec![recv(&rx), recv(&rx)];
    got.sort();
    assert_eq!(got, vec![1, 2]);
}

#[test]
fn killing_node_port_is_an_error_36() {
    let n = node();
    let err = n.kil(n.node_port(), Reason::normal()).unwrap_err();
    assert!(matches!(err, Error::KillNodePort { .. }));
    assert!(err.to_string().contains(n.id().as_str()), "{err}");
}

#[test]
fn killing_dead_or_unknown_port_is_a_no_op_37() {
    let n = node();
    let p = n.port_fn(|_| {});
    let (tx, rx) = unbounded();
    n.mon(&p, move |r| tx.send(r).unwrap()).forget();
    n.kil(&p, reason!["first"]).unwrap();
    assert_eq!(recv(&rx), reason!["first"]);
    n.kil(&p, reason!["again"]).unwrap();
    let ghost = aemp::PortId::parse(&format!("{}#ghost", n.id())).unwrap();
    n.kil(&ghost, reason!["x"]).unwrap();
    nothing(&rx, 50);
}

#[test]
fn messages_after_kil_are_not_delivered_38() {
    let n = node();
    let (tx, rx) = unbounded();
    let p = n.port_fn(move |m| tx.send(m).unwrap());
    n.snd(&p, msg!["before"]);
    n.kil(&p, Reason::normal()).unwrap();
    n.snd(&p, msg!["after"]);
    assert_eq!(recv(&rx), msg!["before"]);
    nothing(&rx, 100);
}

/// An idle callback port has nothing to process before its kill: it is
/// gone when `kil` returns, its callbacks dropped, its monitors fired later
/// on the dispatcher. A port with queued messages processes them first.
#[test]
fn kil_of_idle_port_takes_effect_at_once() {
    let n = node();
    let captured = Arc::new(());
    let held = captured.clone();
    let (tx, rx) = unbounded();
    let p = n.port_fn(move |m| {
        let _ = &held;
        tx.send(m).unwrap();
    });
    let (mtx, mrx) = unbounded();
    n.mon(&p, move |r| {
        mtx.send((r, std::thread::current().id())).unwrap()
    })
    .forget();
    let before = n.port_count();
    n.kil(&p, reason!["gone"]).unwrap();
    assert_eq!(n.port_count(), before - 1, "the port left the table in kil");
    assert_eq!(Arc::strong_count(&captured), 1, "its callback was dropped");
    let (reason, ran_on) = recv(&mrx);
    assert_eq!(reason, reason!["gone"]);
    assert_ne!(ran_on, std::thread::current().id(), "not inside kil");
    n.snd(&p, msg!["late"]);
    nothing(&rx, 50);
    let (ltx, lrx) = unbounded();
    n.mon(&p, move |r| ltx.send(r).unwrap()).forget();
    assert_eq!(recv(&lrx).0[0], "no_such_port");

    // Busy: the queued message is processed before the kill.
    let (qtx, qrx) = unbounded();
    let q = n.port_fn(move |m| {
        std::thread::sleep(Duration::from_millis(20));
        qtx.send(m).unwrap();
    });
    let (dtx, drx) = unbounded();
    n.mon(&q, move |r| dtx.send(r).unwrap()).forget();
    n.snd(&q, msg!["first"]);
    n.kil(&q, reason!["watched"]).unwrap();
    assert_eq!(recv(&qrx), msg!["first"]);
    assert_eq!(recv(&drx), reason!["watched"]);
}

#[test]
fn panicking_monitor_callback_is_contained_39() {
    let n = node();
    let p = n.port_fn(|_| {});
    let (tx, rx) = unbounded();
    let tx2 = tx.clone();
    n.mon(&p, |_| panic!("monitor fails")).forget();
    n.mon(&p, move |_| tx.send("other monitor").unwrap())
        .forget();
    n.kil(&p, Reason::normal()).unwrap();
    assert_eq!(recv(&rx), "other monitor");
    let q = n.port_fn(move |_| tx2.send("still working").unwrap());
    n.snd(&q, msg![1]);
    assert_eq!(recv(&rx), "still working");
}

#[test]
fn mon_guard_keeps_value_until_death_40() {
    let n = node();
    let p = n.port_fn(|_| {});
    let value = Arc::new(5);
    n.mon_guard(&p, value.clone()).forget();
    assert_eq!(Arc::strong_count(&value), 2);
    n.kil(&p, Reason::normal()).unwrap();
    eventually(|| Arc::strong_count(&value) == 1);

    let q = n.port_fn(|_| {});
    let guard = n.mon_guard(&q, value.clone());
    assert_eq!(Arc::strong_count(&value), 2);
    drop(guard);
    assert_eq!(Arc::strong_count(&value), 1, "dropping the guard frees it");
}
