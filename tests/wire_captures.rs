//! Test vectors from real AnyEvent::MP captures (tests/data, secret `geheim`).

use aemp::transport::auth::{self, AuthLine, AuthMethod, Trust};

const SECRET: &[u8] = b"geheim";

const S1: &str = "aemp;1;perlpeer;tls_sha3_512,hmac_sha3_512,tls_anon,cleartext;cbor,json,storable;peeraddr=127.0.0.1:48718;gproto=1;mproto=1;provider=AE-2.01";
const S2: &str =
    "+o1JxHiqf/JkyUZCoA+nB2HlG/iGSzOY7V9FqCYvlHNZkUQphuwNtMS3+rF1QExmW7G4+hEz8d5h95PtL+gxGkwF";
const C1: &str = "aemp;1;rustlike;tls_sha3_512,hmac_sha3_512,tls_anon,cleartext;json;provider=AE-2.01;gproto=1;mproto=1;peeraddr=127.0.0.1:4041";
const C2: &str =
    "b7Cz+u70Tytr8BWqXNCiq5LwCwyYnafE/tia/4yk2cVzuJ2qrMTNgY0QIVe8zywgZwJtXh8QExTO41xefpmv5oKC";
const C_TOKEN: &str = "24cd4e90d65e57a82a270d1793bca63d8fdebbebf9c3d191562d9ea1ee8d2138f1745fd60d32decf75b72baac59b3e1724d12387919cb99dd75bb4309a16eb30";
const S_TOKEN: &str = "75028334b3b653783a7d025d7171b0807c441adc15a8fc8d6185f91fa3e34efad3a593e5042ad954fd6d7938d503fa9590dc8ec09243e612922d53875d95aa14";

#[test]
fn protocol_md_test_vector_both_directions() {
    let m_c = auth::auth_message(C1.as_bytes(), C2.as_bytes(), S1.as_bytes(), S2.as_bytes());
    let m_s = auth::auth_message(S1.as_bytes(), S2.as_bytes(), C1.as_bytes(), C2.as_bytes());
    let hmac = AuthMethod::HmacSha3_512;
    assert_eq!(
        auth::make_token(hmac, Some(SECRET), &m_c).as_deref(),
        Some(C_TOKEN)
    );
    assert_eq!(
        auth::make_token(hmac, Some(SECRET), &m_s).as_deref(),
        Some(S_TOKEN)
    );
    assert_eq!(
        auth::verify_token(hmac, C_TOKEN, Some(SECRET), false, &m_c),
        Ok(Trust::Trusted)
    );
    assert_eq!(
        auth::verify_token(hmac, S_TOKEN, Some(SECRET), false, &m_s),
        Ok(Trust::Trusted)
    );
    assert!(auth::verify_token(hmac, S_TOKEN, Some(SECRET), false, &m_c).is_err());
    assert!(auth::verify_token(hmac, C_TOKEN, Some(b"wrong"), false, &m_c).is_err());
}

#[test]
fn cleartext_token_is_hex_of_secret() {
    let m = b"whatever";
    assert_eq!(
        auth::verify_token(
            AuthMethod::Cleartext,
            "67656865696d",
            Some(SECRET),
            false,
            m
        ),
        Ok(Trust::Trusted)
    );
    assert!(auth::verify_token(
        AuthMethod::Cleartext,
        "67656865696e",
        Some(SECRET),
        false,
        m
    )
    .is_err());
    assert_eq!(
        auth::make_token(AuthMethod::Cleartext, Some(SECRET), m),
        None
    );
}

#[test]
fn tls_methods_need_tls() {
    let m = b"M";
    let tok = auth::make_token(AuthMethod::TlsSha3_512, None, m).unwrap();
    assert_eq!(
        auth::verify_token(AuthMethod::TlsSha3_512, &tok, None, true, m),
        Ok(Trust::Trusted)
    );
    assert!(auth::verify_token(AuthMethod::TlsSha3_512, &tok, None, false, m).is_err());
    assert_eq!(
        auth::verify_token(AuthMethod::TlsAnon, "", None, true, m),
        Ok(Trust::Untrusted)
    );
    assert!(auth::verify_token(AuthMethod::TlsAnon, "", None, false, m).is_err());
}

#[test]
fn choosing_the_method_to_send() {
    let perl: Vec<String> = ["tls_sha3_512", "hmac_sha3_512", "tls_anon", "cleartext"]
        .map(String::from)
        .to_vec();
    let offer = [AuthMethod::TlsSha3_512, AuthMethod::HmacSha3_512];
    assert_eq!(
        auth::choose_method(&perl, &offer, false, true),
        Some(AuthMethod::HmacSha3_512)
    );
    assert_eq!(
        auth::choose_method(&perl, &offer, true, true),
        Some(AuthMethod::TlsSha3_512)
    );
    assert_eq!(auth::choose_method(&perl, &offer, false, false), None);
    // cleartext / tls_anon are never sent even if offered
    let all = AuthMethod::ALL;
    let only: Vec<String> = vec!["cleartext".into(), "tls_anon".into()];
    assert_eq!(auth::choose_method(&only, &all, true, true), None);
}

#[test]
fn auth_line_roundtrip() {
    let l = AuthLine::parse(&format!("hmac_sha3_512;{C_TOKEN};json")).unwrap();
    assert_eq!(l.method, "hmac_sha3_512");
    assert_eq!(l.token, C_TOKEN);
    assert_eq!(l.framing, "json");
    assert_eq!(l.encode(), format!("hmac_sha3_512;{C_TOKEN};json\n"));
    assert!(AuthLine::parse("a;b").is_none());
    assert!(AuthLine::parse("a;b;c;d").is_none());
}
