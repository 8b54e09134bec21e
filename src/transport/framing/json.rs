//! JSON framing: arrays back to back, whitespace allowed between them.
//!
//! The scanner finds the end of the next array by tracking bracket depth
//! and string state only; [`parse`] then reads exactly that slice,
//! accepting and refusing what `serde_json` does.
//! Values are written by [`write_value`]: `serde_json`'s bytes, with
//! strings that need no escape copied whole (`serde_json` looks at each
//! byte on its own; a 1 KiB string was a quarter of a sender's time).

use serde_json::{Map, Value};

use super::{Packet, Scan, ScanError};

/// Resumable scan state for the packet at the start of the input.
#[derive(Default)]
pub(super) struct Scanner {
    /// Offset of the packet's `[`, once found.
    start: Option<usize>,
    /// How far the input has been scanned.
    done: usize,
    depth: usize,
    in_string: bool,
    escape: bool,
}

impl Scanner {
    pub(super) fn scan(&mut self, data: &[u8], max: usize) -> Result<Scan, ScanError> {
        let start = match self.start {
            Some(s) => s,
            None => {
                let Some(s) = data.iter().position(|b| !b.is_ascii_whitespace()) else {
                    return Ok(Scan::Incomplete { skip: data.len() });
                };
                if data[s] != b'[' {
                    return Err(ScanError::Bad(format!(
                        "packet is not an array (starts with {:?})",
                        char::from(data[s])
                    )));
                }
                *self = Scanner {
                    start: Some(s),
                    done: s + 1,
                    depth: 1,
                    ..Scanner::default()
                };
                s
            }
        };
        let mut i = self.done;
        while i < data.len() {
            if self.in_string {
                if self.escape {
                    self.escape = false;
                    i += 1;
                    continue;
                }
                // Strings are most of a large packet: jump to the next
                // quote or backslash.
                match memchr::memchr2(b'"', b'\\', &data[i..]) {
                    None => break,
                    Some(k) => {
                        i += k;
                        if data[i] == b'\\' {
                            self.escape = true;
                        } else {
                            self.in_string = false;
                        }
                    }
                }
                i += 1;
                continue;
            }
            match data[i] {
                b'"' => self.in_string = true,
                b'[' | b'{' => self.depth += 1,
                b']' | b'}' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        *self = Scanner::default();
                        if i + 1 - start > max {
                            return Err(ScanError::TooLarge);
                        }
                        return Ok(Scan::Complete { start, end: i + 1 });
                    }
                }
                _ => {}
            }
            i += 1;
        }
        self.done = data.len();
        if data.len() - start > max {
            return Err(ScanError::TooLarge);
        }
        // The separators before `start` stay: `start` is relative to them.
        Ok(Scan::Incomplete { skip: 0 })
    }
}

/// Parses one complete array (the scanner found its end), accepting and
/// refusing exactly what `serde_json` does. Plain strings (no escape) and
/// small integers are read here: `serde_json`'s visitors and per-byte
/// string loop were most of a receiver's time. Strings with escapes and
/// other numbers are handed to `serde_json` one token at a time.
pub(super) fn parse(bytes: &[u8]) -> Result<Packet, String> {
    let mut r = Reader {
        b: bytes,
        i: 0,
        depth: MAX_DEPTH,
    };
    r.ws();
    if r.peek() != Some(b'[') {
        return Err("packet is not an array".to_owned());
    }
    let Value::Array(a) = r.value()? else {
        unreachable!("an array was seen")
    };
    r.ws();
    if r.i != bytes.len() {
        return Err(r.error("trailing characters"));
    }
    Ok(a)
}

/// Nesting `serde_json` refuses (its recursion limit): arrays and objects
/// 128 deep.
const MAX_DEPTH: usize = 128;

