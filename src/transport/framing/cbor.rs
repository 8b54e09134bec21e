//! CBOR framing: definite-length arrays back to back (indefinite lengths
//! are accepted too).
//!
//! The scanner walks item headers (skipping string payloads by length) to
//! find where the next array ends, resuming where it stopped; a small
//! reader then decodes exactly that slice straight into JSON values (no
//! intermediate tree; twice as fast as `ciborium` driving a serde
//! visitor was): byte strings become strings of one character per octet
//! (U+0000–U+00FF, as Perl's JSON path sends the same octet strings, so a
//! Perl packet means the same in both framings), tags are dropped (their
//! content kept), NaN/±inf become `null`, `undefined` becomes `null`,
//! integer and byte-string map keys become string keys, bignums (tags 2
//! and 3) that fit 64 bits become integers.
//!
//! Nesting deeper than [`MAX_DEPTH`] levels (CBOR::XS's default
//! `max_depth`) fails the scan at once: the scanner keeps one entry per
//! open level, so the cap also bounds its memory. A value that cannot be
//! converted (an integer beyond 64 bits, a text string that is not UTF-8,
//! an unsupported map key) fails only its own packet.

use serde_json::{Map, Number, Value};

use super::{cbor_head, Packet, Scan, ScanError};

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

/// Decodes one complete array (as the scanner found it: well formed,
/// nesting within [`MAX_DEPTH`]) straight into JSON values.
pub(super) fn parse(bytes: &[u8]) -> Result<Packet, String> {
    let mut r = Reader { bytes, pos: 0 };
    match r.value()? {
        Value::Array(a) => Ok(a),
        _ => Err("packet is not an array".to_owned()),
    }
}

/// A CBOR item's header: major type, additional info, argument, and
/// whether its length is indefinite.
struct Header {
    major: u8,
    ai: u8,
    arg: u64,
    indefinite: bool,
}

