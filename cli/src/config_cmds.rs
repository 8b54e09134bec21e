//! The configuration commands: they edit the current section (global, or
//! the profile chosen by `profile NAME`) or show the configuration.

use crate::cmd::{spec, Arity, Failure, Session, Spec};
use aemp::rcfile::{self, to_pretty_json};
use serde_json::{Map, Value};

type Res = Result<(), Failure>;

/// Every configuration command, in help order.
pub fn commands() -> Vec<Spec> {
    let mut v = vec![
        spec("profile", None, one("NAME", "the profile (created if needed)"),
            "Edit the profile NAME with the commands that follow", |s, a| {
                let name = name_arg("profile", &a[0])?;
                s.section = Some(name);
                s.section();
                Ok(())
            })
            .long("Without it, commands edit the global section. Profiles inherit from their \
                   parent (setparent) and from the global section."),
        spec("delprofile", None, one("NAME", "the profile to remove"), "Remove the profile NAME",
            |s, a| {
                let name = name_arg("delprofile", &a[0])?;
                if !s.rc.remove_profile(&name) {
                    log::warn!("delprofile: there is no profile {name:?}");
                }
                Ok(())
            }),
        spec("setparent", Some("parent"), one("NAME", "the parent profile"),
            "Make the current profile inherit from the profile NAME", |s, a| {
                let parent = name_arg("setparent", &a[0])?;
                let Some(me) = s.section.clone() else {
                    return Err(Failure::Usage(
                        "setparent: only profiles have parents: choose one first \
                         (aemp profile NAME setparent PARENT)".into(),
                    ));
                };
                check_no_loop(s, &me, &parent)?;
                if s.rc.profile(&parent).is_none() {
                    log::warn!("setparent: there is no profile {parent:?} (yet)");
                }
                s.section().insert("parent".into(), Value::String(parent));
                Ok(())
            }),
        del("delparent", "parent", "Remove the current profile's parent"),
        spec("showprofile", None, one("NAME", "the profile to show"),
            "Print the profile's own keys (no inheritance) as JSON", |s, a| {
                let name = name_arg("showprofile", &a[0])?;
                match s.rc.profile(&name) {
                    Some(p) => show(&Value::Object(p.clone())),
                    None => Err(Failure::Failed(format!("showprofile: there is no profile {name:?}"))),
                }
            }),
        spec("showconfig", None,
            Arity::Rest { value: "ARGS", help: "[NAME [KEY VALUE]...]: the profile (default: the host name) and extra configure arguments" },
            "Print the effective configuration of a profile as JSON (ends the chain)", |s, a| {
                let mut a = a.into_iter();
                let name = match a.next() {
                    Some(v) => name_arg("showconfig", &v)?,
                    None => rcfile::hostname(),
                };
                let rest: Vec<Value> = a.collect();
                if rest.len() % 2 != 0 {
                    return Err(Failure::Usage(format!(
                        "showconfig: extra arguments come in KEY VALUE pairs, got {} values", rest.len())));
                }
                let mut args = Map::new();
                for pair in rest.chunks(2) {
                    let key = match &pair[0] {
                        Value::String(k) => k.clone(),
                        other => return Err(Failure::Usage(format!("showconfig: a key must be a string, not {other}"))),
                    };
                    args.insert(key, pair[1].clone());
                }
                let cfg = rcfile::effective(&s.rc, Some(&name), &args, false, false)
                    .map_err(|e| Failure::Failed(format!("showconfig: {e}")))?;
                show(&Value::Object(cfg))
            })
            .usage("aemp showconfig [NAME [KEY VALUE]...]")
            .long("Merges, lowest first: the defaults, the KEY VALUE arguments, the global \
                   section, the parent chain, the profile. `profile` and `parent` are left out; \
                   `nodeid` is shown unexpanded."),
        set("setnodeid", "nodeid", "ID", "the node ID; %n is the host name, %u and a trailing / random text",
            "Set the node ID", node_id_value),
        del("delnodeid", "nodeid", "Remove the node ID (inherit it again)"),
        spec("gensecret", None, Arity::Zero, "Set a new random secret (86 alphanumerics, 512 bits)",
            |s, _| {
                let secret = gen_secret().map_err(|e| Failure::Failed(format!("gensecret: {e}")))?;
                s.section().insert("secret".into(), Value::String(secret));
                Ok(())
            }),
        set("setsecret", "secret", "SECRET", "the shared secret", "Set the shared secret",
            |cmd, v| match v {
                Value::String(s) if !s.is_empty() => Ok(Value::String(s.clone())),
                other => Err(Failure::Usage(format!("{cmd}: the secret must be a non-empty string, not {other}"))),
            }),
        del("delsecret", "secret", "Remove the secret (inherit it again)"),
        spec("gencert", None, Arity::Zero,
            "Set a new self-signed certificate and key (CN=AnyEvent::MP, 10 years)", |s, _| {
                let pem = crate::config_cmds::gen_cert().map_err(|e| Failure::Failed(format!("gencert: {e}")))?;
                s.section().insert("cert".into(), Value::String(pem));
                Ok(())
            })
            .long("Stores the private key and the certificate as PEM under `cert`. Nodes that share \
                   the certificate trust each other over TLS (copy the file to every host)."),
        spec("setcert", Some("cert"), one("FILE", "a PEM file with a private key and a certificate (and optional CA certificates)"),
            "Set the certificate and key from a PEM file", |s, a| {
                let file = match &a[0] {
                    Value::String(f) => f.clone(),
                    other => return Err(Failure::Usage(format!("setcert: FILE must be a file name, not {other}"))),
                };
                let pem = read_cert(&file).map_err(Failure::Failed)?;
                s.section().insert("cert".into(), Value::String(pem));
                Ok(())
            }),
        del("delcert", "cert", "Remove the certificate (inherit it again)"),
    ];
    for (key, one_name, what, is_service) in [
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
    ] {
        v.extend(list_commands(key, one_name, what, is_service));
    }
    for (key, kind, what) in [
        (
            "monitor_timeout",
            Kind::Seconds,
            "seconds the connection attempts to a node go on; also bounds a handshake (default 30)",
        ),
        (
            "connect_interval",
            Kind::Seconds,
            "seconds between connection attempts to a node's addresses; its monitors fire after this long without a connection (default 2)",
        ),
        (
            "busy_wait",
            Kind::SecondsOrZero,
            "seconds a node's threads poll for work before sleeping (default 0.0001; 0: never poll)",
        ),
        (
            "tick",
            Kind::SecondsOrZero,
            "heartbeat tick: a peer silent for a tick is probed, one silent for 3 ticks is dead (default 4; 0: no heartbeat)",
        ),
        (
            "unsent_limit",
            Kind::Bytes,
            "unsent bytes per connection past which it fails like a lost one (default 134217728)",
        ),
        (
            "unsent_high_water",
            Kind::Bytes,
            "unsent bytes per connection above which snd_wait waits (default 1048576)",
        ),
        (
            "framing_format",
            Kind::Names,
            "framings offered and accepted, by preference (default cbor,json)",
        ),
        (
            "auth_offer",
            Kind::Names,
            "authentication methods sent (default tls_sha3_512,hmac_sha3_512)",
        ),
        (
            "auth_accept",
            Kind::Names,
            "authentication methods accepted (default: the offer plus tls_anon,cleartext)",
        ),
        (
            "nodelay",
            Kind::Bool,
            "TCP_NODELAY on connections (default on)",
        ),
        (
            "autocork",
            Kind::Bool,
            "for Perl nodes sharing the file: aemp nodes always cork",
        ),
        (
            "secure",
            Kind::Bool,
            "for Perl nodes sharing the file: aemp nodes never run code sent to them",
        ),
    ] {
        v.extend(scalar_commands(key, kind, what));
    }
    v
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

fn name_arg(cmd: &str, v: &Value) -> Result<String, Failure> {
    match v {
        Value::String(n) if !n.is_empty() => Ok(n.clone()),
        other => Err(Failure::Usage(format!(
            "{cmd}: a profile name must be a non-empty string, not {other}"
        ))),
    }
}

fn node_id_value(cmd: &str, v: &Value) -> Result<Value, Failure> {
    match v {
        Value::String(id) => match aemp::NodeId::new(id) {
            Ok(_) => Ok(v.clone()),
            Err(e) => Err(Failure::Usage(format!("{cmd}: {e}"))),
        },
        other => Err(Failure::Usage(format!(
            "{cmd}: a node ID must be a string, not {other}"
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

/// A list argument: a JSON array, or a comma-separated string (empty
/// pieces dropped, so "" is the empty list).
fn list_arg(cmd: &str, v: &Value, is_service: bool) -> Result<Vec<Value>, Failure> {
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

/// setKEY/delKEY/addONE/delONE for a list key.
fn list_commands(
    key: &'static str,
    one_name: &'static str,
    what: &'static str,
    is_service: bool,
) -> Vec<Spec> {
    let set_name = leak(format!("set{key}"));
    let add_name = leak(format!("add{one_name}"));
    let del_one = leak(format!("del{one_name}"));
    let list_help = leak(format!(
        "{what}s, comma-separated or a JSON array; \"\" for none"
    ));
    let one_help = leak(format!("a {what}"));
    vec![
        spec(
            set_name,
            Some(key),
            one("LIST", list_help),
            format!("Set the {key}"),
            move |s, a| {
                let items = list_arg(set_name, &a[0], is_service)?;
                s.section().insert(key.into(), Value::Array(items));
                Ok(())
            },
        ),
        del(
            leak(format!("del{key}")),
            key,
            leak(format!("Remove the {key} (inherit them again)")),
        ),
        spec(
            add_name,
            None,
            one("VALUE", one_help),
            if is_service {
                format!("Append a {one_name} (duplicates allowed)")
            } else {
                format!("Append a {one_name} (moved to the end if present)")
            },
            move |s, a| {
                let mut list = current_list(add_name, s, key)?;
                if is_service {
                    entry_ok(add_name, &a[0], true)?;
                    list.push(a[0].clone());
                } else {
                    for item in list_arg(add_name, &a[0], false)? {
                        list.retain(|x| *x != item);
                        list.push(item);
                    }
                }
                s.section().insert(key.into(), Value::Array(list));
                Ok(())
            },
        ),
        spec(
            del_one,
            None,
            one("VALUE", one_help),
            if is_service {
                format!("Remove the first equal {one_name}")
            } else {
                format!("Remove a {one_name}")
            },
            move |s, a| {
                let mut list = current_list(del_one, s, key)?;
                if is_service {
                    if let Some(i) = list.iter().position(|x| *x == a[0]) {
                        list.remove(i);
                    }
                } else {
                    for item in list_arg(del_one, &a[0], false)? {
                        list.retain(|x| *x != item);
                    }
                }
                s.section().insert(key.into(), Value::Array(list));
                Ok(())
            },
        ),
    ]
}

#[derive(Clone, Copy)]
enum Kind {
    Seconds,
    /// Seconds, where 0 means "off".
    SecondsOrZero,
    Bytes,
    Names,
    Bool,
}

/// setKEY (alias KEY) and delKEY for a scalar key.
fn scalar_commands(key: &'static str, kind: Kind, what: &str) -> Vec<Spec> {
    let (value, help) = match kind {
        Kind::Seconds => ("SECONDS", "a positive number of seconds"),
        Kind::SecondsOrZero => ("SECONDS", "a number of seconds (0: off)"),
        Kind::Bytes => ("BYTES", "a positive whole number of bytes"),
        Kind::Names => (
            "LIST",
            "names, comma-separated or a JSON array, by preference",
        ),
        Kind::Bool => ("BOOL", "1/0, true/false, yes/no or on/off"),
    };
    let about = format!("Set {key}: {what}");
    vec![
        set(
            leak(format!("set{key}")),
            key,
            value,
            help,
            &about,
            move |cmd, v| match kind {
                Kind::Seconds => seconds(cmd, v, false),
                Kind::SecondsOrZero => seconds(cmd, v, true),
                Kind::Bytes => bytes(cmd, v),
                Kind::Names => Ok(Value::Array(list_arg(cmd, v, false)?)),
                Kind::Bool => boolean(cmd, v),
            },
        ),
        del(
            leak(format!("del{key}")),
            key,
            leak(format!("Remove {key} (inherit it again)")),
        ),
    ]
}

fn seconds(cmd: &str, v: &Value, zero: bool) -> Result<Value, Failure> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n.is_finite() && (n > 0.0 || (zero && n == 0.0)) => {
            Ok(if n.fract() == 0.0 && n < 1e15 {
                Value::from(n as i64)
            } else {
                Value::from(n)
            })
        }
        _ => Err(Failure::Usage(format!(
            "{cmd}: expected a {} number of seconds, not {v}",
            if zero { "non-negative" } else { "positive" }
        ))),
    }
}

fn bytes(cmd: &str, v: &Value) -> Result<Value, Failure> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n > 0 => Ok(Value::from(n)),
        _ => Err(Failure::Usage(format!(
            "{cmd}: expected a positive whole number of bytes, not {v}"
        ))),
    }
}

fn boolean(cmd: &str, v: &Value) -> Result<Value, Failure> {
    let b = match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) if n.as_f64() == Some(0.0) => Some(false),
        Value::Number(n) if n.as_f64() == Some(1.0) => Some(true),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Some(true),
            "0" | "false" | "no" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    };
    b.map(Value::Bool).ok_or_else(|| {
        Failure::Usage(format!(
            "{cmd}: expected 1/0, true/false, yes/no or on/off, not {v}"
        ))
    })
}

/// 86 random alphanumerics: 512 bits, like the original's `alnumbits nonce 64`.
fn gen_secret() -> Result<String, String> {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(86);
    let mut buf = [0u8; 128];
    while out.len() < 86 {
        getrandom::fill(&mut buf).map_err(|e| format!("no random numbers: {e}"))?;
        // 248 = 4 * 62: taking bytes below it keeps every character equally likely.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() < 86 {
                out.push(ALNUM[usize::from(b % 62)] as char);
            }
        }
    }
    Ok(out)
}

