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

// ---- framing: every capture decoded packet by packet ----

use aemp::transport::framing::{Decoder, Framing, Packet};

fn capture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Splits a capture into its three handshake lines and the packet bytes.
fn split_handshake(data: &[u8]) -> (Vec<String>, &[u8]) {
    let mut lines = Vec::new();
    let mut rest = data;
    for _ in 0..3 {
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .expect("handshake line");
        lines.push(String::from_utf8(rest[..nl].to_vec()).unwrap());
        rest = &rest[nl + 1..];
    }
    (lines, rest)
}

/// Decodes `bytes`, fed in chunks of `chunk` bytes.
fn decode_all(framing: Framing, bytes: &[u8], chunk: usize) -> Vec<Packet> {
    let mut d = Decoder::new(framing);
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk) {
        d.feed(piece);
        while let Some(p) = d.next_packet().expect("valid packet") {
            out.push(p);
        }
    }
    assert_eq!(d.buffered(), 0, "trailing bytes");
    out
}

fn packets(json_list: &str) -> Vec<Packet> {
    serde_json::from_str(json_list).unwrap()
}

fn check_json_capture(name: &str, expected: &str) {
    let data = capture(name);
    let (_, body) = split_handshake(&data);
    let expected = packets(expected);
    for chunk in [1, 7, body.len()] {
        assert_eq!(
            decode_all(Framing::Json, body, chunk),
            expected,
            "{name} chunk {chunk}"
        );
    }
}

#[test]
fn json_session_1_packets() {
    check_json_capture(
        "json-session-1.c2s",
        r#"[["","g_slave"],["","g_slave",{"'l":{"rustlike":["127.0.0.1:41693"]}}],["","g_db_family","interop","b"],["","g_find","perlpeer"],["","g_slave"],["echo","rustlike#AiKIAAPEab","hello",42,{"k":["v",null,true]}],["","snd","rustlike#AiKIAAPEac","delivered"],["","mon1","echo"]]"#,
    );
    check_json_capture(
        "json-session-1.s2c",
        r#"[["","g_global"],["","g_reply","b",{"perlpeer#echo":null}],["","g_found","perlpeer",["127.0.0.1:4040"]],["AiKIAAPEab","hello",42,{"k":["v",null,true]}],["AiKIAAPEac","delivered"]]"#,
    );
}

#[test]
fn json_session_2_packets() {
    check_json_capture(
        "json-session-2.c2s",
        r#"[["","g_slave"],["","g_slave"],["","g_slave",{"interop2":{"k1":{"v":1}},"'l":{"node2":["127.0.0.1:4050"]}}],["","g_db_family","interop","b"],["","g_mon1","interop"],["","g_find","seed"],["","mon1","0oObmMKHKb"],["0oObmMKHKb","node2#1UPE7rqOmb","hello",{"a":1}],["","AnyEvent::MP::_spawn","7E0RGEypmRc","Interop::echo_init","node2#1UPE7rqOmb"],["","mon1","7E0RGEypmRc"],["7E0RGEypmRc","to-spawned",42],["","kil1","7E0RGEypmRc","testkill","bye"],["","g_upd","interop2",null,["k1"]],["","g_mon0","interop"]]"#,
    );
    check_json_capture(
        "json-session-2.s2c",
        r#"[["","g_global"],["","g_reply","b",{"seed#0oObmMKHKb":null}],["","g_chg1","interop",{"seed#0oObmMKHKb":null}],["","g_found","seed",["127.0.0.1:4040"]],["1UPE7rqOmb","pong","hello",{"a":1}],["","mon1","1UPE7rqOmb"],["1UPE7rqOmb","echo","to-spawned","42"],["","kil0","7E0RGEypmRc","testkill","bye"]]"#,
    );
}

/// One direction of `cbor-session.decoded.txt`: handshake lines, then
/// (packet bytes, packet) pairs.
struct Decoded {
    text: Vec<String>,
    packets: Vec<(Vec<u8>, Packet)>,
}

fn parse_decoded_txt() -> Vec<Decoded> {
    let txt = String::from_utf8(capture("cbor-session.decoded.txt")).unwrap();
    let mut dirs = vec![Decoded {
        text: vec![],
        packets: vec![],
    }];
    for line in txt.lines() {
        if line.starts_with("====") {
            dirs.push(Decoded {
                text: vec![],
                packets: vec![],
            });
        } else if let Some(t) = line.strip_prefix("TEXT: ") {
            dirs.last_mut().unwrap().text.push(t.to_owned());
        } else if let Some(c) = line.strip_prefix("CBOR ") {
            let (hex_part, json_part) = c.split_once(" | ").unwrap();
            let bytes = hex::decode(hex_part.split_whitespace().collect::<String>()).unwrap();
            let packet: Packet = serde_json::from_str(json_part).unwrap();
            dirs.last_mut().unwrap().packets.push((bytes, packet));
        }
    }
    dirs
}

