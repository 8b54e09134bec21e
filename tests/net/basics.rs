//! Remote delivery and node-port requests.

use super::*;
use aemp::{msg, Message};

#[test]
fn messages_arrive_in_order_17() {
    let (a, b) = pair();
    let (p, rx) = sink(&b);
    for i in 0..10_000 {
        a.snd(&p, msg!["n", i]);
    }
    for i in 0..10_000 {
        assert_eq!(recv(&rx), msg!["n", i]);
    }
}

#[test]
fn sends_before_connecting_are_queued_18() {
    let (a, b) = pair();
    let (p, rx) = sink(&b);
    assert_eq!(a.node_is_up(b.id()), None);
    a.snd(&p, msg!["first"]);
    a.snd(&p, msg!["second"]);
    assert_eq!(recv(&rx), msg!["first"]);
    assert_eq!(recv(&rx), msg!["second"]);
}

#[test]
fn unreachable_node_never_throws_and_monitors_fire_19() {
    let a = Node::with_config(cfg("a").monitor_timeout(Duration::from_millis(600))).unwrap();
    // A port on a node nobody listens for.
    let ghost: aemp::PortId = "ghost/x#p1".parse().unwrap();
    a.add_address(&ghost.node_id(), "127.0.0.1:1").unwrap();
    a.snd(&ghost, msg!["hello"]);
    let (tx, rx) = crossbeam_channel::unbounded();
    a.mon(&ghost, move |r| tx.send(r).unwrap()).forget();
    let reason = recv(&rx);
    assert_eq!(reason.kind(), Some("transport_error"));
    assert_eq!(reason[1], "ghost/x");
}

#[test]
fn an_unreachable_nodes_monitors_fire_after_connect_interval() {
    // As Perl 2.02: `connect_interval` after the attempts began, with no
    // connection, the monitors fire with "connect timeout" (not after
    // `monitor_timeout`, which is how long the attempts go on).
    let ci = Duration::from_millis(300);
    let a = Node::with_config(
        cfg("a")
            .monitor_timeout(Duration::from_secs(60))
            .connect_interval(ci),
    )
    .unwrap();
    // An address the OS chose and nobody listens on now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let late: aemp::PortId = format!("late/{port}#p1").parse().unwrap();
    a.add_address(&late.node_id(), &format!("127.0.0.1:{port}"))
        .unwrap();
    let start = std::time::Instant::now();
    let (tx, rx) = crossbeam_channel::unbounded();
    a.mon(&late, move |r| tx.send(r).unwrap()).forget();
    a.snd(&late, msg!["lost"]);
    let reason = recv(&rx);
    assert!(start.elapsed() >= ci, "fired after {:?}", start.elapsed());
    assert_eq!(
        reason,
        aemp::Reason::from(msg!["transport_error", late.node(), "connect timeout"])
    );
    // The attempts go on: once the node listens there it is connected,
    // with nothing sent meanwhile.
    let b = Node::with_config(with_id(
        Config::new("")
            .bind(format!("127.0.0.1:{port}"))
            .secret("s"),
        late.node(),
    ))
    .unwrap();
    eventually(|| a.node_is_up(b.id()) == Some(true));
    let (p, rxp) = sink(&b);
    a.snd(&p, msg!["after"]);
    assert_eq!(recv(&rxp), msg!["after"]);
}

#[test]
fn cbor_and_json_nodes_talk_both_ways_74() {
    use aemp::transport::Framing;
    let a = Node::with_config(cfg("json").framings(&[Framing::Json])).unwrap();
    let b = Node::with_config(cfg("cbor").framings(&[Framing::Cbor, Framing::Json])).unwrap();
    introduce(&a, &b);
    let (pa, rxa) = sink(&a);
    let (pb, rxb) = sink(&b);
    let value = msg!["x", serde_json::json!({"k": [1, 2.5, null, true, "é"]})];
    a.snd(&pb, value.clone());
    assert_eq!(recv(&rxb), value);
    b.snd(&pa, value.clone());
    assert_eq!(recv(&rxa), value);
}

#[test]
fn no_common_framing_fails_74() {
    use aemp::transport::Framing;
    let a = Node::with_config(cfg("json").framings(&[Framing::Json])).unwrap();
    let b = Node::with_config(
        cfg("cbor")
            .framings(&[Framing::Cbor])
            .monitor_timeout(Duration::from_millis(800)),
    )
    .unwrap();
    introduce(&a, &b);
    let (pa, rxa) = sink(&a);
    let (tx, rx) = crossbeam_channel::unbounded();
    b.mon(&pa, move |r| tx.send(r).unwrap()).forget();
    b.snd(&pa, msg!["never"]);
    assert_eq!(recv(&rx).kind(), Some("transport_error"));
    nothing(&rxa, 100);
}

#[test]
fn wrong_secret_delivers_nothing_70() {
    let a = Node::with_config(cfg("a").monitor_timeout(Duration::from_millis(800))).unwrap();
    let b = Node::with_config(cfg("b").secret("other")).unwrap();
    introduce(&a, &b);
    let (pb, rxb) = sink(&b);
    let (tx, rx) = crossbeam_channel::unbounded();
    a.mon(&pb, move |r| tx.send(r).unwrap()).forget();
    a.snd(&pb, msg!["secret stuff"]);
    assert_eq!(recv(&rx).kind(), Some("transport_error"));
    nothing(&rxb, 100);
    assert_eq!(a.node_is_up(b.id()), Some(false));
}

