//! Failure detection and flow control (issue 11): the heartbeat notices a
//! stopped peer (a real child process, SIGSTOP) but not a busy one; the
//! outgoing buffer is bounded; `snd_wait` waits instead of losing; `stats`
//! shows what is queued.

use super::process::ChildNode;
use super::*;
use aemp::{msg, Error, PeerState};
use std::time::Instant;

const TICK: Duration = Duration::from_secs(1);

/// A parent node with a 1 s heartbeat that knows the child's address and
/// has talked to it (so the connection is up); and a sink for the echoes.
fn parent(child: &ChildNode, c: Config) -> (Node, aemp::PortId, Receiver<aemp::Message>) {
    let _ = env_logger::builder().is_test(true).try_init();
    let a = Node::with_config(c).unwrap();
    a.add_address(&child.node, &child.addr).unwrap();
    let (reply, rx) = sink(&a);
    a.snd(&child.echo, msg![&reply, "hi"]);
    assert_eq!(recv(&rx), msg!["hi"]);
    (a, reply, rx)
}

fn peer(a: &Node, id: &aemp::NodeId) -> Option<aemp::PeerStats> {
    a.stats().peers.into_iter().find(|p| p.node == id.as_str())
}

#[test]
fn a_stopped_peer_is_noticed_by_the_heartbeat_and_works_again_after_sigcont() {
    let child = ChildNode::start();
    let (a, reply, rx) = parent(&child, cfg("parent").tick(TICK));
    let (tx, fired) = crossbeam_channel::unbounded();
    let guards: Vec<_> = [child.echo.clone(), child.node.node_port()]
        .into_iter()
        .map(|p| {
            let tx = tx.clone();
            a.mon(&p, move |r| tx.send(r).unwrap())
        })
        .collect();
    a.snd(&child.echo, msg![&reply, "sync"]);
    assert_eq!(recv(&rx), msg!["sync"]);
    let stopped = Instant::now();
    child.stop();
    for _ in 0..2 {
        let r = recv(&fired);
        assert_eq!(r.kind(), Some("transport_error"), "{r}");
        assert!(r.to_string().contains("heartbeat"), "{r}");
    }
    let took = stopped.elapsed();
    // Three ticks of silence, a quarter tick of timer granularity; under
    // load a little more, never the 60 s of no detection at all.
    assert!(took >= 2 * TICK, "fired after {took:?}");
    nothing(&fired, 100);
    drop(guards);
    child.signal(libc::SIGCONT);
    // The child sees the connection closed and fires its own monitors;
    // then a new connection carries messages again.
    eventually(|| {
        a.snd(&child.echo, msg![&reply, "again"]);
        rx.recv_timeout(Duration::from_millis(200)).is_ok()
    });
}

#[test]
fn a_peer_whose_dispatcher_is_blocked_is_not_declared_dead() {
    // The peer's reactor answers the heartbeat, whatever its callbacks do.
    let a = Node::with_config(cfg("a").tick(TICK)).unwrap();
    let b = node("b");
    introduce(&a, &b);
    let (reply, rx) = sink(&a);
    let slow = b.port_fn(move |m| {
        if m.first() == Some(&serde_json::Value::from("block")) {
            std::thread::sleep(4 * TICK);
        }
        aemp::snd(&reply, msg!["done"]);
    });
    let (_g, fired) = {
        let (tx, rx) = crossbeam_channel::unbounded();
        (a.mon(&slow, move |r| tx.send(r).unwrap()), rx)
    };
    a.snd(&slow, msg!["warm up"]);
    assert_eq!(recv(&rx), msg!["done"]);
    a.snd(&slow, msg!["block"]);
    // Longer than the detection window (3 ticks).
    assert_eq!(recv(&rx), msg!["done"]);
    nothing(&fired, 50);
    assert_eq!(peer(&a, b.id()).unwrap().state, PeerState::Up);
}

#[test]
fn flooding_a_stopped_peer_fails_the_connection_at_the_unsent_limit() {
    const LIMIT_BYTES: usize = 4 << 20;
    let child = ChildNode::start();
    let c = cfg("parent").tick(Duration::ZERO).unsent_limit(LIMIT_BYTES);
    let (a, reply, _rx) = parent(&child, c);
    let (tx, fired) = crossbeam_channel::unbounded();
    a.mon(&child.echo, move |r| tx.send(r).unwrap()).forget();
    child.stop();
    let kib = "x".repeat(1024);
    let mut most = 0;
    let mut sent = 0u64;
    let reason = loop {
        // snd never blocks, however full the buffer.
        a.snd(&child.echo, msg![&reply, &kib]);
        sent += 1;
        if sent % 256 == 0 {
            if let Some(p) = peer(&a, &child.node) {
                most = most.max(p.unsent);
            }
        }
        if let Ok(r) = fired.try_recv() {
            break r;
        }
        assert!(sent < 10_000_000, "the limit never struck");
    };
    assert!(most <= LIMIT_BYTES, "{most} bytes unsent");
    assert_eq!(reason.kind(), Some("transport_error"));
    assert!(
        reason
            .to_string()
            .contains("outgoing buffer over its limit"),
        "{reason}"
    );
    // The buffer is gone with the connection.
    let p = peer(&a, &child.node).unwrap();
    assert_ne!(p.state, PeerState::Up);
    assert_eq!(p.unsent, 0);
    nothing(&fired, 50);
    child.signal(libc::SIGCONT);
}