/// A JSON value reader over one packet.
struct Reader<'a> {
    b: &'a [u8],
    i: usize,
    /// Levels of nesting still allowed.
    depth: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn error(&self, what: &str) -> String {
        format!("{what} at byte {}", self.i)
    }

    /// Skips JSON whitespace.
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(b'[') => {
                self.enter()?;
                let mut a = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                } else {
                    loop {
                        self.ws();
                        a.push(self.value()?);
                        if self.next_in(b']')? {
                            break;
                        }
                    }
                }
                self.depth += 1;
                Ok(Value::Array(a))
            }
            Some(b'{') => {
                self.enter()?;
                let mut m = Map::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                } else {
                    loop {
                        self.ws();
                        if self.peek() != Some(b'"') {
                            return Err(self.error("key must be a string"));
                        }
                        let k = self.string()?;
                        self.ws();
                        if self.peek() != Some(b':') {
                            return Err(self.error("expected ':'"));
                        }
                        self.i += 1;
                        self.ws();
                        let v = self.value()?;
                        m.insert(k, v);
                        if self.next_in(b'}')? {
                            break;
                        }
                    }
                }
                self.depth += 1;
                Ok(Value::Object(m))
            }
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.error("expected a value")),
        }
    }

    /// Enters an array or object (at its opening bracket).
    fn enter(&mut self) -> Result<(), String> {
        self.depth -= 1;
        if self.depth == 0 {
            return Err(self.error("recursion limit exceeded"));
        }
        self.i += 1;
        Ok(())
    }

    /// After an item: whether the container ends here (at `close`), or
    /// another item follows (a comma).
    fn next_in(&mut self, close: u8) -> Result<bool, String> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                Ok(false)
            }
            Some(c) if c == close => {
                self.i += 1;
                Ok(true)
            }
            _ => Err(self.error("expected ',' or the end of the container")),
        }
    }

    fn literal(&mut self, word: &[u8], v: Value) -> Result<Value, String> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(self.error("expected a value"))
        }
    }

    /// A string, at its opening quote.
    fn string(&mut self) -> Result<String, String> {
        let start = self.i;
        let body = start + 1;
        let Some(k) = memchr::memchr2(b'"', b'\\', &self.b[body..]) else {
            return Err(self.error("unterminated string"));
        };
        let end = body + k;
        if self.b[end] == b'"' {
            let raw = &self.b[body..end];
            // JSON strings hold no raw control characters.
            if any_byte(raw, |c| c < 0x20) {
                return Err(self.error("control character in a string"));
            }
            let s =
                std::str::from_utf8(raw).map_err(|_| self.error("invalid UTF-8 in a string"))?;
            self.i = end + 1;
            return Ok(s.to_owned());
        }
        // Escapes: find the closing quote, let serde_json read the token.
        let mut j = end;
        loop {
            // `j` is at a backslash: skip it and the escaped byte.
            j += 2;
            let Some(k) = self
                .b
                .get(j..)
                .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
            else {
                return Err(self.error("unterminated string"));
            };
            j += k;
            if self.b[j] == b'"' {
                break;
            }
        }
        let s = serde_json::from_slice::<String>(&self.b[start..=j]).map_err(|e| e.to_string())?;
        self.i = j + 1;
        Ok(s)
    }

    /// A number: integers of up to 18 digits here, the rest by
    /// serde_json (floats, big integers, `-0`, and what it refuses).
    fn number(&mut self) -> Result<Value, String> {
        let start = self.i;
        let mut j = start;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.b.get(j) {
            j += 1;
        }
        let token = &self.b[start..j];
        self.i = j;
        let (negative, digits) = match token.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, token),
        };
        let simple = !digits.is_empty()
            && digits.len() <= 18
            && digits.iter().all(u8::is_ascii_digit)
            && (digits[0] != b'0' || (digits.len() == 1 && !negative));
        if simple {
            let n = digits
                .iter()
                .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
            return Ok(Value::from(if negative { -n } else { n }));
        }
        match serde_json::from_slice::<Value>(token) {
            Ok(v @ Value::Number(_)) => Ok(v),
            Ok(_) => Err(self.error("expected a number")),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Appends `v` as JSON, the bytes `serde_json` writes.
/// Writes one element of a message as [`write_value`] writes its value.
pub(super) fn write_elem(out: &mut Vec<u8>, e: crate::message::Elem<'_>) {
    use crate::message::Elem;
    match e {
        Elem::Str(s) => write_str(out, s),
        Elem::Value(v) => write_value(out, v),
        // A scalar: its value holds nothing on the heap.
        scalar => write_value(out, &scalar.to_value()),
    }
}

pub(super) fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => write_serde(out, n),
        Value::String(s) => write_str(out, s),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, x);
            }
            out.push(b']');
        }
        Value::Object(m) => {
            out.push(b'{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write_value(out, x);
            }
            out.push(b'}');
        }
    }
}

/// Whether any byte of `bytes` is `bad`: checked in blocks without early
/// exits inside a block, so that it compiles to vector instructions.
#[inline]
fn any_byte(bytes: &[u8], bad: impl Fn(u8) -> bool) -> bool {
    bytes
        .chunks(64)
        .any(|block| block.iter().fold(false, |found, &b| found | bad(b)))
}

/// Appends the string `s` as JSON.
pub(super) fn write_str(out: &mut Vec<u8>, s: &str) {
    // The bytes JSON must escape: control characters, '"' and '\\'.
    if !any_byte(s.as_bytes(), |b| (b < 0x20) | (b == b'"') | (b == b'\\')) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        write_serde(out, s);
    }
}

/// Appends `v` as `serde_json` writes it (which cannot fail for these
/// values, nor when writing to a `Vec`).
fn write_serde<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    serde_json::to_writer(&mut *out, v).expect("JSON of a number or string");
}

#[cfg(test)]
mod tests {
    use super::super::{Decoder, Framing};
    use serde_json::json;

