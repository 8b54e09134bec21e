//! Property tests: framings round-trip arbitrary packets fed in arbitrary
//! chunks; parsers never panic on arbitrary input.

use std::time::Instant;

use aemp::transport::framing::{encode, encode_packet, Decoder, Framing, Packet};
use aemp::transport::greeting::Greeting;
use aemp::transport::handshake::{Config, Handshake};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| Value::Number(i.into())),
        any::<u64>().prop_map(|u| Value::Number(u.into())),
        // Finite floats must survive exactly (serde_json's float_roundtrip).
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn arb_packet() -> impl Strategy<Value = Packet> {
    (
        "[a-zA-Z0-9]{0,12}",
        prop::collection::vec(arb_value(), 0..6),
    )
        .prop_map(|(port, mut rest)| {
            rest.insert(0, Value::String(port));
            rest
        })
}

/// Feeds `bytes` cut at `cuts` (taken modulo the length) and collects packets.
fn decode_chunked(framing: Framing, bytes: &[u8], cuts: &[usize]) -> Result<Vec<Packet>, String> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    let mut d = Decoder::new(framing);
    let mut out = Vec::new();
    for w in points.windows(2) {
        d.feed(&bytes[w[0]..w[1]]);
        while let Some(p) = d.next_packet().map_err(|e| e.to_string())? {
            out.push(p);
        }
    }
    if d.buffered() != 0 {
        return Err(format!("{} bytes left over", d.buffered()));
    }
    Ok(out)
}

/// Everything a decoder says of `bytes` cut at `cuts`, packets and errors
/// (up to the first broken-stream error), fed with `feed`/`next_packet`
/// or read in place with `next_packet_from`.
fn outcomes(
    framing: Framing,
    max: usize,
    bytes: &[u8],
    cuts: &[usize],
    in_place: bool,
) -> Vec<String> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    let mut d = Decoder::with_max_packet(framing, max);
    let mut out = Vec::new();
    for w in points.windows(2) {
        let mut chunk = &bytes[w[0]..w[1]];
        if !in_place {
            d.feed(chunk);
            chunk = &[];
        }
        loop {
            let r = if in_place {
                d.next_packet_from(&mut chunk)
            } else {
                d.next_packet()
            };
            match r {
                Ok(Some(p)) => out.push(format!("{p:?}")),
                Ok(None) => break,
                Err(e) => {
                    out.push(e.to_string());
                    if e.is_fatal() {
                        return out;
                    }
                }
            }
        }
        assert!(
            chunk.is_empty(),
            "next_packet_from left {} bytes",
            chunk.len()
        );
    }
    out.push(format!("{} buffered", d.buffered()));
    out
}

