//! Typed messages: Serialize values as messages in AEMP's shape and back
//! (tuples, structs in declaration order, enums by tag), prefix decoding,
//! typed send and receive, and octet strings.

use aemp::transport::framing::{encode, Decoder, Framing};
use aemp::{msg, Message, Node, Octets, PortId, Reason};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

/// Field names that sort differently from their declaration order.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct WriteFile {
    zebra: String,
    apple: u32,
    mango: Vec<u8>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
#[serde(rename_all = "snake_case")]
enum Request {
    Ping,
    SetName(String),
    MovePoint(i32, i32),
    WriteFile { zebra: String, apple: u32 },
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Pair(String, u8);

fn round_trip<T>(value: &T, expected: Message)
where
    T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let m = Message::from_value(value).unwrap();
    assert_eq!(m, expected);
    assert_eq!(&m.decode::<T>().unwrap(), value);
}

#[test]
fn tuples_and_tuple_structs_are_their_elements() {
    round_trip(&("point".to_string(), 1, 2.5), msg!["point", 1, 2.5]);
    round_trip(&Pair("p".into(), 7), msg!["p", 7]);
    round_trip(&(), msg![]);
}

#[test]
fn structs_are_field_values_in_declaration_order() {
    let w = WriteFile {
        zebra: "/tmp/x".into(),
        apple: 3,
        mango: vec![1, 2],
    };
    // Not sorted (apple, mango, zebra): the order of declaration.
    round_trip(&w, msg!["/tmp/x", 3, [1, 2]]);
}

#[test]
fn enums_are_tag_then_fields_with_serdes_renaming() {
    round_trip(&Request::Ping, msg!["ping"]);
    round_trip(&Request::SetName("n".into()), msg!["set_name", "n"]);
    round_trip(&Request::MovePoint(-1, 2), msg!["move_point", -1, 2]);
    round_trip(
        &Request::WriteFile {
            zebra: "z".into(),
            apple: 1,
        },
        msg!["write_file", "z", 1],
    );
}

#[test]
fn nested_values_stay_ordinary_json() {
    // serde_json's own shapes inside: an externally tagged enum object.
    let m = Message::from_value(&("outer", Request::SetName("n".into()), vec![("a", 1)])).unwrap();
    assert_eq!(
        m,
        Message::from_vec(vec![
            json!("outer"),
            json!({"set_name": "n"}),
            json!([["a", 1]])
        ])
    );
}

#[test]
fn values_without_a_message_shape_are_encode_errors() {
    let e = Message::from_value(&5).unwrap_err();
    assert!(matches!(e, aemp::Error::Encode(_)), "{e}");
    let map: std::collections::BTreeMap<String, u8> = Default::default();
    assert!(Message::from_value(&map).is_err());
}

#[test]
fn enum_decode_errors_name_the_element() {
    let e = msg!["set_name", 5].decode::<Request>().unwrap_err();
    assert!(e.to_string().contains("element 1"), "{e}");
    let e = msg!["jump"].decode::<Request>().unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("element 0") && text.contains("jump"),
        "{text}"
    );
    let e = msg![5].decode::<Request>().unwrap_err();
    assert!(e.to_string().contains("string tag"), "{e}");
    let e = msg!["move_point", 1].decode::<Request>().unwrap_err();
    assert!(e.to_string().contains("element 2"), "{e}");
    let e = msg!["ping", 1].decode::<Request>().unwrap_err();
    assert!(e.to_string().contains("extra element"), "{e}");
    let e = msg!["z", "not a number", [0u8; 0]]
        .decode::<WriteFile>()
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("element 1") && text.contains(r#"["z","not a number",[]]"#),
        "{text}"
    );
}

#[test]
fn decode_prefix_keeps_the_rest() {
    let port: PortId = "n#p".parse().unwrap();
    let m = msg!["down", &port, "die", "boom"];
    let ((tag, who), rest): ((String, PortId), Message) = m.decode_prefix().unwrap();
    assert_eq!(tag, "down");
    assert_eq!(who, port);
    assert_eq!(Reason::from(rest), Reason::die("boom"));
    // A normal kill appends nothing: the rest is empty.
    let (_, rest) = msg!["down", &port]
        .decode_prefix::<(String, PortId)>()
        .unwrap();
    assert!(Reason::from(rest).is_normal());
    // An enum prefix takes its own elements only.
    let (r, rest) = msg!["set_name", "n", 9].decode_prefix::<Request>().unwrap();
    assert_eq!((r, rest), (Request::SetName("n".into()), msg![9]));
    let e = msg!["down"]
        .decode_prefix::<(String, PortId)>()
        .unwrap_err();
    assert!(e.to_string().contains("element 1"), "{e}");
}

#[test]
fn mon_send_reason_decodes_with_a_prefix() {
    let node = Node::new("typed-mon-send").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let watcher = node.port_fn(move |m| tx.send(m).unwrap());
    let victim = node.port();
    node.mon_send(&victim, &watcher, msg!["down", &victim])
        .forget();
    node.kil(&victim, aemp::reason!["die", "gone"]).unwrap();
    let m = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let ((tag, who), rest): ((String, PortId), Message) = m.decode_prefix().unwrap();
    assert_eq!((tag.as_str(), who), ("down", victim));
    assert_eq!(Reason::from(rest), Reason::die("gone"));
}

#[test]
fn typed_send_and_receive_on_a_thread_port() {
    let node = Node::new("typed-thread").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let p = node.port_thread(move |mb| -> aemp::Result<()> {
        let write: Request = mb.get_tag_as("write_file")?;
        let first: Request = mb.get_as()?;
        let bad = mb.get_as::<Request>().unwrap_err().to_string();
        tx.send((write, first, bad)).unwrap();
        Ok(())
    });
    node.snd_value(&p, &Request::SetName("a".into())).unwrap();
    node.snd_value(
        &p,
        &Request::WriteFile {
            zebra: "z".into(),
            apple: 2,
        },
    )
    .unwrap();
    node.snd(&p, msg!["nonsense"]);
    let (write, first, bad) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        write,
        Request::WriteFile {
            zebra: "z".into(),
            apple: 2
        }
    );
    assert_eq!(first, Request::SetName("a".into()));
    assert!(bad.contains("nonsense"), "{bad}");
    assert!(node.snd_value(&p, &1).is_err());
}

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
    assert_eq!(
        m,
        Message::from_vec(vec![json!("bytes"), json!("caf\u{e9}")])
    );
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
    let m = Message::from_value(&("blob", Octets::from(bytes.clone()))).unwrap();
    for framing in Framing::ALL {
        let mut out = Vec::new();
        encode(framing, &m, &mut out).unwrap();
        let mut d = Decoder::new(framing);
        d.feed(&out);
        let packet = Message::from_vec(d.next_packet().unwrap().unwrap());
        let (_, o): (String, Octets) = packet.decode().unwrap();
        assert_eq!(o.into_vec(), bytes, "{framing:?}");
    }
    // A CBOR byte string (as Perl's CBOR::XS sends octets) decodes too.
    let mut d = Decoder::new(Framing::Cbor);
    d.feed(&[0x82, 0x44, b'b', b'l', b'o', b'b', 0x42, 0x00, 0xff]);
    let packet = Message::from_vec(d.next_packet().unwrap().unwrap());
    let (_, o): (Octets, Octets) = packet.decode().unwrap();
    assert_eq!(o.0, vec![0x00, 0xff]);
}
