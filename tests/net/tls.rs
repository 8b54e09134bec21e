//! TLS with a self-signed certificate generated per test (`support/cert.rs`; items 72, 70).

use super::*;
use aemp::msg;

pub(super) use crate::cert::self_signed;

pub(super) fn tls_node(tag: &str, cert: Option<&str>, secret: Option<&str>) -> Node {
    let mut c = cfg(tag).monitor_timeout(Duration::from_millis(1500));
    c.secret = secret.map(str::to_string);
    c.cert = cert.map(str::to_string);
    let _ = env_logger::builder().is_test(true).try_init();
    Node::with_config(c).unwrap()
}

/// Sends one message a → b; true if it arrived, false if a's monitor
/// fired instead.
fn talks(a: &Node, b: &Node) -> bool {
    introduce(a, b);
    let (p, rx) = sink(b);
    let (tx, died) = crossbeam_channel::unbounded();
    let _g = a.mon(&p, move |r| {
        let _ = tx.send(r);
    });
    a.snd(&p, msg!["over tls?", "x".repeat(100_000)]);
    crossbeam_channel::select! {
        recv(rx) -> m => { assert_eq!(m.unwrap()[0], "over tls?"); true }
        recv(died) -> r => { assert_eq!(r.unwrap().kind(), Some("transport_error")); false }
        default(Duration::from_secs(10)) => panic!("neither delivery nor monitor"),
    }
}

#[test]
fn same_cert_uses_tls_without_secret_72() {
    let pem = self_signed();
    let a = tls_node("a", Some(&pem), None);
    let b = tls_node("b", Some(&pem), None);
    assert!(talks(&a, &b));
    // And the other way, on the same connection.
    assert!(talks(&b, &a));
}

#[test]
fn different_certs_fail_verification() {
    let a = tls_node("a", Some(&self_signed()), None);
    let b = tls_node("b", Some(&self_signed()), None);
    assert!(!talks(&a, &b));
}

#[test]
fn cert_on_one_side_falls_back_to_hmac() {
    let pem = self_signed();
    let a = tls_node("a", Some(&pem), Some("s"));
    let b = tls_node("b", None, Some("s"));
    assert!(talks(&a, &b));
    let c = tls_node("c", None, Some("s"));
    let d = tls_node("d", Some(&pem), Some("s"));
    assert!(talks(&c, &d));
}

#[test]
fn cert_on_one_side_without_secret_fails() {
    let pem = self_signed();
    let a = tls_node("a", Some(&pem), None);
    // b can only do hmac, for which a has no secret.
    let b = tls_node("b", None, Some("s"));
    assert!(!talks(&a, &b));
    assert!(!talks(&b, &a));
}

#[test]
fn bad_pem_is_an_error() {
    let e = Node::with_config(cfg("x").cert("not a pem")).unwrap_err();
    assert!(e.to_string().contains("certificate"), "{e}");
}