/// Reads CBOR items from a slice by the rules in the module doc. Every
/// read is bounds-checked: a packet the scanner let through can still be
/// hostile (it only checked the framing).
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or("truncated item")?;
        let b = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn header(&mut self) -> Result<Header, String> {
        let ib = self.take(1)?[0];
        let (major, ai) = (ib >> 5, ib & 0x1f);
        let arg = match ai {
            0..=23 => u64::from(ai),
            24 => u64::from(self.take(1)?[0]),
            25 => u64::from(u16::from_be_bytes(self.take(2)?.try_into().unwrap())),
            26 => u64::from(u32::from_be_bytes(self.take(4)?.try_into().unwrap())),
            27 => u64::from_be_bytes(self.take(8)?.try_into().unwrap()),
            31 => 0,
            _ => return Err(format!("reserved additional info in 0x{ib:02x}")),
        };
        Ok(Header {
            major,
            ai,
            arg,
            indefinite: ai == 31,
        })
    }

    /// The next item whose header is not a tag (tags are dropped, tags 2
    /// and 3, bignums, give integers).
    fn value(&mut self) -> Result<Value, String> {
        let mut h = self.header()?;
        let mut bignum = None;
        while h.major == 6 {
            bignum = matches!(h.arg, 2 | 3).then_some(h.arg == 3);
            h = self.header()?;
        }
        if let (Some(negative), 2) = (bignum, h.major) {
            let b = self.string(&h, 2)?;
            return bignum_value(&b, negative);
        }
        self.untagged(h)
    }

    fn untagged(&mut self, h: Header) -> Result<Value, String> {
        Ok(match (h.major, h.indefinite) {
            (0, false) => Value::from(h.arg),
            (1, false) => match i64::try_from(h.arg) {
                Ok(i) => Value::from(-1 - i),
                Err(_) => return Err(format!("integer -1-{} out of range", h.arg)),
            },
            (2, _) => Value::String(octets(&self.string(&h, 2)?)),
            (3, _) => {
                let b = self.string(&h, 3)?;
                Value::String(String::from_utf8(b).map_err(|_| "text string is not UTF-8")?)
            }
            (4, _) => {
                let mut items = Vec::with_capacity(self.capacity(&h));
                while let Some(v) = self.next_in(&h, items.len() as u64)? {
                    items.push(v);
                }
                Value::Array(items)
            }
            (5, _) => {
                let mut map = Map::new();
                let mut n = 0;
                while let Some(k) = self.next_in(&h, n)? {
                    let key = match k {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        other => return Err(format!("unsupported map key {other}")),
                    };
                    map.insert(key, self.value()?);
                    n += 1;
                }
                Value::Object(map)
            }
            (7, false) => simple(&h)?,
            _ => return Err("unexpected item".to_owned()),
        })
    }

    /// A vector's starting capacity for a container header (bounded by
    /// the bytes left: every item takes at least one).
    fn capacity(&self, h: &Header) -> usize {
        let left = self.bytes.len() - self.pos;
        if h.indefinite {
            0
        } else {
            usize::try_from(h.arg).map_or(left, |n| n.min(left))
        }
    }

    /// The next item of a container with `h`'s header after `done` items;
    /// `None` at its end.
    fn next_in(&mut self, h: &Header, done: u64) -> Result<Option<Value>, String> {
        if h.indefinite {
            if self.bytes.get(self.pos) == Some(&0xff) {
                self.pos += 1;
                return Ok(None);
            }
        } else if done == h.arg {
            return Ok(None);
        }
        self.value().map(Some)
    }

    /// The payload of a byte or text string (the chunks of an indefinite
    /// one joined).
    fn string(&mut self, h: &Header, major: u8) -> Result<Vec<u8>, String> {
        if !h.indefinite {
            let n = usize::try_from(h.arg).map_err(|_| "string too long")?;
            return Ok(self.take(n)?.to_vec());
        }
        let mut out = Vec::new();
        loop {
            if self.bytes.get(self.pos) == Some(&0xff) {
                self.pos += 1;
                return Ok(out);
            }
            let chunk = self.header()?;
            if chunk.major != major || chunk.indefinite {
                return Err("bad chunk in an indefinite string".to_owned());
            }
            let n = usize::try_from(chunk.arg).map_err(|_| "string too long")?;
            out.extend_from_slice(self.take(n)?);
        }
    }
}

/// Major type 7: simple values and floats.
fn simple(h: &Header) -> Result<Value, String> {
    let float = |f: f64| Number::from_f64(f).map_or(Value::Null, Value::Number);
    Ok(match (h.ai, h.arg) {
        (25, a) => float(half(a as u16)),
        (26, a) => float(f64::from(f32::from_bits(a as u32))),
        (27, a) => float(f64::from_bits(a)),
        (_, 20) => Value::Bool(false),
        (_, 21) => Value::Bool(true),
        (_, 22 | 23) => Value::Null,
        (_, a) => return Err(format!("unsupported simple value {a}")),
    })
}

/// A half-precision float's value.
fn half(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let mant = f64::from(h & 0x3ff);
    sign * match exp {
        0 => mant * 2f64.powi(-24),
        31 if mant == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + mant / 1024.0) * 2f64.powi(e - 15),
    }
}