#[test]
fn no_secret_no_cert_fails_71() {
    // A node that could never authenticate is refused when it is built,
    // naming the key, instead of failing every handshake later.
    let mut c = cfg("a");
    c.secret = None;
    match Node::with_config(c) {
        Err(e @ aemp::Error::Config { .. }) => {
            let text = e.to_string();
            assert!(text.contains("\"secret\""), "{text}");
            assert!(
                text.contains("neither a secret nor a certificate"),
                "{text}"
            );
        }
        other => panic!(
            "expected a configuration error, got {:?}",
            other.map(|n| n.id().clone())
        ),
    }
    // The same for one with nothing to offer.
    let mut c = cfg("b");
    c.auth_offer.clear();
    let e = Node::with_config(c).map(|_| ()).unwrap_err();
    assert!(e.to_string().contains("auth_offer"), "{e}");
}

#[test]
fn connect_by_address_learns_the_node_id() {
    let (a, b) = (node("a"), node("b"));
    a.connect(&addr(&b)).unwrap();
    eventually(|| a.node_is_up(b.id()) == Some(true));
    eventually(|| b.node_is_up(a.id()) == Some(true));
    let (p, rx) = sink(&b);
    a.snd(&p, msg!["via connect"]);
    assert_eq!(recv(&rx), msg!["via connect"]);
    // And back over the same connection, without an address for a.
    let (q, rxq) = sink(&a);
    b.snd(&q, msg!["back"]);
    assert_eq!(recv(&rxq), msg!["back"]);
    assert!(a.connect("no-port").is_err());
}

#[test]
fn a_node_never_connects_to_itself_73() {
    let a = Node::with_config(cfg("a").monitor_timeout(Duration::from_millis(600))).unwrap();
    a.connect(&addr(&a)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(a.up_nodes().is_empty());
    assert_eq!(a.node_is_up(a.id()), Some(true));
}

#[test]
fn snd_to_func_calls_registered_function_78() {
    let (a, b) = pair();
    let (tx, rx) = crossbeam_channel::unbounded();
    b.register("Pkg::f", move |args| {
        tx.send((args, aemp::src_node())).unwrap()
    });
    a.snd_to_func(b.id(), "Pkg::f", msg![1]);
    let (args, src) = recv(&rx);
    assert_eq!(args, msg![1]);
    assert_eq!(src.as_ref(), Some(a.id()));
}

#[test]
fn unregistered_function_and_eval_are_refused_80() {
    let (a, b) = pair();
    let (reply, rx) = sink(&a);
    // eval is never executed and never answered.
    a.snd(&b.node_port().clone(), msg!["eval", "1+1", &reply]);
    a.snd_to_func(b.id(), "Not::registered", msg![1]);
    // The connection survives: a time request still gets its answer.
    a.snd(&b.node_port().clone(), msg!["time", &reply, "t"]);
    let m = recv(&rx);
    assert_eq!(m[0], "t");
    nothing(&rx, 100);
}

#[test]
fn relay_through_another_node_79() {
    let (a, b) = pair();
    let c = node("c");
    introduce(&b, &c);
    let (pc, rx) = sink(&c);
    a.snd(&b.node_port().clone(), msg!["snd", &pc, "x"]);
    assert_eq!(recv(&rx), msg!["x"]);
}

#[test]
fn src_node_is_the_sender_81() {
    let (a, b) = pair();
    let (tx, rx) = crossbeam_channel::unbounded();
    let p = b.port_fn(move |_| tx.send(aemp::src_node()).unwrap());
    a.snd(&p, msg!["who"]);
    assert_eq!(recv(&rx).as_ref(), Some(a.id()));
    b.snd(&p, msg!["local"]);
    assert_eq!(recv(&rx), None);
}

#[test]
fn time_and_can_requests_82() {
    let (a, b) = pair();
    let (reply, rx) = sink(&a);
    a.snd(&b.node_port().clone(), msg!["time", &reply]);
    let m: Message = recv(&rx);
    assert!(m[0].as_f64().unwrap() > 1.0e9);
    a.snd(&b.node_port().clone(), msg!["can", "time", &reply, "can"]);
    assert_eq!(recv(&rx), msg!["can", "1"]);
    a.snd(&b.node_port().clone(), msg!["can", "nothing::here", &reply]);
    assert_eq!(recv(&rx), msg![""]);
}

#[test]
fn a_wrong_secret_is_named_as_the_cause_of_a_failed_call() {
    let a = Node::with_config(cfg("a")).unwrap();
    let b = Node::with_config(cfg("b").secret("another")).unwrap();
    introduce(&a, &b);
    let (pb, _rxb) = sink(&b);
    // The monitor fires after connect_interval ("connect timeout"); the
    // error says why the attempts failed.
    let err = a
        .call(&pb, msg!["hi"], Duration::from_secs(10))
        .unwrap_err();
    match &err {
        aemp::Error::NoReply {
            reason,
            cause: Some(cause),
            ..
        } => {
            assert_eq!(reason.kind(), Some("transport_error"), "{err}");
            assert!(cause.contains("authentication failure"), "{err}");
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("token mismatch"), "{err}");
    let why = a.last_connect_error(b.id().as_str()).unwrap();
    assert!(why.contains("token mismatch"), "{why}");
    // A node that connects fine has no failure on record.
    let c = Node::with_config(cfg("c")).unwrap();
    introduce(&a, &c);
    let (pc, rxc) = sink(&c);
    a.snd(&pc, msg!["fine"]);
    assert_eq!(recv(&rxc), msg!["fine"]);
    assert_eq!(a.last_connect_error(c.id().as_str()), None);
}
