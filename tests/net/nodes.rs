//! node_is_up, up_nodes, mon_nodes.

use super::*;
use aemp::msg;

#[test]
fn node_is_up_and_up_nodes_75_76() {
    let (a, b) = pair();
    assert_eq!(a.node_is_up(a.id()), Some(true));
    assert_eq!(a.node_is_up(b.id()), None);
    assert!(a.up_nodes().is_empty());
    let (p, rx) = sink(&b);
    a.snd(&p, msg!["x"]);
    recv(&rx);
    assert_eq!(a.node_is_up(b.id()), Some(true));
    assert_eq!(a.up_nodes(), vec![b.id().clone()]);
    b.net_shutdown();
    eventually(|| a.node_is_up(b.id()) == Some(false));
    assert!(a.up_nodes().is_empty());
}

#[test]
fn mon_nodes_alternates_77() {
    let (a, b) = pair();
    let (tx, rx) = crossbeam_channel::unbounded();
    let g = a
        .mon_nodes(move |n, up, r| {
            let _ = tx.send((n.clone(), up, r.clone()));
        })
        .unwrap();
    let (p, prx) = sink(&b);
    for round in 0..3 {
        a.snd(&p, msg![round]);
        recv(&prx);
        let (n, up, _) = recv(&rx);
        assert_eq!((&n, up), (b.id(), true));
        a.net_cut(b.id());
        let (n, up, r) = recv(&rx);
        assert_eq!((&n, up), (b.id(), false));
        assert_eq!(r.kind(), Some("transport_error"));
    }
    drop(g);
    a.snd(&p, msg!["again"]);
    recv(&prx);
    nothing(&rx, 100);
}

#[test]
fn configure_sets_the_default_node_once() {
    // Other tests never touch the default node outside port context, but
    // stay tolerant: the first call may find it existing.
    match aemp::configure(cfg("default")) {
        Ok(n) => {
            assert_eq!(aemp::default_node().id(), n.id());
            assert!(!n.listen_addrs().is_empty());
        }
        Err(e) => assert!(matches!(e, aemp::Error::AlreadyConfigured { .. }), "{e}"),
    }
    let again = aemp::configure(cfg("default")).unwrap_err();
    assert!(
        matches!(again, aemp::Error::AlreadyConfigured { .. }),
        "{again}"
    );
}

#[test]
fn bad_binds_and_addresses_are_errors_naming_the_input() {
    let e = Node::with_config(cfg("x").bind("nonsense")).unwrap_err();
    assert!(e.to_string().contains("nonsense"), "{e}");
    let e = Node::with_config(cfg("x").bind("127.0.0.1:notaport")).unwrap_err();
    assert!(e.to_string().contains("notaport"), "{e}");
    let n = node("x");
    let e = n.connect("127.0.0.1").unwrap_err();
    assert!(e.to_string().contains("127.0.0.1"), "{e}");
    let plain = Node::new("plain").unwrap();
    assert!(plain.connect("127.0.0.1:1").is_err());
    assert!(plain.mon_nodes(|_, _, _| {}).is_err());
}

#[test]
fn node_id_patterns_expand() {
    let n = Node::with_config(with_id(cfg("x"), "host-%n/")).unwrap();
    let id = n.id().as_str();
    assert!(
        id.starts_with("host-") && !id.contains('%') && !id.ends_with('/'),
        "{id}"
    );
}
