//! JSON framing: arrays back to back, whitespace allowed between them.
//!
//! The scanner finds the end of the next array by tracking bracket depth
//! and string state only; `serde_json` then parses exactly that slice.

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

#[cfg(test)]
mod tests {
    use super::super::{Decoder, Framing};
    use serde_json::json;

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
