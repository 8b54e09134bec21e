//! Remote monitors, kills and spawn.

use super::*;
use aemp::{msg, reason};

fn mon_chan(n: &Node, p: &aemp::PortId) -> (aemp::MonGuard, Receiver<aemp::Reason>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let g = n.mon(p, move |r| {
        let _ = tx.send(r);
    });
    (g, rx)
}

#[test]
fn remote_kil_reason_reaches_monitor_41() {
    let (a, b) = pair();
    let (p, _rx) = sink(&b);
    let (_g, rx) = mon_chan(&a, &p);
    a.kil(&p, reason!["my_error", "broken"]).unwrap();
    assert_eq!(recv(&rx), reason!["my_error", "broken"]);
}

#[test]
fn remote_mon_of_nonexistent_port_42() {
    let (a, b) = pair();
    let p = aemp::PortId::new(b.id(), "nope").unwrap();
    let (_g, rx) = mon_chan(&a, &p);
    let r = recv(&rx);
    assert_eq!(r.kind(), Some("no_such_port"));
    assert_eq!(r[2], p.as_str());
}

#[test]
fn loss_fires_every_monitor_once_43() {
    let (a, b) = pair();
    let (p1, _r1) = sink(&b);
    let (p2, _r2) = sink(&b);
    let (_g1, rx1) = mon_chan(&a, &p1);
    let (_g2, rx2) = mon_chan(&a, &p2);
    let (_g3, rx3) = mon_chan(&a, &b.node_port().clone());
    eventually(|| a.node_is_up(b.id()) == Some(true));
    b.net_shutdown();
    for rx in [&rx1, &rx2, &rx3] {
        let r = recv(rx);
        assert_eq!(r.kind(), Some("transport_error"));
        assert_eq!(r[1], b.id().as_str());
        nothing(rx, 0);
    }
    nothing(&rx1, 200);
}

#[test]
fn remote_kill_seen_by_local_monitors_44() {
    let (a, b) = pair();
    let (p, _rx) = sink(&b);
    let (_g, rx) = mon_chan(&b, &p);
    a.kil(&p, reason!["r", 1]).unwrap();
    assert_eq!(recv(&rx), reason!["r", 1]);
}

#[test]
fn remote_kill_is_ordered_after_sends_45() {
    let (a, b) = pair();
    let (p, rx) = sink(&b);
    let (_g, died) = mon_chan(&b, &p);
    for i in 0..100 {
        a.snd(&p, msg![i]);
    }
    a.kil(&p, reason!["done"]).unwrap();
    for i in 0..100 {
        assert_eq!(recv(&rx), msg![i]);
    }
    assert_eq!(recv(&died), reason!["done"]);
}

#[test]
fn after_loss_new_sends_reach_new_ports_47() {
    let (a, b) = pair();
    let (p, rx) = sink(&b);
    let (_g, died) = mon_chan(&a, &p);
    a.snd(&p, msg!["one"]);
    assert_eq!(recv(&rx), msg!["one"]);
    a.net_cut(b.id());
    assert_eq!(recv(&died).kind(), Some("transport_error"));
    let (q, rxq) = sink(&b);
    // Sends from other threads while the monitors fire are dropped: retry.
    eventually(|| {
        a.snd(&q, msg!["two"]);
        rxq.recv_timeout(Duration::from_millis(100)).is_ok()
    });
    // A port ID that never existed on b reports no_such_port.
    let old = aemp::PortId::new(b.id(), "gone").unwrap();
    let (_g3, d3) = mon_chan(&a, &old);
    assert_eq!(recv(&d3).kind(), Some("no_such_port"));
}

#[test]
fn dropping_the_last_guard_sends_mon0_48() {
    let (a, b) = pair();
    let (p, _rx) = sink(&b);
    let (g, rx) = mon_chan(&a, &p);
    let (g2, rx2) = mon_chan(&a, &p);
    // Wait until the monitor is set on b (its node port holds one).
    let before = b.port_count();
    let (done, done_rx) = sink(&a);
    a.snd(&b.node_port().clone(), msg!["time", &done]);
    recv(&done_rx);
    drop(g);
    drop(g2);
    a.kil(&p, reason!["x"]).unwrap();
    eventually(|| b.port_count() == before - 1);
    // The callbacks were dropped with their guards, never called.
    assert!(rx.try_recv().is_err() && rx2.try_recv().is_err());
}

