//! The `g_*` node-port packets (protocol notes §11–12): parsing with a reason
//! for every rejection, and builders for the packets we send.
//!
//! A packet is `["", tag, args...]`; parsing takes the tag and the args.

use serde_json::{Map, Value};

use super::store::{Db, Family};

/// What a query asks for (`g_db_family`, `g_db_keys`, `g_db_values`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// The whole family as a map.
    Family,
    /// The keys.
    Keys,
    /// The values.
    Values,
}

impl QueryKind {
    /// The request tag.
    pub fn tag(self) -> &'static str {
        match self {
            QueryKind::Family => "g_db_family",
            QueryKind::Keys => "g_db_keys",
            QueryKind::Values => "g_db_values",
        }
    }
}

/// A parsed `g_*` packet.
#[derive(Debug, Clone, PartialEq)]
pub enum GPacket {
    /// `g_slave` with the sender's whole local database, or without (only
    /// "become global").
    Slave(Option<Db>),
    /// `g_upd`: keys set and keys deleted in one family.
    Upd {
        /// The family.
        family: String,
        /// Keys set.
        set: Family,
        /// Keys deleted.
        del: Vec<String>,
    },
    /// `g_set`: a global node's merged slave databases.
    Set(Db),
    /// `g_global`: the sender is a global node.
    Global,
    /// `g_db_family` / `g_db_keys` / `g_db_values`.
    Query {
        /// What is asked.
        kind: QueryKind,
        /// The family.
        family: String,
        /// The requester's ID, echoed in the reply.
        id: String,
    },
    /// `g_reply`: the answer to a query.
    Reply {
        /// The query's ID.
        id: String,
        /// The answer, shaped by the query kind.
        value: Value,
    },
    /// `g_mon1`: start monitoring a family.
    Mon1(String),
    /// `g_mon0`: stop monitoring a family.
    Mon0(String),
    /// `g_chg1`: the full family (`null` on the wire = empty).
    Chg1 {
        /// The family.
        family: String,
        /// Its whole contents.
        full: Family,
    },
    /// `g_chg2`: a later change.
    Chg2 {
        /// The family.
        family: String,
        /// Keys set.
        set: Family,
        /// Keys deleted.
        del: Vec<String>,
    },
    /// `g_find`: look up a node's listen addresses.
    Find(String),
    /// `g_found`: the answer (`None` = unknown node).
    Found {
        /// The node asked about.
        node: String,
        /// Its addresses.
        addresses: Option<Vec<String>>,
    },
}

impl GPacket {
    /// The packet's tag, e.g. `g_upd` (for logs: the packet may be big).
    pub fn tag(&self) -> &'static str {
        match self {
            GPacket::Slave(_) => "g_slave",
            GPacket::Upd { .. } => "g_upd",
            GPacket::Set(_) => "g_set",
            GPacket::Global => "g_global",
            GPacket::Query { kind, .. } => kind.tag(),
            GPacket::Reply { .. } => "g_reply",
            GPacket::Mon1(_) => "g_mon1",
            GPacket::Mon0(_) => "g_mon0",
            GPacket::Chg1 { .. } => "g_chg1",
            GPacket::Chg2 { .. } => "g_chg2",
            GPacket::Find(_) => "g_find",
            GPacket::Found { .. } => "g_found",
        }
    }
}

fn string(args: &[Value], i: usize, what: &str) -> Result<String, String> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        other => Err(format!(
            "{what} (argument {i}) must be a string, got {other:?}"
        )),
    }
}

fn family_map(v: &Value, what: &str) -> Result<Family, String> {
    match v {
        Value::Object(m) => {
            if m.contains_key("") {
                return Err(format!("{what} contains an empty key"));
            }
            Ok(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        }
        Value::Null => Ok(Family::new()),
        other => Err(format!("{what} must be an object or null, got {other}")),
    }
}

fn db_map(v: &Value) -> Result<Db, String> {
    let Value::Object(m) = v else {
        return Err(format!("database must be an object, got {v}"));
    };
    m.iter()
        .map(|(f, fam)| Ok((f.clone(), family_map(fam, &format!("family {f:?}"))?)))
        .collect()
}

fn key_list(v: Option<&Value>) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|k| match k {
                Value::String(s) if !s.is_empty() => Ok(s.clone()),
                other => Err(format!(
                    "deleted key must be a non-empty string, got {other}"
                )),
            })
            .collect(),
        Some(other) => Err(format!("deleted keys must be a list, got {other}")),
    }
}

fn non_empty(s: String, what: &str) -> Result<String, String> {
    if s.is_empty() {
        Err(format!("{what} is empty"))
    } else {
        Ok(s)
    }
}

