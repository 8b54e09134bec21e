//! TLS with a self-signed certificate generated here (items 72, 70).

use super::*;
use aemp::msg;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::{X509NameBuilder, X509};

/// PEM text with a fresh private key and its self-signed certificate.
pub(super) fn self_signed() -> String {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "aemp test").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let cert = b.build();
    let mut pem = String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    pem.push_str(&String::from_utf8(cert.to_pem().unwrap()).unwrap());
    pem
}

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
