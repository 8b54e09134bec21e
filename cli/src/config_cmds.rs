//! The configuration commands: they edit the current section (global, or
//! the profile chosen by `profile NAME`) or show the configuration.
//!
//! Each concern has its own file: `profiles.rs` (choosing, removing and
//! showing profiles), `identity.rs` (node ID, secret, certificate),
//! `lists.rs` (seeds, binds, services) and `scalars.rs` (the other keys).
//! This file has the helpers their command tables share.

mod identity;
mod lists;
mod profiles;
mod scalars;

use crate::cmd::{spec, Arity, Failure, Spec};

pub(crate) use profiles::known_profile;
use serde_json::Value;

type Res = Result<(), Failure>;

/// Every configuration command, in help order.
pub fn commands() -> Vec<Spec> {
    let mut v = profiles::commands();
    v.extend(identity::commands());
    v.extend(lists::commands());
    v.extend(scalars::commands());
    v
}

fn one(value: &'static str, help: &'static str) -> Arity {
    Arity::One { value, help }
}

/// Leaks a generated name: the table lives for the whole run.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// `setKEY VALUE` (alias `KEY`), with `convert` checking the value.
fn set(
    name: &'static str,
    key: &'static str,
    value: &'static str,
    help: &'static str,
    about: &str,
    convert: impl Fn(&str, &Value) -> Result<Value, Failure> + 'static,
) -> Spec {
    spec(name, Some(key), one(value, help), about, move |s, a| {
        let v = convert(name, &a[0])?;
        s.section().insert(key.into(), v);
        Ok(())
    })
}

/// `delKEY`: removes the key from the current section.
fn del(name: &'static str, key: &'static str, about: &str) -> Spec {
    spec(name, None, Arity::Zero, about, move |s, _| {
        s.section().remove(key);
        Ok(())
    })
}
