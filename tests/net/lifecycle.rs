//! A networked node's shutdown: other nodes' monitors of its ports get
//! the shutdown reason before the connection closes, what it sent before
//! arrives, its listener closes; and a daemon ends on SIGTERM.

use super::process::ChildNode;
use super::*;
use aemp::{msg, Reason};

#[test]
fn a_remote_monitor_sees_the_shutdown_reason_not_a_transport_error() {
    let (a, b) = pair();
    let (a_sink, arrived) = sink(&a);
    let p = a.port_fn(|_| {});
    let (tx, fired) = crossbeam_channel::unbounded();
    let tx2 = tx.clone();
    let _g = b.mon(&p, move |r| tx.send(("port", r)).unwrap());
    let _n = b.mon(a.node_port(), move |r| tx2.send(("node", r)).unwrap());
    // The mon1 went before this message: it is in place once it arrived.
    b.snd(&a_sink, msg!["sync"]);
    assert_eq!(recv(&arrived), msg!["sync"]);
    a.shutdown();
    let (what, reason) = recv(&fired);
    assert_eq!((what, reason), ("port", Reason::shutdown()));
    // The node itself went away with the connection.
    let (what, reason) = recv(&fired);
    assert_eq!(what, "node");
    assert_eq!(reason.kind(), Some("transport_error"), "{reason}");
}

#[test]
fn what_was_sent_before_the_shutdown_arrives() {
    let (a, b) = pair();
    let (b_sink, arrived) = sink(&b);
    // Connected (what waits for a connection still being made is dropped).
    a.snd(&b_sink, msg!["up"]);
    assert_eq!(recv(&arrived), msg!["up"]);
    for i in 0..2000 {
        a.snd(&b_sink, msg![i, "x".repeat(100)]);
    }
    a.shutdown();
    for i in 0..2000 {
        assert_eq!(recv(&arrived)[0], i);
    }
}

#[test]
fn the_listener_is_closed_when_shutdown_returns() {
    let a = node("listener");
    let at = addr(&a);
    std::net::TcpStream::connect(&at).unwrap();
    a.shutdown();
    assert!(std::net::TcpStream::connect(&at).is_err());
    assert!(a.is_shut_down());
}

#[test]
fn a_daemon_shuts_down_cleanly_on_sigterm() {
    let mut child = ChildNode::start_daemon();
    let (a, reply, rx) = child.parent();
    let (tx, fired) = crossbeam_channel::unbounded();
    let _g = a.mon(&child.echo, move |r| tx.send(r).unwrap());
    a.snd(&child.echo, msg![&reply, "sync"]);
    assert_eq!(recv(&rx), msg!["sync"]);
    child.signal(libc::SIGTERM);
    assert_eq!(recv(&fired), Reason::shutdown());
    assert!(child.exit_status().success());
}

#[test]
fn a_daemon_that_caught_termination_before_ready_loses_no_sigterm() {
    // SIGTERM at once after READY: the handlers were installed before it
    // (Node::catch_termination), so the signal is not the default death.
    let mut child = ChildNode::start_daemon();
    child.signal(libc::SIGTERM);
    assert!(child.exit_status().success());
}
