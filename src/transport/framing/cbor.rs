//! CBOR framing: definite-length arrays back to back (indefinite lengths
//! are accepted too).
//!
//! The scanner walks item headers (skipping string payloads by length) to
//! find where the next array ends, resuming where it stopped; `ciborium`
//! then decodes exactly that slice, and the result is converted to JSON
//! values: byte strings become strings of one character per octet
//! (U+0000–U+00FF, as Perl's JSON path sends the same octet strings, so a
//! Perl packet means the same in both framings), tags are dropped (their
//! content kept), NaN/±inf become `null`, `undefined` becomes `null`,
//! integer and byte-string map keys become string keys.
//!
//! Nesting deeper than [`MAX_DEPTH`] levels (CBOR::XS's default
//! `max_depth`) fails the scan at once: the scanner keeps one entry per
//! open level, so the cap also bounds its memory. A value that cannot be
//! converted (an integer beyond 64 bits, a text string that is not UTF-8,
//! an unsupported map key) fails only its own packet.

use serde_json::{Map, Number, Value};

use super::{Packet, Scan, ScanError};

/// The deepest nesting of arrays, maps and indefinite strings accepted.
pub(super) const MAX_DEPTH: usize = 512;

/// An open container during the scan.
#[derive(Clone, Copy)]
enum Open {
    /// Items still expected in a definite array/map.
    Count(u64),
    /// An indefinite array, map or string, closed by a break (0xff).
    Indefinite,
}

/// Resumable scan state for the packet at the start of the input.
#[derive(Default)]
pub(super) struct Scanner {
    /// Offset of the next unread item header.
    pos: usize,
    stack: Vec<Open>,
}

impl Scanner {
    pub(super) fn scan(&mut self, data: &[u8], max: usize) -> Result<Scan, ScanError> {
        loop {
            let Some(&ib) = data.get(self.pos) else {
                return self.incomplete(data, max);
            };
            let (major, ai) = (ib >> 5, ib & 0x1f);
            if self.pos == 0 && major != 4 {
                return Err(ScanError::Bad(format!(
                    "packet is not an array (initial byte 0x{ib:02x})"
                )));
            }
            let arg_len = match ai {
                0..=23 | 31 => 0,
                24 => 1,
                25 => 2,
                26 => 4,
                27 => 8,
                _ => {
                    return Err(ScanError::Bad(format!(
                        "reserved additional info in 0x{ib:02x}"
                    )))
                }
            };
            let Some(arg_bytes) = data.get(self.pos + 1..self.pos + 1 + arg_len) else {
                return self.incomplete(data, max);
            };
            let arg = if arg_len == 0 {
                u64::from(ai)
            } else {
                arg_bytes.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b))
            };
            let header_end = self.pos + 1 + arg_len;
            let indefinite = ai == 31;
            let mut next = header_end;
            let item_done = match (major, indefinite) {
                (0 | 1 | 7, false) => true,
                (2 | 3, false) => {
                    // Only skip the payload once it is all here; a declared
                    // length beyond the maximum fails at once.
                    next = usize::try_from(arg)
                        .ok()
                        .and_then(|n| header_end.checked_add(n))
                        .filter(|&e| e <= max)
                        .ok_or(ScanError::TooLarge)?;
                    if next > data.len() {
                        return self.incomplete(data, max);
                    }
                    true
                }
                (2..=5, true) => {
                    self.open(Open::Indefinite)?;
                    false
                }
                (4 | 5, false) => {
                    let n = if major == 5 {
                        arg.checked_mul(2).ok_or(ScanError::TooLarge)?
                    } else {
                        arg
                    };
                    if n > 0 {
                        self.open(Open::Count(n))?;
                    }
                    n == 0
                }
                (6, false) => false, // a tag applies to the item that follows
                (7, true) => {
                    if !matches!(self.stack.last(), Some(Open::Indefinite)) {
                        return Err(ScanError::Bad("unexpected break".to_owned()));
                    }
                    self.stack.pop();
                    true
                }
                _ => return Err(ScanError::Bad(format!("invalid initial byte 0x{ib:02x}"))),
            };
            self.pos = next;
            if item_done && self.finish_item() {
                let end = self.pos;
                *self = Scanner::default();
                if end > max {
                    return Err(ScanError::TooLarge);
                }
                return Ok(Scan::Complete { start: 0, end });
            }
        }
    }

    /// Enters a container, refusing nesting beyond [`MAX_DEPTH`].
    fn open(&mut self, open: Open) -> Result<(), ScanError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(ScanError::Bad(format!(
                "nesting deeper than {MAX_DEPTH} levels"
            )));
        }
        self.stack.push(open);
        Ok(())
    }

    /// Counts one finished item against the open containers; returns
    /// whether the whole packet is finished.
    fn finish_item(&mut self) -> bool {
        loop {
            match self.stack.last_mut() {
                None => return true,
                Some(Open::Indefinite) => return false,
                Some(Open::Count(n)) => {
                    *n -= 1;
                    if *n > 0 {
                        return false;
                    }
                    self.stack.pop();
                }
            }
        }
    }

    fn incomplete(&self, data: &[u8], max: usize) -> Result<Scan, ScanError> {
        if data.len() > max {
            return Err(ScanError::TooLarge);
        }
        Ok(Scan::Incomplete { skip: 0 })
    }
}

