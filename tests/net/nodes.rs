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