#[test]
fn flooding_a_peer_that_never_finishes_its_handshake_fails_at_the_unsent_limit() {
    const LIMIT_BYTES: usize = 1 << 20;
    let child = ChildNode::start();
    // Stopped before we connect: the kernel accepts the connection, the
    // handshake never ends, and every send is queued while connecting.
    child.stop();
    let c = cfg("parent")
        .tick(Duration::ZERO)
        .unsent_limit(LIMIT_BYTES)
        .connect_interval(Duration::from_secs(60))
        .monitor_timeout(Duration::from_secs(60));
    let a = Node::with_config(c).unwrap();
    a.add_address(&child.node, &child.addr).unwrap();
    let (tx, fired) = crossbeam_channel::unbounded();
    a.mon(&child.echo, move |r| tx.send(r).unwrap()).forget();
    let (reply, _rx) = sink(&a);
    let kib = "q".repeat(1024);
    let (mut sent, mut most) = (0u64, 0usize);
    let reason = loop {
        a.snd(&child.echo, msg![&reply, &kib]);
        sent += 1;
        if let Some(p) = peer(&a, &child.node) {
            most = most.max(p.queued);
        }
        if let Ok(r) = fired.try_recv() {
            break r;
        }
        assert!(
            sent < 1_000_000,
            "the limit never struck: {:?}",
            peer(&a, &child.node)
        );
    };
    // (What the failure said, for every assertion below.)
    let seen = format!("{sent} sent, at most {most} queued, reason {reason}");
    // About 1 KiB each: never more than the limit was held. (The sampled
    // maximum may fall short of it: the stats are read between sends.)
    assert!(most <= LIMIT_BYTES / 1024, "{seen}");
    assert!(most > 0, "nothing was ever queued: {seen}");
    assert_eq!(reason.kind(), Some("transport_error"), "{seen}");
    assert!(
        reason.to_string().contains("queued while connecting"),
        "{seen}"
    );
    // The queue is gone. (One send may have come after the monitors had
    // fired, and queued for a new attempt, as after any loss.)
    let after = peer(&a, &child.node).unwrap();
    assert!(after.queued <= 1, "{after:?}; {seen}");
    nothing(&fired, 50);
    child.signal(libc::SIGCONT);
}

#[test]
fn snd_wait_loses_nothing_and_times_out_when_the_peer_never_drains() {
    let child = ChildNode::start();
    let c = cfg("parent").unsent_high_water(64 << 10);
    let (a, reply, rx) = parent(&child, c);
    let (tx, fired) = crossbeam_channel::unbounded();
    a.mon(&child.echo, move |r| tx.send(r).unwrap()).forget();
    child.stop();
    let kib = "y".repeat(1024);
    let mut sent = 0usize;
    let err = loop {
        match a.snd_wait(
            &child.echo,
            msg![&reply, sent, &kib],
            Duration::from_millis(300),
        ) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 1_000_000, "snd_wait never waited");
    };
    match &err {
        Error::Backlog { unsent, .. } => assert!(*unsent > 64 << 10, "{err}"),
        other => panic!("{other}"),
    }
    assert!(a.stats().peers.iter().any(|p| p.unsent > 64 << 10));
    child.signal(libc::SIGCONT);
    // Every message snd_wait took arrives, in order; the refused one never.
    for i in 0..sent {
        let m = recv(&rx);
        assert_eq!(m[0], i, "message {i}");
    }
    nothing(&rx, 100);
    nothing(&fired, 0);
}

#[test]
fn snd_wait_is_refused_on_the_dispatcher() {
    let (a, b) = pair();
    let (tx, rx) = crossbeam_channel::unbounded();
    let (remote, _) = sink(&b);
    let n = a.clone();
    let p = a.port_fn(move |_| {
        let r = n.snd_wait(&remote, msg![], Duration::from_secs(1));
        tx.send(r.map_err(|e| e.to_string())).unwrap();
    });
    a.snd(&p, msg!["go"]);
    let r = recv(&rx);
    assert!(r.unwrap_err().contains("dispatcher"));
}

#[test]
fn stats_show_unsent_bytes_grow_while_a_peer_stalls_and_shrink_after() {
    let child = ChildNode::start();
    let (a, reply, rx) = parent(&child, cfg("parent"));
    let before = peer(&a, &child.node).unwrap();
    assert_eq!(before.state, PeerState::Up);
    assert!(before.packets_sent >= 1 && before.packets_received >= 1);
    assert!(before.bytes_sent > 0 && before.bytes_received > 0);
    child.stop();
    let kib = "z".repeat(1024);
    let mut n = 0;
    // Fill the socket buffers until bytes stay with us.
    while peer(&a, &child.node).unwrap().unsent < 1 << 20 {
        for _ in 0..256 {
            a.snd(&child.echo, msg![&reply, &kib]);
            n += 1;
        }
        assert!(n < 100_000, "nothing stays unsent");
    }
    let grown = peer(&a, &child.node).unwrap();
    assert!(grown.packets_sent >= before.packets_sent + n as u64);
    child.signal(libc::SIGCONT);
    for _ in 0..n {
        recv(&rx);
    }
    eventually(|| peer(&a, &child.node).unwrap().unsent == 0);
    let after = peer(&a, &child.node).unwrap();
    assert!(after.bytes_received > grown.bytes_received);
    assert!(after.last_heard.unwrap() < Duration::from_secs(5));
}
