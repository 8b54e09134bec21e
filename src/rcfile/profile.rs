//! The `configure` merge: built-in defaults, arguments, the global
//! section and a profile with its parent chain; node-ID expansion; the
//! `services` list.

use super::{short, RcFile, MERGE_ONLY};
use crate::error::{Error, Result};
use crate::id::{NameGen, NodeId};
use crate::transport::auth::AuthMethod;
use crate::transport::Framing;
use once_cell::sync::Lazy;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// The built-in defaults, the lowest layer of [`effective`]:
/// `binds ["*"]`, `monitor_timeout 30`, `connect_interval 2`,
/// `framing_format ["cbor","json"]` (aemp never offers Perl's `storable`),
/// `auth_offer ["tls_sha3_512","hmac_sha3_512"]`, `auth_accept` = the offer
/// plus `tls_anon` and `cleartext`, `nodelay true`.
///
/// ```
/// let d = aemp::rcfile::defaults();
/// assert_eq!(d["binds"], serde_json::json!(["*"]));
/// assert_eq!(d["monitor_timeout"], 30);
/// assert!(d.get("secret").is_none()); // no default secret
/// ```
pub fn defaults() -> Map<String, Value> {
    let names = |list: &[&str]| Value::from(list.to_vec());
    let framings: Vec<&str> = Framing::ALL.iter().map(|f| f.name()).collect();
    let offer: Vec<&str> = AUTH_OFFER.iter().map(|m| m.name()).collect();
    let accept: Vec<&str> = AuthMethod::ALL.iter().map(|m| m.name()).collect();
    let v = json!({
        "binds": ["*"],
        "monitor_timeout": MONITOR_TIMEOUT.as_secs(),
        "connect_interval": CONNECT_INTERVAL.as_secs(),
        "framing_format": names(&framings),
        "auth_offer": names(&offer),
        "auth_accept": names(&accept),
        "nodelay": NODELAY,
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!("a literal object"),
    }
}

/// The default `monitor_timeout` (also [`Config`](crate::Config)'s).
pub(crate) const MONITOR_TIMEOUT: Duration = Duration::from_secs(30);
/// The default `connect_interval` (also [`Config`](crate::Config)'s).
pub(crate) const CONNECT_INTERVAL: Duration = Duration::from_secs(2);
/// The default `nodelay` (also [`Config`](crate::Config)'s).
pub(crate) const NODELAY: bool = true;
/// The default `auth_offer` (also [`Config`](crate::Config)'s); the
/// default `auth_accept` is every method, [`AuthMethod::ALL`], and the
/// default `framing_format` every framing, [`Framing::ALL`].
pub(crate) const AUTH_OFFER: [AuthMethod; 2] = [AuthMethod::TlsSha3_512, AuthMethod::HmacSha3_512];

/// Perl's idea of truth for a configuration value: `null`, `false`, `0`,
/// `""` and `"0"` are false, everything else is true.
///
/// ```
/// use aemp::rcfile::truthy;
/// use serde_json::json;
/// assert!(!truthy(&json!("0")) && !truthy(&json!("")) && !truthy(&json!(0)) && !truthy(&json!(null)));
/// assert!(truthy(&json!("0.0")) && truthy(&json!(1)) && truthy(&json!([])));
/// ```
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !(s.is_empty() || s == "0"),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// The host's name (`uname -n`): the default profile name and the
/// expansion of `%n` in node IDs. Empty if the system does not say.
pub fn hostname() -> String {
    static NAME: Lazy<String> = Lazy::new(system_hostname);
    NAME.clone()
}

fn system_hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// This process's random text for node IDs (the original's RUNIQ): the
/// same for every expansion in one process.
///
/// ```
/// assert_eq!(aemp::rcfile::runiq(), aemp::rcfile::runiq()); // one per process
/// assert!(!aemp::rcfile::runiq().is_empty());
/// ```
pub fn runiq() -> &'static str {
    static RUNIQ: Lazy<String> = Lazy::new(|| NameGen::random_text(16));
    &RUNIQ
}

