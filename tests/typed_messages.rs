//! Typed messages: octet strings as Perl sends them.

use aemp::transport::framing::{encode, Decoder, Framing};
use aemp::{msg, Message, Octets};
use serde_json::json;

#[test]
fn octets_travel_as_one_character_per_octet() {
    let bytes: Vec<u8> = (0..=255).collect();
    let o = Octets::from(bytes.clone());
    let v = serde_json::to_value(&o).unwrap();
    let s = v.as_str().unwrap();
    assert_eq!(s.chars().count(), 256);
    assert!(s.chars().enumerate().all(|(i, c)| u32::from(c) == i as u32));
    let back: Octets = serde_json::from_value(v).unwrap();
    assert_eq!(Vec::from(back), bytes);
    // Perl's "caf\xe9" as JSON sends it.
    let m = msg!["bytes", Octets::from(&b"caf\xe9"[..])];
    assert_eq!(m, Message(vec![json!("bytes"), json!("caf\u{e9}")]));
    let (_, o): (String, Octets) = m.decode().unwrap();
    assert_eq!(o.as_slice(), b"caf\xe9");
}

#[test]
fn octets_reject_characters_above_ff_naming_them() {
    let e = msg!["bytes", "ok\u{263a}"]
        .decode::<(String, Octets)>()
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("element 1") && text.contains("U+263A"),
        "{text}"
    );
    assert!(serde_json::from_value::<Octets>(json!("\u{100}")).is_err());
    assert!(serde_json::from_value::<Octets>(json!("\u{ff}")).is_ok());
}

#[test]
fn octets_survive_both_framings() {
    let bytes = vec![0u8, 0x7f, 0x80, 0xe2, 0x98, 0xba, 0xff];
    let m = msg!["blob", Octets::from(bytes.clone())];
    for framing in Framing::ALL {
        let mut out = Vec::new();
        encode(framing, &m, &mut out).unwrap();
        let mut d = Decoder::new(framing);
        d.feed(&out);
        let packet = Message(d.next_packet().unwrap().unwrap());
        let (_, o): (String, Octets) = packet.decode().unwrap();
        assert_eq!(o.into_vec(), bytes, "{framing:?}");
    }
    // A CBOR byte string (as Perl's CBOR::XS sends octets) decodes too.
    let mut d = Decoder::new(Framing::Cbor);
    d.feed(&[0x82, 0x44, b'b', b'l', b'o', b'b', 0x42, 0x00, 0xff]);
    let packet = Message(d.next_packet().unwrap().unwrap());
    let (_, o): (Octets, Octets) = packet.decode().unwrap();
    assert_eq!(o.0, vec![0x00, 0xff]);
}