/// Decodes one complete array straight into JSON values (`ciborium`
/// drives [`JsonValue`]'s visitor: no intermediate CBOR tree).
pub(super) fn parse(bytes: &[u8]) -> Result<Packet, String> {
    // The scanner allows MAX_DEPTH open containers inside the packet.
    let value: JsonValue = ciborium::de::from_reader_with_recursion_limit(bytes, MAX_DEPTH + 2)
        .map_err(|e| match e {
            ciborium::de::Error::Semantic(_, text) => text,
            other => format!("{other:?}"),
        })?;
    match value.0 {
        Value::Array(a) => Ok(a),
        _ => Err("packet is not an array".to_owned()),
    }
}

/// A JSON value read from CBOR by the rules in the module doc.
struct JsonValue(Value);

impl<'de> serde::Deserialize<'de> for JsonValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor).map(JsonValue)
    }
}

struct ValueVisitor;

impl<'de> serde::de::Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a CBOR value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::from(i))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(Value::from(u))
    }
    fn visit_i128<E: serde::de::Error>(self, i: i128) -> Result<Value, E> {
        integer(i).map(Value::Number).map_err(E::custom)
    }
    fn visit_u128<E: serde::de::Error>(self, u: u128) -> Result<Value, E> {
        let i = i128::try_from(u).map_err(|_| E::custom(format!("integer {u} out of range")))?;
        self.visit_i128(i)
    }
    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Number::from_f64(f).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_bytes<E>(self, b: &[u8]) -> Result<Value, E> {
        Ok(Value::String(octets(b)))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    /// A tag (`ciborium` shows it as an enum): the tag is dropped, its
    /// content kept.
    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        use serde::de::VariantAccess;
        let (serde::de::IgnoredAny, content) = data.variant()?;
        content.newtype_variant::<JsonValue>().map(|v| v.0)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(JsonValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some((MapKey(k), JsonValue(v))) = m.next_entry()? {
            map.insert(k, v);
        }
        Ok(Value::Object(map))
    }
}

/// A map key: text, an octet string or an integer, as a string.
struct MapKey(String);

impl<'de> serde::Deserialize<'de> for MapKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(ValueVisitor)? {
            Value::String(s) => Ok(MapKey(s)),
            Value::Number(n) => Ok(MapKey(n.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "unsupported map key {other}"
            ))),
        }
    }
}

/// An octet string as Perl's JSON path writes it: each octet the character
/// of the same code point.
fn octets(b: &[u8]) -> String {
    b.iter().copied().map(char::from).collect()
}

fn integer(i: i128) -> Result<Number, String> {
    if let Ok(u) = u64::try_from(i) {
        Ok(Number::from(u))
    } else if let Ok(s) = i64::try_from(i) {
        Ok(Number::from(s))
    } else {
        Err(format!("integer {i} out of range"))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use serde_json::json;

    #[test]
    fn tags_simple_values_floats_and_keys_map_to_json() {
        // [1(1600000000), undefined, NaN (half), {1: "a", h'6b': 2}, 1.5]
        let bytes = [
            0x85, 0xc1, 0x1a, 0x5f, 0x5e, 0x10, 0x00, 0xf7, 0xf9, 0x7e, 0x00, 0xa2, 0x01, 0x61,
            b'a', 0x41, b'k', 0x02, 0xfb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(
            parse(&bytes).unwrap(),
            vec![
                json!(1_600_000_000u32),
                json!(null),
                json!(null),
                json!({"1": "a", "k": 2}),
                json!(1.5)
            ]
        );
    }

    #[test]
    fn integers_at_the_edges() {
        // [u64::MAX, i64::MIN, -2^64 (out of range)]
        let ok = [
            0x82, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3b, 0x7f, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        assert_eq!(parse(&ok).unwrap(), vec![json!(u64::MAX), json!(i64::MIN)]);
        let bad = [0x81, 0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(parse(&bad).unwrap_err().contains("out of range"));
    }
}