/// The effective configuration of `profile`, as `configure` computes it.
///
/// Layers, lowest first: [`defaults`] < `args` (the `configure`
/// arguments) < the file's global keys < the profile's `parent` chain
/// (farthest ancestor first) < the profile itself. `force` puts `args` on
/// top; `norc` ignores the file. `args` may also carry `profile`, `norc`
/// and `force` (Perl truth); the parameters win for `profile` and are
/// or-ed for the flags. The profile defaults to [`hostname`]; a profile
/// missing from the file contributes nothing.
///
/// The result never holds `profile`, `parent`, `version`, `norc` or
/// `force`; `nodeid` is left unexpanded (see [`node_id`]).
///
/// Fails with [`Error::Config`] when a parent chain loops or a `parent`
/// is not a string.
///
/// ```
/// use aemp::rcfile::{self, RcFile};
/// use serde_json::{json, Map};
/// let rc = RcFile::from_json(r#"{"version":1, "monitor_timeout":10,
///     "profile":{"base":{"monitor_timeout":5,"seeds":["a:1"]}, "w":{"parent":"base","seeds":["b:2"]}}}"#).unwrap();
/// let cfg = rcfile::effective(&rc, Some("w"), &Map::new(), false, false).unwrap();
/// assert_eq!(cfg["seeds"], json!(["b:2"])); // the profile itself wins
/// assert_eq!(cfg["monitor_timeout"], json!(5)); // its parent over the global section
/// let norc = rcfile::effective(&rc, Some("w"), &Map::new(), false, true).unwrap();
/// assert_eq!(norc["monitor_timeout"], json!(30)); // the file ignored: the built-in default
/// ```
pub fn effective(
    rc: &RcFile,
    profile: Option<&str>,
    args: &Map<String, Value>,
    force: bool,
    norc: bool,
) -> Result<Map<String, Value>> {
    Ok(merge(rc, profile, args, force, norc)?.1)
}

fn merge(
    rc: &RcFile,
    profile: Option<&str>,
    args: &Map<String, Value>,
    force: bool,
    norc: bool,
) -> Result<(String, Map<String, Value>)> {
    let flag = |k: &str| args.get(k).is_some_and(truthy);
    let force = force || flag("force");
    let norc = norc || flag("norc");
    let name = match (profile, args.get("profile")) {
        (Some(p), _) => p.to_owned(),
        (None, None | Some(Value::Null)) => hostname(),
        (None, Some(Value::String(p))) => p.clone(),
        (None, Some(other)) => {
            return Err(Error::Config {
                key: "profile".into(),
                problem: format!("must be a profile name, not {}", short(other)),
            })
        }
    };
    let mut out = defaults();
    let overlay = |out: &mut Map<String, Value>, layer: &Map<String, Value>| {
        for (k, v) in layer {
            if !MERGE_ONLY.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
    };
    overlay(&mut out, args);
    if !norc {
        overlay(&mut out, rc.as_map());
        for section in parent_chain(rc, &name)?.iter().rev() {
            overlay(&mut out, section);
        }
    }
    if force {
        overlay(&mut out, args);
    }
    Ok((name, out))
}

/// `[profile, parent, grandparent, ...]`, each that exists.
fn parent_chain<'a>(rc: &'a RcFile, name: &str) -> Result<Vec<&'a Map<String, Value>>> {
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut current = Some(name.to_owned());
    while let Some(n) = current.take() {
        if seen.contains(&n) {
            seen.push(n);
            return Err(Error::Config {
                key: "parent".into(),
                problem: format!("the profiles' parent chain loops: {}", seen.join(" -> ")),
            });
        }
        let Some(section) = rc.profile(&n) else {
            if let Some(child) = seen.last() {
                log::warn!("profile {child:?} names parent {n:?}, which does not exist");
            }
            break;
        };
        seen.push(n);
        out.push(section);
        current = match section.get("parent") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => Some(p.clone()),
            Some(other) => {
                return Err(Error::Config {
                    key: "parent".into(),
                    problem: format!(
                        "profile {:?}: must be a profile name, not {}",
                        seen.last().map(String::as_str).unwrap_or_default(),
                        short(other)
                    ),
                })
            }
        };
    }
    Ok(out)
}

