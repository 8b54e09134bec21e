//! spawn, after, cal and identity: items 49–54 and 57–62.

use crate::{node, nothing, recv};
use aemp::{msg, reason, Error, Message, Reason};
use crossbeam_channel::unbounded;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn spawn_returns_before_init_runs_49() {
    let n = node();
    let (tx, rx) = unbounded();
    let ran = Arc::new(AtomicBool::new(false));
    let ran_in_init = ran.clone();
    n.register("t49::init", move |args| {
        ran_in_init.store(true, Ordering::SeqCst);
        let me = aemp::self_port().unwrap();
        tx.send((me.clone(), args)).unwrap();
        aemp::rcv_default(&me, |_| {}).unwrap();
    });
    // Spawn from a callback on the dispatcher: init cannot have run when
    // spawn returns, since it runs on the same dispatcher later.
    let (stx, srx) = unbounded();
    let n2 = n.clone();
    let ran_seen = ran.clone();
    let starter = n.port_fn(move |_| {
        let id = n2.spawn(n2.id(), "t49::init", msg![1, "a"]).unwrap();
        stx.send((id, ran_seen.load(Ordering::SeqCst))).unwrap();
    });
    n.snd(&starter, msg!["go"]);
    let (id, ran_at_return) = recv(&srx);
    assert!(!ran_at_return, "init ran before spawn returned");
    let (me, args) = recv(&rx);
    assert_eq!(me, id, "self_port in init is the returned ID");
    assert_eq!(args, msg![1, "a"]);
}

#[test]
fn spawn_needs_a_package_name_50() {
    let n = node();
    let err = n.spawn(n.id(), "init", msg![]).unwrap_err();
    assert!(matches!(err, Error::InvalidFunctionName { .. }), "{err}");
    assert!(err.to_string().contains("\"init\""), "{err}");
}

#[test]
fn message_sent_before_init_is_delivered_51() {
    let n = node();
    let (tx, rx) = unbounded();
    n.register("t51::init", move |_| {
        let tx = tx.clone();
        aemp::rcv_default(&aemp::self_port().unwrap(), move |m| tx.send(m).unwrap()).unwrap();
    });
    let p = n.spawn(n.id(), "t51::init", msg![]).unwrap();
    n.snd(&p, msg!["first"]);
    n.snd(&p, msg!["second"]);
    assert_eq!(recv(&rx), msg!["first"]);
    assert_eq!(recv(&rx), msg!["second"]);
}

#[test]
fn init_without_rcv_leaves_no_port_52() {
    let n = node();
    let (itx, irx) = unbounded();
    n.register("t52::init", move |_| itx.send(()).unwrap());
    let before = n.port_count();
    let p = n.spawn(n.id(), "t52::init", msg![]).unwrap();
    let (tx, rx) = unbounded();
    n.mon(&p, move |r| tx.send(r).unwrap()).forget();
    recv(&irx);
    assert_eq!(recv(&rx).kind(), Some("no_such_port"));
    crate::eventually(|| n.port_count() == before);
}

#[test]
fn init_panic_kills_with_die_53() {
    let n = node();
    n.register("t53::init", |_| panic!("init failed"));
    let p = n.spawn(n.id(), "t53::init", msg![]).unwrap();
    let (tx, rx) = unbounded();
    n.mon(&p, move |r| tx.send(r).unwrap()).forget();
    assert_eq!(recv(&rx), reason!["die", "init failed"]);
}

#[test]
fn unknown_function_and_package_loaders_54() {
    let n = node();
    // No port for a name that cannot be resolved: no_such_port, however
    // late the monitor comes.
    let p = n.spawn(n.id(), "Nope::missing", msg![]).unwrap();
    let (tx, rx) = unbounded();
    n.mon(&p, move |r| tx.send(r).unwrap()).forget();
    assert_eq!(recv(&rx).kind(), Some("no_such_port"));

    // Pkg::Sub::f is missing: the loader of "Pkg::Sub" runs, then "Pkg".
    let (ltx, lrx) = unbounded();
    let ltx2 = ltx.clone();
    n.register_loader("Pkg::Sub", move |_| ltx.send("Pkg::Sub").unwrap());
    let (ftx, frx) = unbounded();
    n.register_loader("Pkg", move |node| {
        ltx2.send("Pkg").unwrap();
        let ftx = ftx.clone();
        node.register("Pkg::Sub::f", move |args| {
            ftx.send(args).unwrap();
            aemp::rcv_default(&aemp::self_port().unwrap(), |_| {}).unwrap();
        });
    });
    n.spawn(n.id(), "Pkg::Sub::f", msg![9]).unwrap();
    assert_eq!(recv(&frx), msg![9]);
    assert_eq!(recv(&lrx), "Pkg::Sub");
    assert_eq!(recv(&lrx), "Pkg");
    // Loaders run once.
    n.spawn(n.id(), "Pkg::Sub::f", msg![10]).unwrap();
    assert_eq!(recv(&frx), msg![10]);
    nothing(&lrx, 20);
}

