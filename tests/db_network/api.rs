//! The `db_*` and `grp_*` API on a small network (one seed, a few
//! slaves): visibility, `db_mon` calls, guards, `db_reg`, validation,
//! requests queued until a master is found, `'l` publication.

use super::*;
use aemp::protocol::db::DbMonEvent;
use crossbeam_channel::{unbounded, Receiver};
use serde_json::json;

fn mon(n: &Node, fam: &str) -> (aemp::DbMonGuard, Receiver<DbMonEvent>) {
    let (tx, rx) = unbounded();
    let g = n
        .db_mon(fam, move |ev| {
            let _ = tx.send(ev.clone());
        })
        .unwrap();
    (g, rx)
}

fn next(rx: &Receiver<DbMonEvent>) -> DbMonEvent {
    rx.recv_timeout(WAIT).expect("no db_mon event")
}

fn quiet(rx: &Receiver<DbMonEvent>, ms: u64) {
    if let Ok(ev) = rx.recv_timeout(Duration::from_millis(ms)) {
        panic!("unexpected db_mon event {ev:?}");
    }
}

fn keys(n: &Node, fam: &str) -> Vec<String> {
    n.db_keys_wait(fam, WAIT).unwrap()
}

#[test]
fn db_set_visible_everywhere_83_84() {
    let s = seed();
    let a = slave("a", &[&s]);
    let b = slave("b", &[&s]);
    a.db_set("fam", "k", "v").unwrap().forget();
    until("k on b", || {
        let f = b.db_family_wait("fam", WAIT).unwrap();
        (f.get("k") == Some(&json!("v"))).then_some(())
    });
    assert_eq!(keys(&b, "fam"), ["k"]);
    assert_eq!(b.db_values_wait("fam", WAIT).unwrap(), [json!("v")]);
    assert_eq!(s.db_family_wait("fam", WAIT).unwrap().len(), 1);
    assert!(s.is_global());
    assert!(!a.is_global());
}

#[test]
fn db_mon_first_call_prompt_even_empty_85_and_deltas_86() {
    let s = seed();
    let a = slave("a", &[&s]);
    let b = slave("b", &[&s]);
    let (_g, rx) = mon(&b, "empty");
    let first = next(&rx);
    assert!(first.fam.is_empty() && first.add.is_empty() && first.chg.is_empty());
    a.db_set("empty", "k", 1).unwrap().forget();
    let ev = next(&rx);
    assert_eq!(
        (ev.add.as_slice(), ev.fam.get("k")),
        (&["k".to_string()][..], Some(&json!(1)))
    );
    a.db_set("empty", "k", 2).unwrap().forget();
    let ev = next(&rx);
    assert_eq!(ev.chg, ["k"]);
    assert_eq!(ev.fam.get("k"), Some(&json!(2)));
    a.db_del("empty", &["k"]).unwrap();
    let ev = next(&rx);
    assert_eq!(ev.del, ["k"]);
    assert!(ev.fam.is_empty());
}

#[test]
fn equal_value_sends_nothing_87_and_guards_88() {
    let s = seed();
    let a = slave("a", &[&s]);
    let (mg, rx) = mon(&s, "f87");
    next(&rx);
    let g = a.db_set("f87", "k", "same").unwrap();
    assert_eq!(next(&rx).add, ["k"]);
    a.db_set("f87", "k", "same").unwrap().forget();
    quiet(&rx, 300);
    drop(g);
    assert_eq!(next(&rx).del, ["k"]);
    drop(mg);
    a.db_set("f87", "k2", 1).unwrap().forget();
    quiet(&rx, 300);
}

#[test]
fn db_reg_removed_on_normal_kill_89_and_self_90() {
    let s = seed();
    let a = slave("a", &[&s]);
    let p = a.port();
    a.db_reg("f89", &p).unwrap().forget();
    until("registered", || {
        keys(&s, "f89").contains(&p.to_string()).then_some(())
    });
    a.kil(&p, aemp::Reason::normal()).unwrap();
    until("removed", || keys(&s, "f89").is_empty().then_some(()));
    // $SELF inside port context.
    let (tx, rx) = unbounded();
    let a2 = a.clone();
    let q = a.port_fn(move |_| {
        let _ = tx.send(a2.db_reg_self("f90").map(|g| g.forget()).is_ok());
    });
    a.snd(&q, aemp::msg!["go"]);
    assert!(rx.recv_timeout(WAIT).unwrap());
    until("self registered", || {
        (keys(&s, "f90") == [q.to_string()]).then_some(())
    });
    assert!(matches!(
        a.db_reg_self("f90"),
        Err(aemp::Error::NoCurrentPort { .. })
    ));
}

