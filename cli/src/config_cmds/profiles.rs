//! The profile commands: choosing the section that edits go to
//! (`profile`), removing a profile, its parent, and showing a profile or
//! the effective configuration.

use super::{del, one, Res};
use crate::cmd::{spec, Arity, Failure, Session, Spec};
use aemp::rcfile::{self, to_pretty_json};
use serde_json::{Map, Value};

/// The profile commands, in help order.
pub(super) fn commands() -> Vec<Spec> {
    vec![
        spec("profile", None, one("NAME", "the profile (created if needed)"),
            "Edit the profile NAME with the commands that follow", profile)
            .long("Without it, commands edit the global section. Profiles inherit from their \
                   parent (setparent) and from the global section."),
        spec("delprofile", None, one("NAME", "the profile to remove"), "Remove the profile NAME",
            delprofile),
        spec("setparent", Some("parent"), one("NAME", "the parent profile"),
            "Make the current profile inherit from the profile NAME", setparent),
        del("delparent", "parent", "Remove the current profile's parent"),
        spec("showprofile", None, one("NAME", "the profile to show"),
            "Print the profile's own keys (no inheritance) as JSON", showprofile),
        spec("showconfig", None,
            Arity::Rest { value: "ARGS", help: "[NAME [KEY VALUE]...]: the profile (default: the host name) and extra configure arguments" },
            "Print the effective configuration of a profile as JSON (ends the chain)", showconfig)
            .usage("aemp showconfig [NAME [KEY VALUE]...]")
            .long("Merges, lowest first: the defaults, the KEY VALUE arguments, the global \
                   section, the parent chain, the profile. `profile` and `parent` are left out; \
                   `nodeid` is shown unexpanded."),
    ]
}

fn profile(s: &mut Session, a: Vec<Value>) -> Res {
    let name = name_arg("profile", &a[0])?;
    s.section = Some(name);
    s.section();
    Ok(())
}

fn delprofile(s: &mut Session, a: Vec<Value>) -> Res {
    let name = name_arg("delprofile", &a[0])?;
    if !s.rc.remove_profile(&name) {
        log::warn!("delprofile: there is no profile {name:?}");
    }
    Ok(())
}

fn setparent(s: &mut Session, a: Vec<Value>) -> Res {
    let parent = name_arg("setparent", &a[0])?;
    let Some(me) = s.section.clone() else {
        return Err(Failure::Usage(
            "setparent: only profiles have parents: choose one first \
             (aemp profile NAME setparent PARENT)"
                .into(),
        ));
    };
    check_no_loop(s, &me, &parent)?;
    if s.rc.profile(&parent).is_none() {
        log::warn!("setparent: there is no profile {parent:?} (yet)");
    }
    s.section().insert("parent".into(), Value::String(parent));
    Ok(())
}

fn showprofile(s: &mut Session, a: Vec<Value>) -> Res {
    let name = name_arg("showprofile", &a[0])?;
    known_profile("showprofile", s, &name)?;
    match s.rc.profile(&name) {
        Some(p) => show(&Value::Object(p.clone())),
        None => unreachable!("checked"),
    }
}

fn showconfig(s: &mut Session, a: Vec<Value>) -> Res {
    let mut a = a.into_iter();
    let name = match a.next() {
        Some(v) => {
            let name = name_arg("showconfig", &v)?;
            known_profile("showconfig", s, &name)?;
            name
        }
        // The host name's profile need not exist: the defaults apply.
        None => rcfile::hostname(),
    };
    let rest: Vec<Value> = a.collect();
    if rest.len() % 2 != 0 {
        return Err(Failure::Usage(format!(
            "showconfig: extra arguments come in KEY VALUE pairs, got {} values",
            rest.len()
        )));
    }
    let mut args = Map::new();
    for pair in rest.chunks(2) {
        let key = match &pair[0] {
            Value::String(k) => k.clone(),
            other => {
                return Err(Failure::Usage(format!(
                    "showconfig: a key must be a string, not {other}"
                )))
            }
        };
        args.insert(key, pair[1].clone());
    }
    let cfg = rcfile::effective(&s.rc, Some(&name), &args, false, false)
        .map_err(|e| Failure::Failed(format!("showconfig: {e}")))?;
    show(&Value::Object(cfg))
}

/// Prints a value in the file's layout (a closed stdout is a failure,
/// not a panic).
fn show(v: &Value) -> Res {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(to_pretty_json(v).as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::Failed(format!("cannot write to standard output: {e}")))
}

/// A profile named on the command line must exist in the file: else a
/// failure naming it and listing the known ones (a typo must not run
/// with the defaults).
pub(crate) fn known_profile(cmd: &str, s: &Session, name: &str) -> Res {
    if s.rc.profile(name).is_some() {
        return Ok(());
    }
    let mut known = s.rc.profile_names();
    known.sort_unstable();
    let known = if known.is_empty() {
        "the file has none".to_string()
    } else {
        format!("known: {}", known.join(", "))
    };
    let file =
        s.rc.path()
            .map(|p| format!(" in {}", p.display()))
            .unwrap_or_default();
    Err(Failure::Failed(format!(
        "{cmd}: there is no profile {name:?}{file} ({known})"
    )))
}

fn name_arg(cmd: &str, v: &Value) -> Result<String, Failure> {
    match v {
        Value::String(n) if !n.is_empty() => Ok(n.clone()),
        other => Err(Failure::Usage(format!(
            "{cmd}: a profile name must be a non-empty string, not {other}"
        ))),
    }
}

/// Refuses a parent that would make the chain come back to `me`.
fn check_no_loop(s: &Session, me: &str, parent: &str) -> Res {
    let mut chain = vec![me.to_string()];
    let mut next = Some(parent.to_string());
    while let Some(n) = next {
        chain.push(n.clone());
        if n == me || chain[..chain.len() - 1].contains(&n) {
            return Err(Failure::Failed(format!(
                "setparent: the parent chain would loop: {}",
                chain.join(" -> ")
            )));
        }
        next =
            s.rc.profile(&n)
                .and_then(|p| p.get("parent"))
                .and_then(Value::as_str)
                .map(str::to_string);
    }
    Ok(())
}
