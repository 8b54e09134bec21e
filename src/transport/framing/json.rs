//! JSON framing: arrays back to back, whitespace allowed between them.
//!
//! The scanner finds the end of the next array by tracking bracket depth
//! and string state only; `serde_json` then parses exactly that slice.
//! Values are written by [`write_value`]: `serde_json`'s bytes, with
//! strings that need no escape copied whole (`serde_json` looks at each
//! byte on its own; a 1 KiB string was a quarter of a sender's time).

use serde_json::Value;

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

/// Parses one complete array.
pub(super) fn parse(bytes: &[u8]) -> Result<Packet, String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Array(a)) => Ok(a),
        Ok(_) => Err("packet is not an array".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// Appends `v` as JSON, the bytes `serde_json` writes.
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

/// Appends the string `s` as JSON.
pub(super) fn write_str(out: &mut Vec<u8>, s: &str) {
    // The bytes JSON must escape: control characters, '"' and '\\'. The
    // check runs over blocks without early exits, so it compiles to
    // vector instructions.
    let plain = s.as_bytes().chunks(64).all(|block| {
        !block.iter().fold(false, |bad, &b| {
            bad | (b < 0x20) | (b == b'"') | (b == b'\\')
        })
    });
    if plain {
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
