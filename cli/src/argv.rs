//! The original's JSON argument rules (acceptance.md §4.1).
//!
//! - A first argument starting with `[` is a JSON array that *is* the
//!   command line (it must then be the only argument).
//! - Otherwise every argument starting with `[`, `{` or `"` is decoded as
//!   JSON in place; the others stay strings.
//!
//! JSON is read with the configuration file's relaxed rules.

use crate::cmd::Failure;
use serde_json::Value;

/// Applies the rules; a bad JSON argument is a usage error naming it.
pub fn decode(args: Vec<String>) -> Result<Vec<Value>, Failure> {
    if args.first().is_some_and(|a| a.starts_with('[')) {
        if args.len() > 1 {
            return Err(Failure::Usage(format!(
                "a JSON command array ({}) must be the only argument",
                args[0]
            )));
        }
        return match aemp::rcfile::parse_value(&args[0]) {
            Ok(Value::Array(a)) => Ok(a),
            Ok(_) => unreachable!("text starting with '[' decodes to an array"),
            Err(e) => Err(Failure::Usage(format!("{e} (the JSON command array)"))),
        };
    }
    args.into_iter()
        .map(|a| {
            if a.starts_with(['[', '{', '"']) {
                aemp::rcfile::parse_value(&a)
                    .map_err(|e| Failure::Usage(format!("{e} (a JSON argument)")))
            } else {
                Ok(Value::String(a))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
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