/// A node ID after expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandedNodeId {
    /// The node ID.
    pub node_id: NodeId,
    /// Whether random text ([`runiq`]) went into it; such nodes need no
    /// random prefix in their port names.
    pub randomised: bool,
}

/// Expands a node ID template: `%n` becomes `hostname`, `%u` becomes
/// [`runiq`], and a trailing `/` gets [`runiq`] appended.
///
/// Fails with [`Error::Config`] (key `nodeid`) when the template is empty,
/// and with [`Error::InvalidNodeId`] when the result is not a valid node
/// ID.
///
/// ```
/// use aemp::rcfile::{expand_node_id, runiq};
/// let e = expand_node_id("x/%n/%u", "host").unwrap();
/// assert_eq!(e.node_id.as_str(), format!("x/host/{}", runiq()));
/// assert!(e.randomised);
/// assert_eq!(expand_node_id("seed", "host").unwrap().node_id.as_str(), "seed");
/// assert!(expand_node_id("", "host").is_err());
/// ```
pub fn expand_node_id(template: &str, hostname: &str) -> Result<ExpandedNodeId> {
    expand_node_id_with(template, hostname, runiq())
}

/// [`expand_node_id`] with `unique` in place of [`runiq`]: a
/// [`Config`](crate::Config) gives each node fresh random text, so several
/// nodes of one process built from one pattern get distinct IDs. A host
/// name that is empty becomes `localhost`; `#`, `;` and `,` in it (never
/// in real host names) become `_`.
pub(crate) fn expand_node_id_with(
    template: &str,
    hostname: &str,
    unique: &str,
) -> Result<ExpandedNodeId> {
    if template.is_empty() {
        return Err(Error::Config {
            key: "nodeid".into(),
            problem: "illegal node ID: it is empty".into(),
        });
    }
    let host = match hostname {
        "" => "localhost".to_string(),
        h => h.replace(['#', ';', ','], "_"),
    };
    let mut id = template.replace("%n", &host);
    let mut randomised = false;
    if id.contains("%u") {
        id = id.replace("%u", unique);
        randomised = true;
    }
    if id.ends_with('/') {
        id.push_str(unique);
        randomised = true;
    }
    Ok(ExpandedNodeId {
        node_id: NodeId::new(&id)?,
        randomised,
    })
}

/// The node ID for an effective configuration: its `nodeid`, else
/// `"<profile>/"`, expanded with [`expand_node_id`] and [`hostname`].
///
/// ```
/// use aemp::rcfile::{defaults, node_id};
/// use serde_json::json;
/// let mut cfg = defaults();
/// let id = node_id(&cfg, "worker").unwrap(); // no nodeid: "<profile>/" plus random text
/// assert!(id.node_id.as_str().starts_with("worker/") && id.randomised);
/// cfg.insert("nodeid".into(), json!("db-%n"));
/// let id = node_id(&cfg, "worker").unwrap();
/// assert_eq!(id.node_id.as_str(), format!("db-{}", aemp::rcfile::hostname()));
/// ```
pub fn node_id(config: &Map<String, Value>, profile: &str) -> Result<ExpandedNodeId> {
    let template = match config.get("nodeid") {
        None | Some(Value::Null) => format!("{profile}/"),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(Error::Config {
                key: "nodeid".into(),
                problem: format!("must be a string, not {}", short(other)),
            })
        }
    };
    expand_node_id(&template, &hostname())
}