#[test]
fn cbor_session_packets_match_decoded_txt() {
    let dirs = parse_decoded_txt();
    assert_eq!(dirs.len(), 2);
    for (dir, name) in dirs.iter().zip(["cbor-session.c2s", "cbor-session.s2c"]) {
        let data = capture(name);
        let (lines, body) = split_handshake(&data);
        assert_eq!(lines, dir.text, "{name} handshake");
        let concat: Vec<u8> = dir.packets.iter().flat_map(|(b, _)| b.clone()).collect();
        assert_eq!(
            body,
            &concat[..],
            "{name}: decoded.txt hex matches the capture"
        );
        let expected: Vec<Packet> = dir.packets.iter().map(|(_, p)| p.clone()).collect();
        for chunk in [1, 5, body.len()] {
            assert_eq!(
                decode_all(Framing::Cbor, body, chunk),
                expected,
                "{name} chunk {chunk}"
            );
        }
        // Each packet alone, too.
        for (bytes, packet) in &dir.packets {
            assert_eq!(
                decode_all(Framing::Cbor, bytes, bytes.len()),
                vec![packet.clone()]
            );
        }
    }
}

#[test]
fn cbor_encoder_writes_text_strings_and_roundtrips() {
    let packet: Packet = serde_json::from_str(r#"["","g_upd","interop2",null,["k1"]]"#).unwrap();
    let mut out = Vec::new();
    aemp::transport::framing::encode(Framing::Cbor, &packet, &mut out).unwrap();
    // 0x85 array(5), 0x60 text(0), 0x65 "g_upd", ..., 0xf6 null
    assert_eq!(out[..2], [0x85, 0x60]);
    assert_eq!(out[2], 0x65);
    assert!(out.contains(&0xf6));
    assert_eq!(decode_all(Framing::Cbor, &out, 3), vec![packet]);
}

// ---- handshake: our state machine accepts each captured peer ----

use aemp::transport::greeting::Greeting;
use aemp::transport::handshake::{Config, Event, Handshake};
use std::time::Instant;

/// Replays one direction: we are the end that sent `own`, the machine is
/// fed everything the other end sent in `peer`.
fn replay(own_name: &str, peer_name: &str) {
    let own = capture(own_name);
    let peer = capture(peer_name);
    let (own_lines, _) = split_handshake(&own);
    let (peer_lines, peer_body) = split_handshake(&peer);
    let g = Greeting::parse(own_lines[0].as_bytes()).unwrap();
    let mut cfg = Config::new(g.node_id.clone());
    cfg.secret = Some(SECRET.to_vec());
    cfg.framings = g
        .framings
        .iter()
        .filter_map(|f| Framing::from_name(f))
        .collect();
    let mut hs = Handshake::with_lines(
        cfg,
        Instant::now(),
        own_lines[0].clone(),
        own_lines[1].clone(),
    );
    assert_eq!(
        hs.take_output(),
        format!("{}\n{}\n", own_lines[0], own_lines[1]).into_bytes()
    );

    let mut events = Vec::new();
    for chunk in peer.chunks(13) {
        if hs.is_done() {
            break;
        }
        events.extend(hs.feed(chunk).unwrap_or_else(|e| panic!("{own_name}: {e}")));
    }
    assert!(hs.is_done(), "{own_name}");
    // Our auth line is byte-identical to the captured one: same token, same framing.
    assert_eq!(
        hs.take_output(),
        format!("{}\n", own_lines[2]).into_bytes(),
        "{own_name}"
    );
    let peer_node = Greeting::parse(peer_lines[0].as_bytes()).unwrap().node_id;
    assert!(matches!(&events[0], Event::PeerGreeting { node_id, .. } if *node_id == peer_node));
    let Some(Event::Established(est)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(est.peer_node_id, peer_node);
    assert!(est.trusted && !est.tls);
    let peer_framing = peer_lines[2].rsplit(';').next().unwrap();
    let own_framing = own_lines[2].rsplit(';').next().unwrap();
    assert_eq!(est.recv_framing.name(), peer_framing);
    assert_eq!(est.send_framing.name(), own_framing);
    // Whatever followed the auth line in the last chunk is the first packets.
    let consumed = peer.len() - peer_body.len();
    let fed = consumed.div_ceil(13) * 13;
    assert_eq!(est.leftover, peer[consumed..fed.min(peer.len())]);
}

#[test]
fn handshakes_of_all_captures_authenticate() {
    for session in ["json-session-1", "json-session-2", "cbor-session"] {
        replay(&format!("{session}.c2s"), &format!("{session}.s2c"));
        replay(&format!("{session}.s2c"), &format!("{session}.c2s"));
    }
}