#[test]
fn remote_spawn_and_two_way_monitoring_55() {
    let (a, b) = pair();
    b.register("Test::echo", |args| {
        let me = aemp::self_port().unwrap();
        let peer: aemp::PortId = args.decode::<(aemp::PortId,)>().unwrap().0;
        // Two-way: die when the peer dies.
        aemp::mon_link(&peer, &me).forget();
        aemp::rcv(&me, "ping", move |m| {
            let reply: aemp::PortId = m.decode::<(aemp::PortId,)>().unwrap().0;
            aemp::snd(&reply, msg!["pong"]);
        })
        .unwrap();
    });
    let (reply, rx) = sink(&a);
    let client = a.port_fn(|_| {});
    let server = a.spawn(b.id(), "Test::echo", msg![&client]).unwrap();
    assert_eq!(server.node(), b.id().as_str());
    let (_g, died) = mon_chan(&a, &server);
    a.snd(&server, msg!["ping", &reply]);
    assert_eq!(recv(&rx), msg!["pong"]);
    a.kil(&client, reason!["bye"]).unwrap();
    assert_eq!(recv(&died), reason!["bye"]);
}

#[test]
fn spawning_an_unknown_function_gives_no_such_port_every_time_55() {
    // The answer must not depend on whether the monitor arrives before
    // the init would have run: no port is created at all.
    let (a, b) = pair();
    for _ in 0..20 {
        let p = a.spawn(b.id(), "No::such", msg![]).unwrap();
        let (_g, rx) = mon_chan(&a, &p);
        assert_eq!(recv(&rx).kind(), Some("no_such_port"));
    }
    // A monitor placed after a round trip: the same.
    let p = a.spawn(b.id(), "No::such", msg![]).unwrap();
    let (probe, rx) = sink(&a);
    a.snd(b.node_port(), msg!["time", &probe]);
    recv(&rx);
    let (_g, rx) = mon_chan(&a, &p);
    assert_eq!(recv(&rx).kind(), Some("no_such_port"));
}

#[test]
fn restarted_node_never_matches_old_port_ids_47() {
    let a = node("a");
    let b1 = Node::with_config(with_id(cfg("unused"), "fixed/restart")).unwrap();
    a.add_address(b1.id(), &addr(&b1)).unwrap();
    let (old, rx) = sink(&b1);
    let (_g, died) = mon_chan(&a, &old);
    a.snd(&old, msg!["before"]);
    assert_eq!(recv(&rx), msg!["before"]);
    b1.net_shutdown(); // the process "dies"
    assert_eq!(recv(&died).kind(), Some("transport_error"));
    // The same node ID comes back elsewhere.
    let b2 = Node::with_config(with_id(cfg("unused"), "fixed/restart")).unwrap();
    a.add_address(b2.id(), &addr(&b2)).unwrap();
    let (new, rx2) = sink(&b2);
    // Sends from other threads while the monitors fire are dropped: retry.
    eventually(|| {
        a.snd(&new, msg!["after"]);
        rx2.recv_timeout(Duration::from_millis(100)).is_ok()
    });
    let (_g2, died2) = mon_chan(&a, &old);
    assert_eq!(recv(&died2).kind(), Some("no_such_port"));
    nothing(&rx, 50);
}

#[test]
fn a_monitor_callback_may_send_to_the_lost_node_at_once() {
    let (a, b) = pair();
    let (p, rx) = sink(&b);
    let (q, rxq) = sink(&b);
    let node = a.clone();
    a.mon(&p, move |_| {
        // A supervisor's restart: goes out on a new connection.
        node.snd(&q, msg!["restarted"]);
    })
    .forget();
    a.snd(&p, msg!["one"]);
    assert_eq!(recv(&rx), msg!["one"]);
    a.net_cut(b.id());
    assert_eq!(recv(&rxq), msg!["restarted"]);
}