/// What `configure` starts from: the profile, its effective configuration
/// and the node ID.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The profile used (the argument, the `profile` key of the
    /// arguments, or the host name).
    pub profile: String,
    /// The effective configuration ([`effective`]).
    pub config: Map<String, Value>,
    /// The expanded node ID ([`node_id`]).
    pub node_id: ExpandedNodeId,
}

/// [`effective`] plus the profile name and the expanded [`node_id`].
///
/// ```
/// use aemp::rcfile::{self, RcFile};
/// use serde_json::{json, Map};
/// let rc = RcFile::from_json(r#"{"version":1,"secret":"s","profile":{"seed":{"nodeid":"seed","binds":["*:4040"]}}}"#).unwrap();
/// // What the program passes (`configure` arguments) is below the file unless forced.
/// let mut args = Map::new();
/// args.insert("binds".into(), json!(["*:5050"]));
/// let r = rcfile::resolve(&rc, Some("seed"), &args, false, false).unwrap();
/// assert_eq!((r.profile.as_str(), r.node_id.node_id.as_str()), ("seed", "seed"));
/// assert_eq!(r.config["binds"], json!(["*:4040"]));
/// let forced = rcfile::resolve(&rc, Some("seed"), &args, true, false).unwrap();
/// assert_eq!(forced.config["binds"], json!(["*:5050"]));
/// // The network settings of a node from it:
/// let cfg = aemp::Config::from_rc(&r).unwrap();
/// assert_eq!(cfg.secret.as_deref(), Some("s"));
/// ```
pub fn resolve(
    rc: &RcFile,
    profile: Option<&str>,
    args: &Map<String, Value>,
    force: bool,
    norc: bool,
) -> Result<Resolved> {
    let (profile, config) = merge(rc, profile, args, force, norc)?;
    let node_id = node_id(&config, &profile)?;
    Ok(Resolved {
        profile,
        config,
        node_id,
    })
}

/// One entry of the `services` list.
#[derive(Debug, Clone, PartialEq)]
pub enum Service {
    /// `"f"` or `["f", args...]`: call the registered function `f`.
    Call {
        /// The registered function name.
        func: String,
        /// Its arguments.
        args: Vec<Value>,
    },
    /// `"Mod::"`: load a module (in Perl); aemp has no modules to load,
    /// so the node treats this as a registered name.
    Module(String),
}

/// Reads the `services` key of an effective configuration (absent: none).
///
/// ```
/// use aemp::rcfile::{services, Service};
/// use serde_json::json;
/// let cfg = json!({"services": ["f", ["g", 1, 2], "Mod::"]});
/// let s = services(cfg.as_object().unwrap()).unwrap();
/// assert_eq!(s[1], Service::Call { func: "g".into(), args: vec![json!(1), json!(2)] });
/// assert_eq!(s[2], Service::Module("Mod::".into()));
/// ```
pub fn services(config: &Map<String, Value>) -> Result<Vec<Service>> {
    let bad = |problem: String| Error::Config {
        key: "services".into(),
        problem,
    };
    let list = match config.get("services") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(other) => return Err(bad(format!("must be a list, not {}", short(other)))),
    };
    list.iter()
        .map(|entry| match entry {
            Value::String(s) if s.ends_with("::") => Ok(Service::Module(s.clone())),
            Value::String(s) if !s.is_empty() => Ok(Service::Call {
                func: s.clone(),
                args: Vec::new(),
            }),
            Value::Array(a) => match a.split_first() {
                Some((Value::String(f), args)) if !f.is_empty() => Ok(Service::Call {
                    func: f.clone(),
                    args: args.to_vec(),
                }),
                _ => Err(bad(format!(
                    "entry {} must start with a function name",
                    short(entry)
                ))),
            },
            other => Err(bad(format!(
                "entry {} must be a function name or [name, args...]",
                short(other)
            ))),
        })
        .collect()
}
