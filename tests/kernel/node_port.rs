//! The node port's local requests: relay, time, can, devnull, functions.

use crate::{node, nothing, recv};
use aemp::{msg, Reason};
use crossbeam_channel::unbounded;

#[test]
fn node_port_relays_snd() {
    let n = node();
    let (tx, rx) = unbounded();
    let p = n.port_fn(move |m| tx.send(m).unwrap());
    n.snd(n.node_port(), msg!["snd", &p, "relayed", 1]);
    assert_eq!(recv(&rx), msg!["relayed", 1]);
}

#[test]
fn node_port_time_and_can_reply_with_prefix() {
    let n = node();
    let (tx, rx) = unbounded();
    let p = n.port_fn(move |m| tx.send(m).unwrap());
    n.snd(n.node_port(), msg!["time", &p, "t"]);
    let m = recv(&rx);
    assert_eq!(m[0], "t");
    assert!(m[1].as_f64().unwrap() > 1.7e9, "a unix time: {m}");

    n.register("t::f", |_| {});
    n.snd(n.node_port(), msg!["can", "time", &p, "c1"]);
    assert_eq!(recv(&rx), msg!["c1", "1"]);
    n.snd(n.node_port(), msg!["can", "t::f", &p]);
    assert_eq!(recv(&rx), msg!["1"]);
    n.snd(n.node_port(), msg!["can", "eval", &p]);
    assert_eq!(recv(&rx), msg![""]);
}

#[test]
fn node_port_calls_registered_functions_only() {
    let n = node();
    let (tx, rx) = unbounded();
    n.register("t::called", move |args| tx.send(args).unwrap());
    n.snd_to_func(n.id(), "t::called", msg![1, "x"]);
    assert_eq!(recv(&rx), msg![1, "x"]);
    // Unregistered names, eval and junk are refused; the node port lives.
    n.snd(n.node_port(), msg!["t::unknown", 1]);
    n.snd(n.node_port(), msg!["eval", "1+1"]);
    n.snd(n.node_port(), msg![42]);
    n.snd(n.node_port(), msg!["devnull", 1]);
    n.snd(n.node_port(), msg!["snd", "not a port id#"]);
    n.register("t::panics", |_| panic!("function fails"));
    n.snd_to_func(n.id(), "t::panics", msg![]);
    n.snd_to_func(n.id(), "t::called", msg!["still served"]);
    assert_eq!(recv(&rx), msg!["still served"]);
    nothing(&rx, 20);
}

#[test]
fn remote_spawn_request_creates_named_port() {
    let n = node();
    let (tx, rx) = unbounded();
    n.register("t::echo_init", move |args| {
        let tx = tx.clone();
        tx.send(("init", args)).unwrap();
        aemp::rcv_default(&aemp::self_port().unwrap(), move |m| {
            tx.send(("msg", m)).unwrap()
        })
        .unwrap();
    });
    // The packet a remote caller sends (protocol.md §9).
    n.snd(
        n.node_port(),
        msg!["AnyEvent::MP::_spawn", "chosenName", "t::echo_init", "arg"],
    );
    let p = aemp::PortId::parse(&format!("{}#chosenName", n.id())).unwrap();
    n.snd(&p, msg!["hello"]);
    assert_eq!(recv(&rx), ("init", msg!["arg"]));
    assert_eq!(recv(&rx), ("msg", msg!["hello"]));
    n.kil(&p, Reason::normal()).unwrap();
}

/// A port name a remote spawner reuses after the port died reaches the new
/// port, also from a thread that sent to the old one last (each thread
/// remembers the last port it sent to).
#[test]
fn reused_spawn_name_reaches_the_new_port() {
    let n = node();
    let (tx, rx) = unbounded();
    n.register("t::tagged_echo", move |args| {
        let tx = tx.clone();
        aemp::rcv_default(&aemp::self_port().unwrap(), move |m| {
            tx.send((args.clone(), m)).unwrap()
        })
        .unwrap();
    });
    let spawn = |generation: &str| {
        n.snd(
            n.node_port(),
            msg![
                "AnyEvent::MP::_spawn",
                "reused",
                "t::tagged_echo",
                generation
            ],
        );
    };
    let p = aemp::PortId::parse(&format!("{}#reused", n.id())).unwrap();
    spawn("first");
    n.snd(&p, msg![1]);
    assert_eq!(recv(&rx), (msg!["first"], msg![1]));
    let (dtx, drx) = unbounded();
    n.mon(&p, move |r| dtx.send(r).unwrap()).forget();
    n.kil(&p, Reason::normal()).unwrap();
    recv(&drx);
    spawn("second");
    n.snd(&p, msg![2]);
    assert_eq!(recv(&rx), (msg!["second"], msg![2]));
    n.kil(&p, Reason::normal()).unwrap();
}

#[test]
fn node_port_handlers_cannot_be_replaced() {
    let n = node();
    let err = n.rcv(n.node_port(), "x", |_| {}).unwrap_err();
    assert!(matches!(err, aemp::Error::NodePort { .. }), "{err}");
    assert!(n.rcv_thread(n.node_port(), |_mb| ()).is_err());
}
