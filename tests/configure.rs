//! Configuring a node from the configuration file (acceptance.md §1.2):
//! [`aemp::Node::from_profile`], items 67 and 68. The process-wide
//! `configure_profile` (items 62, 66) is in `configure_default.rs`, its
//! own process.

use aemp::rcfile::RcFile;
use aemp::{msg, Error, Message, Node};
use serde_json::Map;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn rc(json: &str) -> RcFile {
    RcFile::from_json(json).unwrap()
}

/// 67: default binds are `*`: one listener on a dynamic port, and the node
/// knows its address; another node reaches it there.
#[test]
fn default_binds_listen_on_a_dynamic_port_67() {
    let file = rc(r#"{"secret": "s", "profile": {"p": {"nodeid": "p67/%u"}}}"#);
    let node = Node::from_profile(&file, Some("p"), &Map::new(), |_| {}).unwrap();
    let addrs = node.listen_addrs();
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    assert!(addrs[0].ip().is_unspecified(), "{addrs:?}");
    assert_ne!(addrs[0].port(), 0, "the real port is recorded");

    let client = Node::from_profile(
        &rc(r#"{"secret": "s", "binds": []}"#),
        Some("c"),
        &Map::new(),
        |_| {},
    )
    .unwrap();
    assert!(client.listen_addrs().is_empty());
    client
        .add_address(node.id(), &format!("127.0.0.1:{}", addrs[0].port()))
        .unwrap();
    let reply = client
        .call(node.node_port(), msg!["time"], Duration::from_secs(10))
        .unwrap();
    assert!(reply[0].as_f64().unwrap() > 1e9, "{reply}");
}

/// 68: `"Pkg::"` runs the package loader, `"f"` calls `f()`,
/// `["f", 1, 2]` calls `f(1, 2)`, in list order, in the node's context.
#[test]
fn services_run_in_order_68() {
    let file = rc(
        r#"{"binds": [], "secret": "s", "services": ["svc::", "svc::f", ["svc::f", 1, 2], "svc::here"]}"#,
    );
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let node = Node::from_profile(&file, Some("s68"), &Map::new(), |n| {
        let l = log.clone();
        n.register_loader("svc", move |_| l.lock().unwrap().push("loaded svc".into()));
        let l = log.clone();
        n.register("svc::f", move |args: Message| {
            l.lock().unwrap().push(format!("f {args}"))
        });
        let l = log.clone();
        n.register("svc::here", move |_| {
            l.lock()
                .unwrap()
                .push(format!("node {}", aemp::node().id()))
        });
    })
    .unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "loaded svc".to_string(),
            "f []".into(),
            "f [1,2]".into(),
            format!("node {}", node.id()),
        ]
    );
}

/// 68: an unknown or failing service aborts configuring, naming it; the
/// services after it do not run.
#[test]
fn failing_service_aborts_68() {
    let ran = Arc::new(Mutex::new(Vec::<String>::new()));
    let setup = |n: &Node| {
        n.register("x::boom", |_| panic!("kaputt"));
        let r = ran.clone();
        n.register("x::after", move |_| r.lock().unwrap().push("after".into()));
    };
    let file = rc(r#"{"binds": [], "secret": "s", "services": ["x::boom", "x::after"]}"#);
    match Node::from_profile(&file, Some("f68"), &Map::new(), setup) {
        Err(e @ Error::Service { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("x::boom") && text.contains("kaputt"),
                "{text}"
            );
        }
        other => panic!(
            "expected a service error, got {:?}",
            other.map(|n| n.id().clone())
        ),
    }
    assert!(ran.lock().unwrap().is_empty());

    for (services, name) in [
        (r#"["x::missing", "x::after"]"#, "x::missing"),
        (r#"["Nope::"]"#, "Nope::"),
    ] {
        let file = rc(&format!(
            r#"{{"binds": [], "secret": "s", "services": {services}}}"#
        ));
        let err = Node::from_profile(&file, Some("u68"), &Map::new(), setup)
            .expect_err("unknown service refused");
        assert!(
            matches!(&err, Error::Service { name: n, .. } if n == name),
            "{err}"
        );
    }
    assert!(ran.lock().unwrap().is_empty());

    let file = rc(r#"{"binds": [], "services": "x::after"}"#);
    let err = Node::from_profile(&file, None, &Map::new(), setup)
        .err()
        .unwrap();
    assert!(err.to_string().contains("services"), "{err}");
}

/// The network keys of the file reach the node's `Config`, with bad values
/// named.
#[test]
fn config_from_rc_reads_timing_keys() {
    let file = rc(
        r#"{"secret": "s", "monitor_timeout": 5, "connect_interval": "0.5", "busy_wait": 0.00005}"#,
    );
    let resolved = aemp::rcfile::resolve(&file, None, &Map::new(), false, false).expect("resolves");
    let cfg = aemp::Config::from_rc(&resolved).unwrap();
    assert_eq!(cfg.monitor_timeout, Duration::from_secs(5));
    assert_eq!(cfg.connect_interval, Duration::from_millis(500));
    assert_eq!(cfg.busy_wait, Duration::from_micros(50));
    // Not in the file: the defaults.
    assert_eq!(cfg.tick, Duration::from_secs(4));
    assert_eq!(cfg.unsent_limit, 128 << 20);
    assert_eq!(cfg.unsent_high_water, 1 << 20);
    assert_eq!(cfg.thread_stack_size, None);

    let file = rc(
        r#"{"secret": "s", "tick": 1.5, "unsent_limit": 1000000, "unsent_high_water": "65536", "thread_stack_size": 262144}"#,
    );
    let resolved = aemp::rcfile::resolve(&file, None, &Map::new(), false, false).expect("resolves");
    let cfg = aemp::Config::from_rc(&resolved).unwrap();
    assert_eq!(cfg.tick, Duration::from_millis(1500));
    assert_eq!(cfg.unsent_limit, 1_000_000);
    assert_eq!(cfg.unsent_high_water, 65536);
    assert_eq!(cfg.thread_stack_size, Some(256 << 10));
    for bad in [
        r#""thread_stack_size": -4096"#,
        r#""tick": -1"#,
        r#""unsent_limit": 1.5"#,
        r#""unsent_high_water": "lots""#,
    ] {
        let file = rc(&format!(r#"{{"secret": "s", {bad}}}"#));
        let resolved =
            aemp::rcfile::resolve(&file, None, &Map::new(), false, false).expect("resolves");
        let err = aemp::Config::from_rc(&resolved).unwrap_err();
        let key = bad.split('"').nth(1).unwrap();
        assert!(
            matches!(&err, Error::Config { key: k, .. } if k == key),
            "{bad}: {err}"
        );
    }

    let file = rc(r#"{"secret": "s", "busy_wait": "soon"}"#);
    let resolved = aemp::rcfile::resolve(&file, None, &Map::new(), false, false).expect("resolves");
    let err = aemp::Config::from_rc(&resolved).unwrap_err();
    assert!(
        matches!(&err, Error::Config { key, .. } if key == "busy_wait"),
        "{err}"
    );
}