#[test]
fn after_sends_or_calls_later_57() {
    let n = node();
    let (tx, rx) = unbounded();
    let p = n.port_fn(move |m| tx.send((m, Instant::now())).unwrap());
    let start = Instant::now();
    n.after(Duration::from_millis(100), &p, msg!["x"]);
    let (m, at) = recv(&rx);
    assert_eq!(m, msg!["x"]);
    assert!(at - start >= Duration::from_millis(100));

    let (ftx, frx) = unbounded();
    let start = Instant::now();
    n.after_fn(Duration::from_millis(50), move || {
        ftx.send(Instant::now()).unwrap()
    });
    assert!(recv(&frx) - start >= Duration::from_millis(50));

    let (ctx, crx) = unbounded::<()>();
    let t = n.after_fn(Duration::from_millis(30), move || ctx.send(()).unwrap());
    t.cancel();
    nothing(&crx, 100);
}

fn responder(n: &aemp::Node) -> aemp::PortId {
    let p = n.port();
    n.rcv(&p, "q", |m: Message| {
        let reply: aemp::PortId = m.decode::<(_,)>().unwrap().0;
        aemp::snd(&reply, msg![42]);
    })
    .unwrap();
    p
}

#[test]
fn cal_calls_back_once_and_kills_reply_port_58() {
    let n = node();
    let p = responder(&n);
    let (tx, rx) = unbounded();
    let reply = n.cal(&p, msg!["q"], Some(Duration::from_secs(5)), move |r| {
        tx.send((r, aemp::self_port())).unwrap()
    });
    let (r, ctx) = recv(&rx);
    assert_eq!(r, Some(msg![42]));
    assert_eq!(ctx, Some(reply.clone()), "callback runs in the reply port");
    nothing(&rx, 50);
    let (mtx, mrx) = unbounded();
    n.mon(&reply, move |r| mtx.send(r).unwrap()).forget();
    assert_eq!(
        recv(&mrx).kind(),
        Some("no_such_port"),
        "reply port is gone"
    );
}

#[test]
fn cal_times_out_and_ignores_late_reply_59() {
    let n = node();
    let (hold_tx, hold_rx) = unbounded();
    let silent = n.port_fn(move |m| hold_tx.send(m).unwrap());
    let (tx, rx) = unbounded();
    let start = Instant::now();
    n.cal(
        &silent,
        msg!["q"],
        Some(Duration::from_millis(100)),
        move |r| tx.send(r).unwrap(),
    );
    assert_eq!(recv(&rx), None);
    assert!(start.elapsed() >= Duration::from_millis(100));
    let request = recv(&hold_rx);
    let reply: aemp::PortId = request.decode::<(String, _)>().unwrap().1;
    n.snd(&reply, msg!["late"]);
    nothing(&rx, 50);
}

#[test]
fn cal_without_timeout_to_dying_port_60() {
    let n = node();
    let p = n.port_fn(|_| {});
    let (tx, rx) = unbounded();
    n.cal(&p, msg!["q"], None, move |r| tx.send(r).unwrap());
    n.kil(&p, reason!["gone"]).unwrap();
    assert_eq!(recv(&rx), None);
    nothing(&rx, 50);
    // And a reply cancels the monitor: a later death calls nothing.
    let q = responder(&n);
    let (tx2, rx2) = unbounded();
    n.cal(&q, msg!["q"], None, move |r| tx2.send(r).unwrap());
    assert_eq!(recv(&rx2), Some(msg![42]));
    n.kil(&q, reason!["later"]).unwrap();
    nothing(&rx2, 50);
}

#[test]
fn cal_returns_local_reply_port_61() {
    let n = node();
    let p = responder(&n);
    let reply = n.cal(&p, msg!["q"], None, |_| {});
    assert!(n.port_is_local(&reply));
    assert_ne!(reply, p);
}

#[test]
fn default_node_works_without_configuration_62() {
    let (tx, rx) = unbounded();
    let p = aemp::port_fn(move |m| tx.send(m).unwrap());
    assert_eq!(p.node(), aemp::default_node().id().as_str());
    assert!(p.node().starts_with("anon/"));
    aemp::snd(&p, msg!["hi"]);
    assert_eq!(recv(&rx), msg!["hi"]);
    aemp::kil(&p, Reason::normal()).unwrap();
}
