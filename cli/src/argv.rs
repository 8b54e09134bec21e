//! The original's JSON argument rules (acceptance.md §4.1).
//!
//! - A first argument starting with `[` is a JSON array that *is* the
//!   command line (it must then be the only argument).
//! - Otherwise every argument starting with `[`, `{` or `"` is decoded as
//!   JSON in place; the others stay strings.
//!
//! JSON is read with the configuration file's relaxed rules. `snd` and
//! `cal` read their data themselves: with `--json` every data argument is
//! JSON.

use crate::cmd::Failure;
use serde_json::Value;

/// The command line as words, and whether they are decoded already: a
/// JSON command array gives its elements (`true`); otherwise the
/// arguments stay strings (`false`), for [`decode_one`] once the command
/// that takes them is known (a command may read its data its own way,
/// e.g. `snd --json`).
pub fn words(args: Vec<String>) -> Result<(Vec<Value>, bool), Failure> {
    if args.first().is_some_and(|a| a.starts_with('[')) {
        if args.len() > 1 {
            return Err(Failure::Usage(format!(
                "a JSON command array ({}) must be the only argument",
                args[0]
            )));
        }
        return match aemp::rcfile::parse_value(&args[0]) {
            Ok(Value::Array(a)) => Ok((a, true)),
            Ok(_) => unreachable!("text starting with '[' decodes to an array"),
            Err(e) => Err(Failure::Usage(format!("{e} (the JSON command array)"))),
        };
    }
    Ok((args.into_iter().map(Value::String).collect(), false))
}

/// One argument by the rules: a string starting with `[`, `{` or `"` is
/// JSON; a bad one is a usage error naming it.
pub fn decode_one(v: Value) -> Result<Value, Failure> {
    match v {
        Value::String(a) if a.starts_with(['[', '{', '"']) => aemp::rcfile::parse_value(&a)
            .map_err(|e| Failure::Usage(format!("{e} (a JSON argument)"))),
        other => Ok(other),
    }
}

/// One data argument of a `--json` command: any JSON text (relaxed), so
/// `3` is a number and `'"3"'` a string; a bad one is a usage error
/// naming the command and the argument.
pub fn json_data(cmd: &str, v: Value) -> Result<Value, Failure> {
    match v {
        Value::String(a) => aemp::rcfile::parse_value(&a).map_err(|e| {
            let problem = match e {
                aemp::Error::Json { problem, .. } => problem,
                other => other.to_string(),
            };
            Failure::Usage(format!(
                "{cmd}: --json: the argument {a} is not JSON ({problem}); a string is \
                 written in double quotes, e.g. '\"text\"'"
            ))
        }),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn decode(args: Vec<String>) -> Result<Vec<Value>, Failure> {
        let (words, decoded) = words(args)?;
        if decoded {
            return Ok(words);
        }
        words.into_iter().map(decode_one).collect()
    }

    #[test]
    fn json_data_reads_any_json() {
        assert_eq!(json_data("snd", json!("3")).ok(), Some(json!(3)));
        assert_eq!(json_data("snd", json!("[1, 2,]")).ok(), Some(json!([1, 2])));
        assert_eq!(json_data("snd", json!("\"x\"")).ok(), Some(json!("x")));
        assert!(
            matches!(json_data("snd", json!("abc")), Err(Failure::Usage(m)) if m.contains("argument abc is not JSON"))
        );
    }
    #[test]
    fn rules() {
        assert_eq!(
            decode(s(&[
                "setservices",
                "[[\"m::f\",1]]",
                "x",
                "{\"a\":1}",
                "\"q\""
            ]))
            .ok(),
            Some(vec![
                json!("setservices"),
                json!([["m::f", 1]]),
                json!("x"),
                json!({"a": 1}),
                json!("q")
            ])
        );
        assert_eq!(
            decode(s(&["[\"profile\",\"p\"]"])).ok(),
            Some(vec![json!("profile"), json!("p")])
        );
        assert!(
            matches!(decode(s(&["a", "[1"])), Err(Failure::Usage(m)) if m.ends_with("[1 (a JSON argument)"))
        );
        assert!(matches!(decode(s(&["[1]", "x"])), Err(Failure::Usage(_))));
    }
}
