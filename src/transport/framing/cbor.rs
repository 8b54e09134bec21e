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

use ciborium::Value as Cbor;
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

/// Decodes one complete array and converts it to JSON values.
pub(super) fn parse(bytes: &[u8]) -> Result<Packet, String> {
    // The scanner allows MAX_DEPTH open containers inside the packet.
    let value: Cbor = ciborium::de::from_reader_with_recursion_limit(bytes, MAX_DEPTH + 2)
        .map_err(|e| format!("{e:?}"))?;
    match to_json(value)? {
        Value::Array(a) => Ok(a),
        _ => Err("packet is not an array".to_owned()),
    }
}

fn to_json(v: Cbor) -> Result<Value, String> {
    Ok(match v {
        Cbor::Null => Value::Null,
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Text(s) => Value::String(s),
        Cbor::Bytes(b) => Value::String(octets(&b)),
        Cbor::Integer(i) => Value::Number(integer(i128::from(i))?),
        Cbor::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Cbor::Tag(_, inner) => to_json(*inner)?,
        Cbor::Array(items) => {
            Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Cbor::Map(pairs) => {
            let mut map = Map::with_capacity(pairs.len());
            for (k, v) in pairs {
                map.insert(key(k)?, to_json(v)?);
            }
            Value::Object(map)
        }
        // `undefined` and any future simple values.
        _ => Value::Null,
    })
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

fn key(k: Cbor) -> Result<String, String> {
    match k {
        Cbor::Text(s) => Ok(s),
        Cbor::Bytes(b) => Ok(octets(&b)),
        Cbor::Integer(i) => Ok(i128::from(i).to_string()),
        Cbor::Tag(_, inner) => key(*inner),
        other => Err(format!("unsupported map key {other:?}")),
    }
}