/// A self-signed CA certificate (CN=AnyEvent::MP, ten years, ECDSA P-256)
/// and its key, as PEM: the key first, like `openssl req -x509 -keyout F -out F`.
pub fn gen_cert() -> Result<String, String> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, SerialNumber,
    };
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| format!("the clock is before 1970: {e}"))?
        .as_secs()
        / 86_400;
    let (y, m, d) = civil_from_days(days as i64 - 1);
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "AnyEvent::MP");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(y, m, d);
    params.not_after = rcgen::date_time_ymd(y + 10, m, d.min(28));
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| format!("no random numbers: {e}"))?;
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let key = KeyPair::generate().map_err(|e| format!("cannot generate a key: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("cannot sign the certificate: {e}"))?;
    Ok(format!("{}{}", key.serialize_pem(), cert.pem()))
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic
/// Gregorian; Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i32, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m as u8, d as u8)
}

/// Reads a PEM file that must hold a private key and a certificate.
fn read_cert(file: &str) -> Result<String, String> {
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("setcert: cannot read {file}: {e}"))?;
    let blocks =
        pem::parse_many(&text).map_err(|e| format!("setcert: {file} is not valid PEM: {e}"))?;
    let has = |pred: &dyn Fn(&str) -> bool| blocks.iter().any(|b| pred(b.tag()));
    if !has(&|t| t.ends_with("PRIVATE KEY")) {
        return Err(format!(
            "setcert: {file} holds no private key (expected a PEM block \"... PRIVATE KEY\")"
        ));
    }
    if !has(&|t| t == "CERTIFICATE") {
        return Err(format!(
            "setcert: {file} holds no certificate (expected a PEM block \"CERTIFICATE\")"
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_780), (2026, 11, 23));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn secrets_are_alphanumeric() {
        let s = gen_secret().unwrap();
        assert_eq!(s.len(), 86);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(s, gen_secret().unwrap());
    }
}
