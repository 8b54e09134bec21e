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
fn cbor_byte_strings_must_be_utf8() {
    let mut d = Decoder::new(Framing::Cbor);
    d.feed(&[0x81, 0x41, 0xff]);
    let e = d.next_packet().unwrap_err();
    assert!(e.to_string().contains("not UTF-8"), "{e}");
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
