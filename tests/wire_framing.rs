//! Framing decoder edge cases: errors, separators, size limits.

use aemp::transport::framing::{encode, Decoder, Framing};
use aemp::transport::Error;
use serde_json::json;

fn all(d: &mut Decoder) -> Result<Vec<Vec<serde_json::Value>>, Error> {
    let mut v = Vec::new();
    while let Some(p) = d.next_packet()? {
        v.push(p);
    }
    Ok(v)
}

#[test]
fn json_tolerates_whitespace_between_packets() {
    let mut d = Decoder::new(Framing::Json);
    d.feed(b" [\"\",1]\n\r\t [\"a\", \"]\\\"[\"] \n");
    assert_eq!(
        all(&mut d).unwrap(),
        vec![vec![json!(""), json!(1)], vec![json!("a"), json!("]\"[")]]
    );
    assert_eq!(d.buffered(), 0);
}

#[test]
fn json_empty_array_is_a_packet() {
    let mut d = Decoder::new(Framing::Json);
    d.feed(b"[][\"\",\"\"]");
    assert_eq!(all(&mut d).unwrap().len(), 2);
}

#[test]
fn json_non_array_is_an_error_naming_framing_and_offset() {
    let mut d = Decoder::new(Framing::Json);
    d.feed(b"[\"\"]{\"a\":1}");
    assert_eq!(d.next_packet().unwrap(), Some(vec![json!("")]));
    let e = d.next_packet().unwrap_err();
    assert!(
        matches!(
            e,
            Error::Framing {
                framing: "json",
                offset: 4,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("not an array"), "{e}");
    // poisoned: same error again
    assert_eq!(d.next_packet().unwrap_err(), e);
}

#[test]
fn json_malformed_is_an_error() {
    let mut d = Decoder::new(Framing::Json);
    d.feed(b"[1,,2]");
    let e = d.next_packet().unwrap_err();
    assert!(
        e.to_string().starts_with("json framing error at byte 0"),
        "{e}"
    );
}

#[test]
fn json_too_large() {
    let mut d = Decoder::with_max_packet(Framing::Json, 10);
    d.feed(b"[\"0123456789\"]");
    assert!(matches!(
        d.next_packet(),
        Err(Error::PacketTooLarge { max: 10, .. })
    ));
    let mut d = Decoder::with_max_packet(Framing::Json, 10);
    d.feed(b"[\"0123456789");
    assert!(matches!(d.next_packet(), Err(Error::PacketTooLarge { .. })));
}

#[test]
fn cbor_non_array_and_garbage() {
    let mut d = Decoder::new(Framing::Cbor);
    d.feed(&[0xa0]);
    let e = d.next_packet().unwrap_err();
    assert!(
        e.to_string()
            .contains("cbor framing error at byte 0: packet is not an array"),
        "{e}"
    );
    let mut d = Decoder::new(Framing::Cbor);
    d.feed(&[0x81, 0x1c]);
    assert!(d.next_packet().is_err());
    let mut d = Decoder::new(Framing::Cbor);
    d.feed(&[0x81, 0xff]);
    assert!(d.next_packet().is_err());
}

#[test]
fn cbor_byte_strings_are_octets_as_perl_json_sends_them() {
    // ["caf\xe9", "\xe2\x98\xba"] as byte strings: one character per
    // octet, whether or not the octets happen to be UTF-8.
    let mut d = Decoder::new(Framing::Cbor);
    d.feed(&[0x82, 0x44, b'c', b'a', b'f', 0xe9, 0x43, 0xe2, 0x98, 0xba]);
    assert_eq!(
        d.next_packet().unwrap(),
        Some(vec![json!("caf\u{e9}"), json!("\u{e2}\u{98}\u{ba}")])
    );
}

/// One Perl packet as CBOR::XS and JSON::XS send it (tests/data/README.md):
/// both framings give the same message.
#[test]
fn perl_octets_capture_decodes_the_same_in_both_framings() {
    let decode = |framing, bytes: &[u8]| {
        let mut d = Decoder::new(framing);
        d.feed(bytes);
        d.next_packet().unwrap().unwrap()
    };
    let cbor = decode(Framing::Cbor, include_bytes!("data/perl-octets.cbor"));
    let json = decode(Framing::Json, include_bytes!("data/perl-octets.json"));
    assert_eq!(cbor, json);
    let cafe = "caf\u{e9}";
    assert_eq!(
        cbor,
        vec![
            json!("perlnode#abc"),
            json!("bytes"),
            json!(cafe),
            json!("\u{e2}\u{98}\u{ba}"),
            json!("\u{263a}"),
            json!("plain"),
            json!([cafe]),
            json!({ "k": cafe }),
        ]
    );
}

/// A value that cannot become JSON (an integer below -2^63) loses its own
/// packet only; the packets after it decode.
#[test]
fn cbor_undecodable_value_drops_only_its_packet() {
    let mut d = Decoder::new(Framing::Cbor);
    let mut bytes = vec![
        0x82, 0x61, b'p', 0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];
    bytes.extend([0x82, 0x61, b'p', 0x01]);
    d.feed(&bytes);
    let e = d.next_packet().unwrap_err();
    assert!(!e.is_fatal(), "{e}");
    assert!(matches!(e, Error::BadPacket { offset: 0, .. }), "{e}");
    assert_eq!(d.next_packet().unwrap(), Some(vec![json!("p"), json!(1)]));
    assert_eq!(d.next_packet().unwrap(), None);
}

/// Nesting is capped at 512 levels (CBOR::XS's default max_depth): one
/// level more fails the stream at once, before the rest is buffered, so a
/// peer's 0x81 0x81 ... costs no memory.
#[test]
fn cbor_nesting_beyond_the_depth_cap_closes_the_stream() {
    let nested = |levels: usize| {
        let mut b = vec![0x81; levels];
        b.push(0x00);
        b
    };
    let mut d = Decoder::new(Framing::Cbor);
    d.feed(&nested(512));
    assert!(d.next_packet().unwrap().is_some(), "512 levels decode");
    let mut d = Decoder::new(Framing::Cbor);
    d.feed(&vec![0x81; 4096]);
    let e = d.next_packet().unwrap_err();
    assert!(
        e.is_fatal() && e.to_string().contains("nesting deeper than 512"),
        "{e}"
    );
    assert_eq!(d.next_packet().unwrap_err(), e, "the stream stays broken");
}

#[test]
fn cbor_byte_string_map_keys_and_indefinite_lengths() {
    // [ {b"k": h"76"} ] with an indefinite outer array and map
    let mut d = Decoder::new(Framing::Cbor);
    d.feed(&[0x9f, 0xbf, 0x41, b'k', 0x41, b'v', 0xff, 0xf6, 0xff]);
    assert_eq!(
        d.next_packet().unwrap(),
        Some(vec![json!({"k": "v"}), json!(null)])
    );
}

#[test]
fn cbor_huge_declared_length_is_too_large_not_an_allocation() {
    let mut d = Decoder::with_max_packet(Framing::Cbor, 1000);
    d.feed(&[0x81, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert!(matches!(d.next_packet(), Err(Error::PacketTooLarge { .. })));
    let mut d = Decoder::new(Framing::Cbor);
    d.feed(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    assert_eq!(d.next_packet().unwrap(), None);
}

#[test]
fn encoders_append() {
    for f in [Framing::Json, Framing::Cbor] {
        let mut out = b"xy".to_vec();
        encode(f, &[json!(""), json!("g_global")], &mut out).unwrap();
        assert_eq!(&out[..2], b"xy");
        let mut d = Decoder::new(f);
        d.feed(&out[2..]);
        assert_eq!(
            d.next_packet().unwrap(),
            Some(vec![json!(""), json!("g_global")])
        );
    }
    let mut out = Vec::new();
    encode(
        Framing::Json,
        &[json!(""), json!({"a": [1, null]})],
        &mut out,
    )
    .unwrap();
    assert_eq!(out, br#"["",{"a":[1,null]}]"#);
}

#[test]
fn large_packet_in_small_chunks_is_linear() {
    // 4 MiB string in 1 KiB chunks: a quadratic rescan would take far too long in debug builds.
    let big = "x".repeat(4 << 20);
    for f in [Framing::Json, Framing::Cbor] {
        let mut bytes = Vec::new();
        encode(f, &[json!(""), json!(big), json!([1, 2, 3])], &mut bytes).unwrap();
        let mut d = Decoder::new(f);
        let mut got = Vec::new();
        for c in bytes.chunks(1024) {
            d.feed(c);
            while let Some(p) = d.next_packet().unwrap() {
                got.push(p);
            }
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got[0][1].as_str().map(str::len), Some(4 << 20));
    }
}
