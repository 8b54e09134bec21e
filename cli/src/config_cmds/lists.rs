//! The list keys (`seeds`, `binds`, `services`): set or remove the whole
//! list, add or remove one entry, and reading a list argument.

use super::{del, leak, one, set, Res};
use crate::cmd::{spec, Failure, Session, Spec};
use serde_json::Value;

/// The list keys: the key, one entry's name, what an entry is, and
/// whether entries are services (JSON arrays allowed, duplicates kept).
const LISTS: [(&str, &str, &str, bool); 3] = [
    ("seeds", "seed", "seed address (host:port)", false),
    (
        "binds",
        "bind",
        "bind address (*, *:*, *:port, host:port)",
        false,
    ),
    (
        "services",
        "service",
        "service (a function name, or JSON [name, args...])",
        true,
    ),
];

/// setKEY/delKEY/addONE/delONE for every list key, in help order.
pub(super) fn commands() -> Vec<Spec> {
    LISTS
        .into_iter()
        .flat_map(|(key, one_name, what, is_service)| {
            let list_help = leak(format!(
                "{what}s, comma-separated or a JSON array; \"\" for none"
            ));
            let whole = [
                set(
                    leak(format!("set{key}")),
                    key,
                    "LIST",
                    list_help,
                    &format!("Set the {key}"),
                    move |cmd, v| Ok(Value::Array(list_arg(cmd, v, is_service)?)),
                ),
                del(
                    leak(format!("del{key}")),
                    key,
                    leak(format!("Remove the {key} (inherit them again)")),
                ),
            ];
            whole
                .into_iter()
                .chain(entry_commands(key, one_name, what, is_service))
        })
        .collect()
}

/// How addONE or delONE changes a list.
type Edit = fn(&str, &mut Vec<Value>, &Value, bool) -> Res;

/// addONE and delONE for one list key.
fn entry_commands(
    key: &'static str,
    one_name: &'static str,
    what: &str,
    is_service: bool,
) -> [Spec; 2] {
    let help = leak(format!("a {what}"));
    let (add_about, del_about) = if is_service {
        (
            format!("Append a {one_name} (duplicates allowed)"),
            format!("Remove the first equal {one_name}"),
        )
    } else {
        (
            format!("Append a {one_name} (moved to the end if present)"),
            format!("Remove a {one_name}"),
        )
    };
    let edits: [(&str, String, Edit); 2] = [("add", add_about, add), ("del", del_about, remove)];
    edits.map(|(verb, about, edit)| {
        let name = leak(format!("{verb}{one_name}"));
        one_entry(name, key, help, about, move |cmd, list, v| {
            edit(cmd, list, v, is_service)
        })
    })
}

/// `addONE VALUE` or `delONE VALUE`: `edit` changes the current section's
/// list with the argument.
fn one_entry(
    name: &'static str,
    key: &'static str,
    help: &'static str,
    about: String,
    edit: impl Fn(&str, &mut Vec<Value>, &Value) -> Res + 'static,
) -> Spec {
    spec(name, None, one("VALUE", help), about, move |s, a| {
        let mut list = current_list(name, s, key)?;
        edit(name, &mut list, &a[0])?;
        s.section().insert(key.into(), Value::Array(list));
        Ok(())
    })
}

/// addONE: a service is appended; other entries (a list of them too) move
/// to the end.
fn add(cmd: &str, list: &mut Vec<Value>, v: &Value, is_service: bool) -> Res {
    if is_service {
        entry_ok(cmd, v, true)?;
        list.push(v.clone());
    } else {
        for item in list_arg(cmd, v, false)? {
            list.retain(|x| *x != item);
            list.push(item);
        }
    }
    Ok(())
}

/// delONE: removes the first equal service, or every equal entry.
fn remove(cmd: &str, list: &mut Vec<Value>, v: &Value, is_service: bool) -> Res {
    if is_service {
        if let Some(i) = list.iter().position(|x| x == v) {
            list.remove(i);
        }
    } else {
        for item in list_arg(cmd, v, false)? {
            list.retain(|x| *x != item);
        }
    }
    Ok(())
}

/// A list argument: a JSON array, or a comma-separated string (empty
/// pieces dropped, so "" is the empty list).
pub(super) fn list_arg(cmd: &str, v: &Value, is_service: bool) -> Result<Vec<Value>, Failure> {
    let items = match v {
        Value::Array(a) => a.clone(),
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| Value::String(p.to_string()))
            .collect(),
        other => {
            return Err(Failure::Usage(format!(
                "{cmd}: expected a comma-separated list or a JSON array, not {other}"
            )))
        }
    };
    for item in &items {
        entry_ok(cmd, item, is_service)?;
    }
    Ok(items)
}

fn entry_ok(cmd: &str, item: &Value, is_service: bool) -> Res {
    let ok = match item {
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => {
            is_service && matches!(a.first(), Some(Value::String(f)) if !f.is_empty())
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else if is_service {
        Err(Failure::Usage(format!(
            "{cmd}: a service is a function name or [name, args...], not {item}"
        )))
    } else {
        Err(Failure::Usage(format!(
            "{cmd}: entries must be non-empty strings, not {item}"
        )))
    }
}

/// The current section's list under `key` (empty if absent).
fn current_list(cmd: &str, s: &mut Session, key: &str) -> Result<Vec<Value>, Failure> {
    match s.section().get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => Ok(a.clone()),
        Some(Value::String(text)) => Ok(text
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| Value::String(p.to_string()))
            .collect()),
        Some(other) => Err(Failure::Failed(format!(
            "{cmd}: {key} in the file is not a list: {other}"
        ))),
    }
}