/// Parses `["", tag, args...]`'s tag and args; `Err` says why a packet is
/// malformed (the caller logs and ignores it). Unknown tags are errors too.
pub fn parse(tag: &str, args: &[Value]) -> Result<GPacket, String> {
    let fam = |i| non_empty(string(args, i, "family")?, "family");
    Ok(match tag {
        "g_slave" => match args.first() {
            None | Some(Value::Null) => GPacket::Slave(None),
            Some(v) => GPacket::Slave(Some(db_map(v)?)),
        },
        "g_upd" => GPacket::Upd {
            family: fam(0)?,
            set: family_map(args.get(1).unwrap_or(&Value::Null), "set")?,
            del: key_list(args.get(2))?,
        },
        "g_set" => GPacket::Set(db_map(args.first().unwrap_or(&Value::Null))?),
        "g_global" => GPacket::Global,
        "g_db_family" | "g_db_keys" | "g_db_values" => GPacket::Query {
            kind: match tag {
                "g_db_family" => QueryKind::Family,
                "g_db_keys" => QueryKind::Keys,
                _ => QueryKind::Values,
            },
            family: fam(0)?,
            id: string(args, 1, "request ID")?,
        },
        "g_reply" => GPacket::Reply {
            id: string(args, 0, "request ID")?,
            value: args.get(1).cloned().unwrap_or(Value::Null),
        },
        "g_mon1" => GPacket::Mon1(fam(0)?),
        "g_mon0" => GPacket::Mon0(fam(0)?),
        "g_chg1" => GPacket::Chg1 {
            family: fam(0)?,
            full: family_map(args.get(1).unwrap_or(&Value::Null), "g_chg1 contents")?,
        },
        "g_chg2" => GPacket::Chg2 {
            family: fam(0)?,
            set: family_map(args.get(1).unwrap_or(&Value::Null), "set")?,
            del: key_list(args.get(2))?,
        },
        "g_find" => GPacket::Find(non_empty(string(args, 0, "node ID")?, "node ID")?),
        "g_found" => GPacket::Found {
            node: string(args, 0, "node ID")?,
            addresses: match args.get(1) {
                None | Some(Value::Null) => None,
                Some(Value::Array(a)) => Some(
                    a.iter()
                        .map(|x| {
                            x.as_str()
                                .map(str::to_owned)
                                .ok_or(format!("address {x} is not a string"))
                        })
                        .collect::<Result<_, _>>()?,
                ),
                Some(other) => {
                    return Err(format!("addresses must be a list or null, got {other}"))
                }
            },
        },
        other => return Err(format!("unknown global request {other:?}")),
    })
}

/// `["", tag, args...]`.
pub fn packet(tag: &str, args: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut p = vec![Value::from(""), Value::from(tag)];
    p.extend(args);
    p
}

/// A family as a JSON object.
pub fn family_value(f: &Family) -> Value {
    Value::Object(
        f.iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Map<_, _>>(),
    )
}

/// A database as a JSON object.
pub fn db_value(db: &Db) -> Value {
    Value::Object(
        db.iter()
            .map(|(f, fam)| (f.clone(), family_value(fam)))
            .collect(),
    )
}

/// A list of keys as a JSON array.
pub fn key_values<'a>(keys: impl IntoIterator<Item = &'a String>) -> Value {
    Value::Array(keys.into_iter().map(|k| Value::from(k.as_str())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Result<GPacket, String> {
        let a = v.as_array().unwrap();
        parse(a[1].as_str().unwrap(), &a[2..])
    }

    #[test]
    fn captured_shapes_parse() {
        let slave = p(
            json!(["", "g_slave", {"interop2": {"k1": {"v": 1}}, "'l": {"node2": ["127.0.0.1:4050"]}}]),
        );
        let Ok(GPacket::Slave(Some(db))) = slave else {
            panic!("{slave:?}")
        };
        assert_eq!(db["'l"]["node2"], json!(["127.0.0.1:4050"]));
        assert_eq!(p(json!(["", "g_slave"])), Ok(GPacket::Slave(None)));
        assert_eq!(
            p(json!(["", "g_upd", "interop2", null, ["k1"]])),
            Ok(GPacket::Upd {
                family: "interop2".into(),
                set: Family::new(),
                del: vec!["k1".into()]
            })
        );
        assert_eq!(
            p(json!(["", "g_chg1", "interop", null])),
            Ok(GPacket::Chg1 {
                family: "interop".into(),
                full: Family::new()
            })
        );
        assert_eq!(
            p(json!(["", "g_found", "seed", ["127.0.0.1:4040"]])),
            Ok(GPacket::Found {
                node: "seed".into(),
                addresses: Some(vec!["127.0.0.1:4040".into()])
            })
        );
    }

    #[test]
    fn malformed_packets_are_errors() {
        for bad in [
            json!(["", "g_slave", 5]),
            json!(["", "g_slave", {"f": [1]}]),
            json!(["", "g_upd"]),
            json!(["", "g_upd", "", {}]),
            json!(["", "g_upd", "f", {}, [1]]),
            json!(["", "g_upd", "f", {"": 1}]),
            json!(["", "g_db_family", "f"]),
            json!(["", "g_reply"]),
            json!(["", "g_chg2", "f", 3]),
            json!(["", "g_found", "n", [1]]),
            json!(["", "g_find", ""]),
            json!(["", "g_nonsense"]),
        ] {
            assert!(p(bad.clone()).is_err(), "{bad}");
        }
    }
}