/// A bignum (tags 2 and 3) as a JSON integer, if it fits 64 bits.
fn bignum_value(b: &[u8], negative: bool) -> Result<Value, String> {
    let digits = b.iter().skip_while(|&&d| d == 0).count();
    let n = b.iter().fold(0u128, |a, &d| (a << 8) | u128::from(d));
    let i = if digits > 8 {
        None
    } else if negative {
        Some(-1 - n as i128)
    } else {
        Some(n as i128)
    };
    i.ok_or_else(|| "bignum out of range".to_owned())
        .and_then(integer)
        .map(Value::Number)
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

/// Appends `v` as CBOR, the bytes `ciborium` writes: definite lengths,
/// shortest heads, text strings (floats are written by `ciborium`).
/// Writes one element of a message as [`write_value`] writes its value.
pub(super) fn write_elem(out: &mut Vec<u8>, e: crate::message::Elem<'_>) {
    use crate::message::Elem;
    match e {
        Elem::Str(s) => write_text(out, s),
        Elem::Value(v) => write_value(out, v),
        // A scalar: its value holds nothing on the heap.
        scalar => write_value(out, &scalar.to_value()),
    }
}

pub(super) fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(0xf6),
        Value::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                cbor_head(out, 0, u);
            } else if let Some(i) = n.as_i64() {
                // Negative: major type 1 carries -1 - i.
                cbor_head(out, 1, !(i as u64));
            } else {
                ciborium::into_writer(n, &mut *out).expect("CBOR of a float into a Vec");
            }
        }
        Value::String(s) => write_text(out, s),
        Value::Array(a) => {
            cbor_head(out, 4, a.len() as u64);
            for x in a {
                write_value(out, x);
            }
        }
        Value::Object(m) => {
            cbor_head(out, 5, m.len() as u64);
            for (k, x) in m {
                write_text(out, k);
                write_value(out, x);
            }
        }
    }
}

/// Appends a text string.
pub(super) fn write_text(out: &mut Vec<u8>, s: &str) {
    cbor_head(out, 3, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::parse;
    use serde_json::json;

    /// Every kind of value, integers at each head size's edges: the
    /// bytes ciborium writes.
    #[test]
    fn values_are_written_as_ciborium_writes_them() {
        let mut edges = vec![json!(i64::MIN), json!(u64::MAX), json!(0.5), json!(-1e300)];
        for n in [0u64, 23, 24, 255, 256, 65535, 65536, 1 << 32] {
            edges.push(json!(n));
            edges.push(json!(-(n as i64)));
            edges.push(json!(-(n as i64) - 1));
        }
        let v = json!([edges, "x".repeat(300), {"k": [null, true, false, {}]}, "é"]);
        let mut ours = Vec::new();
        super::write_value(&mut ours, &v);
        let mut theirs = Vec::new();
        ciborium::into_writer(&v, &mut theirs).unwrap();
        assert_eq!(ours, theirs);
    }

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

    #[test]
    fn indefinite_items_halves_bignums_and_simple_values() {
        // [_ "ab" "c"], [_ h'01' h'ff'], [_ 1, 2], {_ "k": true}, half 1.5,
        // half -inf, 2(h'0100') = 256, 3(h'00') = -1, false, 22 (null)
        let bytes = [
            0x8a, 0x7f, 0x62, b'a', b'b', 0x61, b'c', 0xff, 0x5f, 0x41, 0x01, 0x41, 0xff, 0xff,
            0x9f, 0x01, 0x02, 0xff, 0xbf, 0x61, b'k', 0xf5, 0xff, 0xf9, 0x3e, 0x00, 0xf9, 0xfc,
            0x00, 0xc2, 0x42, 0x01, 0x00, 0xc3, 0x41, 0x00, 0xf4, 0xf6,
        ];
        assert_eq!(
            parse(&bytes).unwrap(),
            vec![
                json!("abc"),
                json!("\u{1}\u{ff}"),
                json!([1, 2]),
                json!({"k": true}),
                json!(1.5),
                json!(null),
                json!(256),
                json!(-1),
                json!(false),
                json!(null),
            ]
        );
    }

    #[test]
    fn bad_values_fail_their_packet_with_a_reason() {
        let cases: [(&[u8], &str); 5] = [
            (&[0x81, 0x62, 0xc3, 0x28], "UTF-8"),
            (
                &[0x81, 0xc2, 0x49, 1, 0, 0, 0, 0, 0, 0, 0, 0],
                "out of range",
            ),
            (&[0x81, 0xf0], "simple value 16"),
            (&[0x81, 0xa1, 0x80, 0x01], "map key"),
            (&[0x82, 0x01], "truncated"),
        ];
        for (bytes, why) in cases {
            let err = parse(bytes).unwrap_err();
            assert!(err.contains(why), "{bytes:02x?}: {err}");
        }
    }
}