    use proptest::prelude::*;
    use serde_json::{Map, Number, Value};

    /// What serde_json makes of a packet.
    fn serde(bytes: &[u8]) -> Result<Vec<Value>, String> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Array(a)) => Ok(a),
            Ok(_) => Err("not an array".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn agree(bytes: &[u8]) -> Result<(), TestCaseError> {
        let (ours, theirs) = (super::parse(bytes), serde(bytes));
        prop_assert_eq!(
            ours.is_ok(),
            theirs.is_ok(),
            "{:?}: ours {:?}, serde_json {:?}",
            String::from_utf8_lossy(bytes),
            ours,
            theirs
        );
        if let (Ok(a), Ok(b)) = (ours, theirs) {
            prop_assert_eq!(a, b);
        }
        Ok(())
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1000i64..1000).prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
            any::<String>().prop_map(Value::String),
            "[a-z\"\\\\\n\u{1}é]{0,20}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map("[a-z\"]{0,4}", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    proptest! {
        /// Valid packets (some spread with whitespace) and the same with a
        /// few bytes changed: accepted and refused as serde_json does, with
        /// the same values.
        #[test]
        fn parse_agrees_with_serde_json(
            packet in prop::collection::vec(arb_value(), 0..6),
            pretty in any::<bool>(),
            changes in prop::collection::vec(
                (any::<prop::sample::Index>(),
                 prop_oneof![
                     prop::sample::select(b"\"\\[]{},:0123456789eE.+-tfnul \t\n\x01\xff".to_vec()),
                     any::<u8>(),
                 ]),
                0..3),
        ) {
            let v = Value::Array(packet);
            let mut bytes = if pretty {
                serde_json::to_vec_pretty(&v).unwrap()
            } else {
                serde_json::to_vec(&v).unwrap()
            };
            agree(&bytes)?;
            for (at, b) in changes {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            agree(&bytes)?;
        }
    }

    #[test]
    fn edge_cases_agree_with_serde_json() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let cases = [
            "[]",
            "[ ]",
            "[1,]",
            "[,1]",
            "[-0]",
            "[-]",
            "[01]",
            "[0]",
            "[-01]",
            "[1.]",
            "[1e5]",
            "[1E+5]",
            "[.5]",
            "[999999999999999999]",
            "[9999999999999999999]",
            "[99999999999999999999]",
            "[-9223372036854775808]",
            "[-9223372036854775809]",
            "[1true]",
            "[nul]",
            "[truex]",
            "[\"a\\\"b\"]",
            "[\"\\ud800\"]",
            "[\"\\ud83d\\ude00\"]",
            "[\"\u{7f}\"]",
            "[\"\t\"]",
            "[\"\u{1f}\"]",
            "[\" \"]",
            "[{\"a\":1,\"a\":2}]",
            "[{1:2}]",
            "[{\"a\" 1}]",
            "[1] ",
            "[1]x",
            "[\"\\\\\"]",
            "[\"\\\"]",
        ];
        for c in cases {
            agree(c.as_bytes()).unwrap();
        }
        for n in [126, 127, 128, 129] {
            agree(deep(n).as_bytes()).unwrap();
        }
        agree(b"[\"\xff\"]").unwrap();
    }

    /// Long strings, plain or with a byte to escape in any 64-byte block
    /// (and U+007F, which JSON does not escape): serde_json's bytes.
    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for bad in ["", "\"", "\\", "\n", "\u{1}", "\u{1f}", "\u{7f}", "é"] {
            for at in [0, 63, 64, 500, 999] {
                let mut s = "x".repeat(1000);
                s.insert_str(at, bad);
                let v = json!([s, {s.clone(): [1, -2, 2.5, null, true]}]);
                let mut ours = Vec::new();
                super::write_value(&mut ours, &v);
                assert_eq!(ours, serde_json::to_vec(&v).unwrap(), "{bad:?} at {at}");
            }
        }
    }

    /// Quotes, backslashes and brackets inside strings, the input cut at
    /// every position: the same packets every time.
    #[test]
    fn strings_with_escapes_survive_every_cut() {
        let packets = [
            json!(["p", "a\\\"]b\\\\", "[{", "\"", "\\"]),
            json!(["q", {"k\"]": ["\\\\\"", "}"]}, "x".repeat(100)]),
        ];
        let bytes: Vec<u8> = packets
            .iter()
            .flat_map(|p| serde_json::to_vec(p).unwrap())
            .collect();
        for cut in 0..=bytes.len() {
            let mut dec = Decoder::new(Framing::Json);
            let mut got = Vec::new();
            for part in [&bytes[..cut], &bytes[cut..]] {
                dec.feed(part);
                while let Some(p) = dec.next_packet().unwrap() {
                    got.push(serde_json::Value::Array(p));
                }
            }
            assert_eq!(got, packets, "cut at {cut}");
        }
    }
}
