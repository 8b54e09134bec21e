//! The crash report: a port that dies abnormally where no monitor tells
//! a user of it is logged at WARN with the port and the reason, also when
//! its only monitors are aemp's own (`db_reg`'s entry removal, `cal`
//! without a time-out). Its own test binary: it installs a logger that
//! keeps the records.

use aemp::{msg, Config, Node, PortId, Reason};
use parking_lot::Mutex;
use std::time::{Duration, Instant};

#[path = "support/wait.rs"]
mod wait;
use wait::recv;

static RECORDS: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

struct Keep;

impl log::Log for Keep {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, r: &log::Record) {
        RECORDS.lock().push((r.level(), r.args().to_string()));
    }
    fn flush(&self) {}
}

fn init() {
    static LOGGER: Keep = Keep;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
}

/// The WARN crash report naming `port`, waiting for it up to the test
/// limit (the death is processed on the dispatcher).
fn report(port: &PortId) -> Option<String> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let found = RECORDS
            .lock()
            .iter()
            .find(|(l, t)| *l == log::Level::Warn && t.contains(port.as_str()))
            .map(|(_, t)| t.clone());
        if found.is_some() || Instant::now() > end {
            return found;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// No crash report for `port`, once a later death on the same dispatcher
/// has been reported (so the first one was processed).
fn no_report(node: &Node, port: &PortId) {
    let marker = node.port_fn(|_| panic!("marker"));
    node.snd(&marker, msg!["go"]);
    assert!(report(&marker).is_some(), "the marker was not reported");
    let text: Vec<String> = RECORDS
        .lock()
        .iter()
        .filter(|(_, t)| t.contains(port.as_str()))
        .map(|(_, t)| t.clone())
        .collect();
    assert!(text.is_empty(), "{text:?}");
}

#[test]
fn an_unmonitored_crash_is_reported_at_warn_with_port_and_reason() {
    init();
    let node = Node::new("crash-a").unwrap();
    let p = node.port_fn(|_| panic!("kaputt"));
    node.snd(&p, msg!["go"]);
    let text = report(&p).expect("no crash report");
    assert!(
        text.contains("kaputt") && text.contains("crash report"),
        "{text}"
    );
    // A kill with a reason, too.
    let q = node.port_fn(|_| {});
    node.kil(&q, Reason::from(msg!["gone", 42])).unwrap();
    let text = report(&q).expect("no crash report for the kill");
    assert!(text.contains("gone"), "{text}");
}

#[test]
fn a_crash_a_user_monitor_receives_is_not_reported() {
    init();
    let node = Node::new("crash-b").unwrap();
    let p = node.port_fn(|_| panic!("seen"));
    let (tx, rx) = crossbeam_channel::unbounded();
    node.mon(&p, move |r| tx.send(r).unwrap()).forget();
    node.snd(&p, msg!["go"]);
    assert_eq!(recv(&rx).kind(), Some("die"));
    // A normal kill is no crash either.
    let q = node.port_fn(|_| {});
    node.kil(&q, Reason::normal()).unwrap();
    no_report(&node, &p);
    no_report(&node, &q);
}

#[test]
fn a_crash_watched_only_by_db_reg_or_cal_is_reported() {
    init();
    let node = Node::with_config(Config::new("crash-c/%u").secret("s")).unwrap();
    let worker = node.port_fn(|_| panic!("registered worker"));
    let _entry = node.db_reg("workers", &worker).unwrap();
    node.snd(&worker, msg!["go"]);
    let text = report(&worker).expect("db_reg hid the crash");
    assert!(text.contains("registered worker"), "{text}");

    let callee = node.port_fn(|_| panic!("called"));
    let (tx, rx) = crossbeam_channel::unbounded();
    node.cal(&callee, msg!["hi"], None, move |r| tx.send(r).unwrap());
    assert_eq!(recv(&rx), None);
    let text = report(&callee).expect("cal hid the crash");
    assert!(text.contains("called"), "{text}");
}