fn roundtrip(framing: Framing, packets: &[Packet], cuts: &[usize]) -> Result<(), TestCaseError> {
    let mut bytes = Vec::new();
    for p in packets {
        encode(framing, p, &mut bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    let got = decode_chunked(framing, &bytes, cuts).map_err(TestCaseError::fail)?;
    prop_assert_eq!(&got, packets);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn json_roundtrip(packets in prop::collection::vec(arb_packet(), 0..6),
                      cuts in prop::collection::vec(any::<usize>(), 0..10)) {
        roundtrip(Framing::Json, &packets, &cuts)?;
    }

    #[test]
    fn cbor_roundtrip(packets in prop::collection::vec(arb_packet(), 0..6),
                      cuts in prop::collection::vec(any::<usize>(), 0..10)) {
        roundtrip(Framing::Cbor, &packets, &cuts)?;
    }

    #[test]
    fn encode_packet_writes_the_bytes_of_encode(port in "[ -~]{0,30}|.{0,300}",
                                                msg in prop::collection::vec(arb_value(), 0..30)) {
        for f in Framing::ALL {
            let mut packet = vec![Value::from(port.clone())];
            packet.extend(msg.iter().cloned());
            let (mut ours, mut whole) = (vec![7u8], vec![7u8]);
            encode_packet(f, &port, &msg, &mut ours).unwrap();
            encode(f, &packet, &mut whole).unwrap();
            prop_assert_eq!(&ours, &whole);
        }
    }

    #[test]
    fn json_with_whitespace_between(packets in prop::collection::vec(arb_packet(), 1..5),
                                    ws in prop::collection::vec("[ \t\r\n]{0,3}", 5),
                                    cuts in prop::collection::vec(any::<usize>(), 0..10)) {
        let mut bytes = Vec::new();
        for (p, w) in packets.iter().zip(&ws) {
            bytes.extend_from_slice(w.as_bytes());
            encode(Framing::Json, p, &mut bytes).unwrap();
        }
        prop_assert_eq!(decode_chunked(Framing::Json, &bytes, &cuts).map_err(TestCaseError::fail)?, packets);
    }

    /// Reading in place says what feeding says, of valid streams (some
    /// with a byte changed) and of arbitrary bytes, cut anywhere.
    #[test]
    fn reading_in_place_says_what_feeding_says(packets in prop::collection::vec(arb_packet(), 1..6),
                                               flip in any::<(usize, u8)>(),
                                               noise in prop::collection::vec(any::<u8>(), 0..64),
                                               cuts in prop::collection::vec(any::<usize>(), 0..10),
                                               max in prop_oneof![Just(1usize << 20), 8usize..200]) {
        for f in Framing::ALL {
            let mut bytes = Vec::new();
            for p in &packets {
                encode(f, p, &mut bytes).unwrap();
            }
            let fed = outcomes(f, max, &bytes, &cuts, false);
            prop_assert_eq!(outcomes(f, max, &bytes, &cuts, true), fed);
            let i = flip.0 % bytes.len();
            bytes[i] ^= flip.1;
            let fed = outcomes(f, max, &bytes, &cuts, false);
            prop_assert_eq!(outcomes(f, max, &bytes, &cuts, true), fed);
            bytes.extend_from_slice(&noise);
            let fed = outcomes(f, max, &bytes, &cuts, false);
            prop_assert_eq!(outcomes(f, max, &bytes, &cuts, true), fed);
        }
    }

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256),
                            cuts in prop::collection::vec(any::<usize>(), 0..6),
                            max in 1usize..300) {
        for f in [Framing::Json, Framing::Cbor] {
            let _ = decode_chunked(f, &bytes, &cuts);
            let mut d = Decoder::with_max_packet(f, max);
            d.feed(&bytes);
            while let Ok(Some(_)) = d.next_packet() {}
        }
    }

    #[test]
    fn cbor_prefix_of_valid_stream_never_panics(packets in prop::collection::vec(arb_packet(), 1..4),
                                                 flip in any::<(usize, u8)>()) {
        let mut bytes = Vec::new();
        for p in &packets {
            encode(Framing::Cbor, p, &mut bytes).unwrap();
        }
        let i = flip.0 % bytes.len();
        bytes[i] ^= flip.1;
        let _ = decode_chunked(Framing::Cbor, &bytes, &[i]);
    }

    #[test]
    fn greeting_parse_never_panics(line in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Greeting::parse(&line);
    }

    #[test]
    fn greeting_text_parse_never_panics(line in "[a-z0-9;,=%#]{0,80}") {
        let _ = Greeting::parse(format!("aemp;1;{line}").as_bytes());
    }

    #[test]
    fn greeting_roundtrip(node in "[a-zA-Z0-9/._-]{1,20}",
                          kv in prop::collection::vec(("[a-z]{1,8}", "[ -~]{0,20}"), 0..5)) {
        let g = Greeting {
            protocol: "aemp".into(),
            version: "1".into(),
            node_id: node,
            auths: vec!["hmac_sha3_512".into()],
            framings: vec!["cbor".into(), "json".into()],
            kv,
        };
        prop_assert_eq!(Greeting::parse(g.encode().as_bytes()).unwrap(), g);
    }

    #[test]
    fn handshake_never_panics(input in prop::collection::vec(any::<u8>(), 0..300),
                              prefix in any::<bool>(),
                              cut in any::<usize>()) {
        let mut cfg = Config::new("me");
        cfg.secret = Some(b"s".to_vec());
        cfg.have_cert = cut % 2 == 0;
        let mut hs = Handshake::new(cfg, Instant::now());
        let mut bytes = Vec::new();
        if prefix {
            bytes.extend_from_slice(b"aemp;1;peer;hmac_sha3_512,tls_anon;json;tls=1\nnonce\n");
        }
        bytes.extend_from_slice(&input);
        let at = cut % (bytes.len() + 1);
        for part in [&bytes[..at], &bytes[at..]] {
            let _ = hs.feed(part);
            let _ = hs.tls_established();
        }
    }
}
