//! The original's relaxed JSON (what its configuration file and `aemp`'s
//! arguments accept) and its pretty layout (what it writes).

use super::{check_layout, short, shorten};
use crate::error::{Error, Result};
use serde_json::{Map, Value};

/// Parses configuration text: the original's relaxed JSON (plain JSON,
/// plus trailing commas before `]`/`}`, `#` comments to the end of the
/// line outside strings, and literal tabs in strings). The top level must
/// be an object, and `profile`, if present, an object of objects.
pub(super) fn parse(text: &str) -> std::result::Result<Map<String, Value>, String> {
    let relaxed = relax(text);
    let value: Value = serde_json::from_str(&relaxed).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(map) = value else {
        return Err(format!(
            "the top level must be a JSON object, not {}",
            short(&value)
        ));
    };
    check_layout(&map)?;
    Ok(map)
}

/// Parses any JSON value with the configuration file's relaxed rules
/// (plain JSON, plus trailing commas, `#` comments and literal tabs in
/// strings); the original reads `aemp`'s JSON arguments this way. Fails
/// with [`Error::Json`] naming the text.
///
/// ```
/// use serde_json::json;
/// assert_eq!(aemp::rcfile::parse_value("[[\"m::f\", 1,],]").unwrap(), json!([["m::f", 1]]));
/// ```
pub fn parse_value(text: &str) -> Result<Value> {
    serde_json::from_str(&relax(text)).map_err(|e| Error::Json {
        input: shorten(text, 60),
        problem: e.to_string(),
    })
}

/// Turns relaxed JSON into plain JSON, keeping line and column numbers
/// (dropped commas and comments become spaces).
fn relax(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let mut in_string = false;
    while i < b.len() {
        let c = b[i];
        if in_string {
            match c {
                b'\\' if i + 1 < b.len() => {
                    out.extend_from_slice(&b[i..i + 2]);
                    i += 2;
                    continue;
                }
                b'"' => in_string = false,
                b'\t' => {
                    out.extend_from_slice(b"\\t");
                    i += 1;
                    continue;
                }
                _ => {}
            }
            out.push(c);
        } else {
            match c {
                b'"' => {
                    in_string = true;
                    out.push(c);
                }
                b'#' => {
                    while i < b.len() && b[i] != b'\n' {
                        out.push(b' ');
                        i += 1;
                    }
                    continue;
                }
                b',' if closes_next(b, i + 1) && follows_value(&out) => out.push(b' '),
                _ => out.push(c),
            }
        }
        i += 1;
    }
    // Only ASCII bytes were replaced by ASCII bytes, and whole comments by
    // spaces, so the result is UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Whether the output so far ends (before whitespace) with a value, so
/// that a comma after it is a trailing comma and not `[,]`.
fn follows_value(out: &[u8]) -> bool {
    !matches!(
        out.iter().rev().find(|c| !c.is_ascii_whitespace()),
        None | Some(b'[' | b'{' | b',' | b':')
    )
}

/// Whether, after whitespace and comments, the next byte closes an array
/// or object.
fn closes_next(b: &[u8], mut i: usize) -> bool {
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b']' | b'}' => return true,
            _ => return false,
        }
    }
    false
}

/// Formats a value as the original writes its file (JSON::XS `pretty` and
/// `canonical`): sorted keys, three-space indent, `" : "` between key and
/// value, empty containers as `[]`/`{}`, and a final newline.
///
/// ```
/// use serde_json::json;
/// assert_eq!(aemp::rcfile::to_pretty_json(&json!({"b": [1], "a": {}})),
///            "{\n   \"a\" : {},\n   \"b\" : [\n      1\n   ]\n}\n");
/// ```
pub fn to_pretty_json(value: &Value) -> String {
    let mut out = String::new();
    write_pretty(&mut out, value, 0);
    out.push('\n');
    out
}

fn write_pretty(out: &mut String, value: &Value, level: usize) {
    let indent = |out: &mut String, level: usize| {
        for _ in 0..level {
            out.push_str("   ");
        }
    };
    match value {
        Value::Object(m) if !m.is_empty() => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push_str("{\n");
            for (n, k) in keys.iter().enumerate() {
                indent(out, level + 1);
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push_str(" : ");
                write_pretty(out, &m[k.as_str()], level + 1);
                if n + 1 < keys.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(out, level);
            out.push('}');
        }
        Value::Array(a) if !a.is_empty() => {
            out.push_str("[\n");
            for (n, v) in a.iter().enumerate() {
                indent(out, level + 1);
                write_pretty(out, v, level + 1);
                if n + 1 < a.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(out, level);
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}