#[test]
fn db_del_never_touches_others_keys_91() {
    let s = seed();
    let a = slave("a", &[&s]);
    let b = slave("b", &[&s]);
    a.db_set("f91", "k", 1).unwrap().forget();
    until("k", || (keys(&b, "f91") == ["k"]).then_some(()));
    b.db_del("f91", &["k"]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(keys(&b, "f91"), ["k"]);
}

#[test]
fn second_db_mon_gets_current_contents_93() {
    let s = seed();
    let a = slave("a", &[&s]);
    a.db_set("f93", "k", 1).unwrap().forget();
    let (_g1, rx1) = mon(&a, "f93");
    until("k in first", || {
        next(&rx1).fam.contains_key("k").then_some(())
    });
    let (_g2, rx2) = mon(&a, "f93");
    let ev = next(&rx2);
    assert_eq!(ev.add, ["k"]);
}

#[test]
fn grp_compat_97() {
    let s = seed();
    let a = slave("a", &[&s]);
    let (tx, rx) = unbounded();
    let _g = s
        .grp_mon(
            "g97",
            move |ports: &[String], add: &[String], del: &[String]| {
                let _ = tx.send((ports.to_vec(), add.to_vec(), del.to_vec()));
            },
        )
        .unwrap();
    let p = a.port();
    let reg = a.grp_reg("g97", &p).unwrap();
    let (ports, add, del) = rx.recv_timeout(WAIT).unwrap();
    assert_eq!(
        (ports, add, del.len()),
        (vec![p.to_string()], vec![p.to_string()], 0)
    );
    assert_eq!(s.grp_get("g97"), Some(vec![p.to_string()]));
    assert_eq!(a.grp_get("g97"), None, "grp_get works on global nodes only");
    drop(reg);
    let (ports, _, del) = rx.recv_timeout(WAIT).unwrap();
    assert!(ports.is_empty());
    assert_eq!(del, [p.to_string()]);
}

#[test]
fn validation_and_blocking_rules() {
    let s = seed();
    let e = s.db_set("1bad", "k", 1).unwrap_err();
    assert!(e.to_string().contains("\"1bad\""), "{e}");
    let e = s.db_set("ok", "", 1).unwrap_err();
    assert!(e.to_string().contains("\"ok\""), "{e}");
    assert!(s.db_mon("a b", |_| {}).is_err());
    assert!(s.db_keys("", |_| {}).is_err());
    // Blocking forms refuse the dispatcher.
    let (tx, rx) = unbounded();
    let s2 = s.clone();
    let p = s.port_fn(move |_| {
        let _ = tx.send(s2.db_keys_wait("f", WAIT).err());
    });
    s.snd(&p, aemp::msg!["x"]);
    let e = rx.recv_timeout(WAIT).unwrap();
    assert!(
        matches!(e, Some(aemp::Error::WouldBlockDispatcher { .. })),
        "{e:?}"
    );
    // Without a master a query waits; the time-out says so.
    let lonely = Node::with_config(cfg("lonely")).unwrap();
    let e = lonely
        .db_keys_wait("f", Duration::from_millis(100))
        .unwrap_err();
    assert!(matches!(e, aemp::Error::DbTimeout { .. }), "{e}");
    // A node without a network.
    let local = Node::new("local-db").unwrap();
    assert!(matches!(
        local.db_set("f", "k", 1),
        Err(aemp::Error::NoNetwork { .. })
    ));
}

#[test]
fn queued_requests_answered_once_a_master_is_found() {
    let s = seed();
    let a = Node::with_config(cfg("late")).unwrap();
    let (tx, rx) = unbounded();
    for i in 0..3 {
        let tx = tx.clone();
        a.db_keys("fq", move |k| {
            let _ = tx.send((i, k));
        })
        .unwrap();
    }
    a.db_set("fq", "k", 1).unwrap().forget();
    std::thread::sleep(Duration::from_millis(100));
    assert!(rx.is_empty());
    a.add_seed(&addr(&s)).unwrap();
    let got: Vec<i32> = (0..3).map(|_| rx.recv_timeout(WAIT).unwrap().0).collect();
    assert_eq!(got, [0, 1, 2], "in order");
}

#[test]
fn wildcard_bind_publishes_interface_addresses() {
    let mut c = cfg("wild");
    c.binds = vec!["*:0".into()];
    let s = Node::with_config(c).unwrap();
    s.add_seed(&format!("127.0.0.1:{}", s.listen_addrs()[0].port()))
        .unwrap();
    assert!(s.is_global(), "its own address among its seeds");
    let l = s.db_family_wait("'l", WAIT).unwrap();
    let mine = l[s.id().as_str()].as_array().unwrap().clone();
    let port = s.listen_addrs()[0].port();
    assert!(
        mine.contains(&json!(format!("127.0.0.1:{port}"))),
        "{mine:?}"
    );
    assert!(mine
        .iter()
        .all(|a| !a.as_str().unwrap().starts_with("0.0.0.0")));
}

#[test]
fn a_query_time_out_names_why_the_seeds_could_not_be_reached() {
    let s = seed();
    let lost = Node::with_config(cfg("lost").secret("wrong").seeds([addr(&s)])).unwrap();
    let e = lost
        .db_keys_wait("f", Duration::from_millis(500))
        .unwrap_err();
    match &e {
        aemp::Error::DbTimeout { cause: Some(c), .. } => {
            assert!(c.contains("token mismatch"), "{e}")
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains(&addr(&s)), "{e}");
}
