//! `aemp::configure_profile`, the process-wide node from the
//! configuration file: items 62 and 66 (alone in this process, as the
//! process-wide node can be configured only once).

use aemp::{msg, Error, Node};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// 62: before configure, local messaging works (on an explicit node) and
/// does not stop configure. 66: a second configure is refused with
/// `AlreadyConfigured` and changes nothing (the original ignores it).
#[test]
fn configure_once_62_66() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rc");
    std::fs::write(
        &path,
        r#"{"secret": "s", "profile": {"p": {"nodeid": "conf/%u", "binds": ["127.0.0.1:0"]}}}"#,
    )
    .unwrap();
    // The only test in this process: nothing else reads the environment.
    std::env::set_var("AEMP_RC", &path);

    // 62
    let local = Node::new("local").unwrap();
    let (tx, rx) = crossbeam_channel::bounded(1);
    let p = local.port_fn(move |m| tx.send(m).unwrap());
    local.snd(&p, msg!["hi"]);
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), msg!["hi"]);

    let args: Map<String, Value> = json!({"profile": "p"}).as_object().unwrap().clone();
    let node = aemp::configure_profile(None, &args, |_| {}).unwrap();
    assert!(node.id().as_str().starts_with("conf/"), "{}", node.id());
    assert_eq!(aemp::default_node().id(), node.id());
    assert_eq!(node.listen_addrs().len(), 1);

    // 66
    for second in [
        aemp::configure_profile(Some("other"), &Map::new(), |_| panic!("not run")),
        aemp::configure(aemp::Config::new("again")),
    ] {
        match second {
            Err(Error::AlreadyConfigured { node: n }) => assert_eq!(&n, node.id()),
            other => panic!(
                "expected AlreadyConfigured, got {:?}",
                other.map(|n| n.id().clone())
            ),
        }
    }
    assert_eq!(aemp::default_node().id(), node.id());
    // Still working.
    let reply = aemp::call(node.node_port(), msg!["time"], Duration::from_secs(5)).unwrap();
    assert!(reply[0].as_f64().unwrap() > 1e9);
}
