//! The configuration file shared with Perl's AnyEvent::MP, profiles, and
//! the `configure` merge.
//!
//! One JSON file serves Rust and Perl nodes on a host. Its layout is the
//! original's:
//!
//! ```json
//! {
//!    "profile" : {
//!       "seed" : {
//!          "binds" : [
//!             "*:4040"
//!          ],
//!          "nodeid" : "seed"
//!       }
//!    },
//!    "secret" : "s3cret",
//!    "version" : 1
//! }
//! ```
//!
//! Top-level keys other than `version` and `profile` are *global* settings;
//! each profile may name a `parent` profile to inherit from.
//!
//! - Path ([`default_path`]): `$AEMP_RC`, else `$PERL_ANYEVENT_MP_RC`, else
//!   `$HOME/.perl-anyevent-mp` (`%APPDATA%/perl-anyevent-mp` without a
//!   home).
//! - Reading ([`RcFile::load`]) never fails: a missing file is empty, an
//!   unreadable or invalid one is logged and treated as empty
//!   (`{"version":1}`), and is only replaced when the caller edits the
//!   configuration and saves (the unparseable original is kept as the backup
//!   `<file>~`).
//! - Parsing is the original's *relaxed* JSON: plain JSON plus trailing
//!   commas before `]`/`}`, shell-style `#` comments outside strings, and
//!   literal tab characters inside strings. The top level must be an object.
//! - Writing ([`RcFile::save`]) happens only when the content changed: the
//!   new text goes to `<file>~new~`, the old file is hard-linked to
//!   `<file>~`, then `<file>~new~` is renamed over the file. The file's mode
//!   is kept (a new file gets `0600`: it holds secrets). The text is the
//!   original's pretty layout (sorted keys, three-space indent, `" : "`).
//! - [`effective`] merges defaults, `configure` arguments, the global
//!   section and a profile with its parent chain; [`resolve`] adds the
//!   profile name and node ID, as `configure` needs them.
//!
//! ```
//! use aemp::rcfile::{self, RcFile};
//! use serde_json::{json, Map};
//!
//! let rc = RcFile::from_json(r#"{
//!     "version": 1,
//!     "secret": "global",
//!     "profile": {
//!         "base": { "seeds": ["a:4040"], },   # relaxed: comment, trailing comma
//!         "worker": { "parent": "base", "nodeid": "worker/%n/" }
//!     }
//! }"#).unwrap();
//! let cfg = rcfile::effective(&rc, Some("worker"), &Map::new(), false, false).unwrap();
//! assert_eq!(cfg["secret"], json!("global"));
//! assert_eq!(cfg["seeds"], json!(["a:4040"]));
//! assert_eq!(cfg["monitor_timeout"], json!(30)); // a default
//! assert!(cfg.get("parent").is_none());
//!
//! let id = rcfile::node_id(&cfg, "worker").unwrap();
//! assert!(id.node_id.as_str().starts_with(&format!("worker/{}/", rcfile::hostname())));
//! assert!(id.randomised);
//! ```

use crate::error::{Error, Result};
use crate::id::{NameGen, NodeId};
use once_cell::sync::Lazy;
use serde_json::{json, Map, Value};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The file name under `$HOME` (the original's).
pub const FILE_NAME: &str = ".perl-anyevent-mp";

/// Keys that only steer the merge and never appear in its result.
const MERGE_ONLY: [&str; 5] = ["profile", "parent", "version", "norc", "force"];

/// The configuration file's path, from the environment: `$AEMP_RC`, else
/// `$PERL_ANYEVENT_MP_RC`, else `$HOME/.perl-anyevent-mp`, else
/// `%APPDATA%/perl-anyevent-mp`. Empty variables count as unset. `None`
/// when none of them is set.
pub fn default_path() -> Option<PathBuf> {
    path_from(
        std::env::var_os("AEMP_RC"),
        std::env::var_os("PERL_ANYEVENT_MP_RC"),
        std::env::var_os("HOME"),
        std::env::var_os("APPDATA"),
    )
}

/// [`default_path`] with the four variables given: `aemp_rc`,
/// `perl_rc` (`PERL_ANYEVENT_MP_RC`), `home`, `appdata`.
///
/// ```
/// use aemp::rcfile::path_from;
/// use std::path::PathBuf;
/// assert_eq!(path_from(None, None, Some("/home/u".into()), None),
///            Some(PathBuf::from("/home/u/.perl-anyevent-mp")));
/// assert_eq!(path_from(Some("/etc/aemp.json".into()), Some("/x".into()), None, None),
///            Some(PathBuf::from("/etc/aemp.json")));
/// ```
pub fn path_from(
    aemp_rc: Option<OsString>,
    perl_rc: Option<OsString>,
    home: Option<OsString>,
    appdata: Option<OsString>,
) -> Option<PathBuf> {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty());
    if let Some(p) = set(aemp_rc).or_else(|| set(perl_rc)) {
        return Some(PathBuf::from(p));
    }
    if let Some(home) = set(home) {
        return Some(Path::new(&home).join(FILE_NAME));
    }
    set(appdata).map(|a| Path::new(&a).join("perl-anyevent-mp"))
}

/// How [`RcFile::load`] found the file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadStatus {
    /// Not loaded from a file (built in memory).
    InMemory,
    /// The file does not exist; the configuration starts empty.
    Missing,
    /// The file was read and parsed.
    Loaded,
    /// The file exists but could not be read; treated as empty.
    Unreadable(String),
    /// The file was read but is not a valid configuration; treated as
    /// empty, and never replaced unless the configuration is edited.
    Invalid(String),
}

/// The configuration file: its path, content, and what is on disk.
///
/// Edits go through [`RcFile::section_mut`] (or [`RcFile::as_map_mut`]);
/// [`RcFile::save`] writes only when the content differs from what was
/// loaded.
#[derive(Debug, Clone)]
pub struct RcFile {
    path: Option<PathBuf>,
    data: Map<String, Value>,
    on_disk: Map<String, Value>,
    status: LoadStatus,
}

fn empty_config() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("version".into(), json!(1));
    m
}

impl Default for RcFile {
    fn default() -> Self {
        RcFile::new()
    }
}

impl RcFile {
    /// An empty configuration (`{"version":1}`) with no file behind it.
    pub fn new() -> RcFile {
        RcFile {
            path: None,
            data: empty_config(),
            on_disk: empty_config(),
            status: LoadStatus::InMemory,
        }
    }

    /// A configuration from (relaxed) JSON text, with no file behind it.
    pub fn from_json(text: &str) -> Result<RcFile> {
        let data = parse(text).map_err(|problem| Error::RcFile {
            path: "(text)".into(),
            problem,
        })?;
        Ok(RcFile {
            path: None,
            on_disk: data.clone(),
            data,
            status: LoadStatus::InMemory,
        })
    }

    /// Loads the file at [`default_path`] (see [`RcFile::load`]); with no
    /// path at all, an empty in-memory configuration.
    pub fn load_default() -> RcFile {
        match default_path() {
            Some(p) => RcFile::load(p),
            None => RcFile::new(),
        }
    }

    /// Loads `path`. Never fails: a missing file gives an empty
    /// configuration; an unreadable or invalid one is logged as a warning
    /// and treated as empty (see [`RcFile::status`]).
    pub fn load(path: impl Into<PathBuf>) -> RcFile {
        let path = path.into();
        let (data, status) = match fs::read(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => (empty_config(), LoadStatus::Missing),
            Err(e) => {
                log::warn!(
                    "configuration file {}: cannot read it ({e}); using an empty configuration",
                    path.display()
                );
                (empty_config(), LoadStatus::Unreadable(e.to_string()))
            }
            Ok(bytes) => match String::from_utf8(bytes)
                .map_err(|e| format!("not UTF-8 text ({e})"))
                .and_then(|t| parse(&t))
            {
                Ok(data) => (data, LoadStatus::Loaded),
                Err(problem) => {
                    log::warn!(
                        "configuration file {}: {problem}; using an empty configuration \
                         (the file is left alone unless you edit the configuration)",
                        path.display()
                    );
                    (empty_config(), LoadStatus::Invalid(problem))
                }
            },
        };
        RcFile {
            path: Some(path),
            on_disk: data.clone(),
            data,
            status,
        }
    }

    /// The file's path, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// How the file was found when loaded (or last saved).
    pub fn status(&self) -> &LoadStatus {
        &self.status
    }

    /// The whole content: `version`, the global keys and `profile`.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.data
    }

    /// The whole content, for editing. Keep `profile` an object of
    /// objects: [`RcFile::save`] refuses to write anything else.
    pub fn as_map_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.data
    }

    /// A profile's own keys (no inheritance), if the profile exists.
    pub fn profile(&self, name: &str) -> Option<&Map<String, Value>> {
        self.data.get("profile")?.get(name)?.as_object()
    }

    /// The names of all profiles, sorted.
    pub fn profile_names(&self) -> Vec<&str> {
        match self.data.get("profile").and_then(Value::as_object) {
            Some(p) => p.keys().map(String::as_str).collect(),
            None => Vec::new(),
        }
    }

    /// The section that edits go to: the global section for `None`, else
    /// the named profile, created (empty) if needed.
    pub fn section_mut(&mut self, profile: Option<&str>) -> &mut Map<String, Value> {
        let Some(name) = profile else {
            return &mut self.data;
        };
        let profiles = self
            .data
            .entry("profile")
            .or_insert_with(|| Value::Object(Map::new()));
        if !profiles.is_object() {
            *profiles = Value::Object(Map::new());
        }
        let Value::Object(profiles) = profiles else {
            unreachable!("made an object above")
        };
        let section = profiles
            .entry(name)
            .or_insert_with(|| Value::Object(Map::new()));
        if !section.is_object() {
            *section = Value::Object(Map::new());
        }
        match section {
            Value::Object(m) => m,
            _ => unreachable!("made an object above"),
        }
    }

    /// Removes a profile; `false` if there was none by that name. An empty
    /// `profile` object stays, as in the original.
    pub fn remove_profile(&mut self, name: &str) -> bool {
        let removed = match self.data.get_mut("profile").and_then(Value::as_object_mut) {
            Some(p) => p.remove(name).is_some(),
            None => false,
        };
        removed
    }

    /// Whether the content differs from what is on disk.
    pub fn is_changed(&self) -> bool {
        self.data != self.on_disk
    }

    /// The content as the original writes it: pretty JSON with sorted
    /// keys, a three-space indent, `" : "` between key and value, and a
    /// final newline.
    pub fn to_json_string(&self) -> String {
        to_pretty_json(&Value::Object(self.data.clone()))
    }

    /// Writes the file if the content changed; `Ok(false)` if there was
    /// nothing to write.
    ///
    /// The new text goes to `<file>~new~` (with the old file's mode, or
    /// `0600` for a new file), the old file is hard-linked (or copied) to
    /// `<file>~`, and `<file>~new~` is renamed over the file; a symbolic
    /// link is followed, not replaced. When the file had failed to load,
    /// its unparseable original becomes the backup, with a warning.
    pub fn save(&mut self) -> Result<bool> {
        if !self.is_changed() {
            return Ok(false);
        }
        let Some(path) = self.path.clone() else {
            return Err(Error::RcFile {
                path: "(none)".into(),
                problem: "no configuration file path: set AEMP_RC or HOME".into(),
            });
        };
        check_layout(&self.data).map_err(|problem| Error::RcFile {
            path: path.display().to_string(),
            problem: format!("refusing to write an invalid configuration: {problem}"),
        })?;
        let err = |what: &str, p: &Path, e: io::Error| Error::RcFile {
            path: path.display().to_string(),
            problem: format!("{what} {}: {e}", p.display()),
        };
        let target = match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                fs::canonicalize(&path).map_err(|e| err("cannot follow link", &path, e))?
            }
            _ => path.clone(),
        };
        let new = with_suffix(&target, "~new~");
        let backup = with_suffix(&target, "~");
        let old = fs::metadata(&target).ok();
        write_new(&new, self.to_json_string().as_bytes(), old.as_ref())
            .map_err(|e| err("cannot write", &new, e))?;
        if old.is_some() {
            match fs::remove_file(&backup) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    let _ = fs::remove_file(&new);
                    return Err(err("cannot remove old backup", &backup, e));
                }
                _ => {}
            }
            if fs::hard_link(&target, &backup).is_err() {
                if let Err(e) = fs::copy(&target, &backup) {
                    let _ = fs::remove_file(&new);
                    return Err(err("cannot back up to", &backup, e));
                }
            }
            if let LoadStatus::Invalid(_) | LoadStatus::Unreadable(_) = self.status {
                log::warn!(
                    "configuration file {}: replacing the unparseable file; its old content is kept in {}",
                    target.display(),
                    backup.display()
                );
            }
        }
        fs::rename(&new, &target).map_err(|e| err("cannot rename to", &target, e))?;
        self.on_disk = self.data.clone();
        self.status = LoadStatus::Loaded;
        Ok(true)
    }
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn write_new(new: &Path, bytes: &[u8], old: Option<&fs::Metadata>) -> io::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(new)?;
    f.write_all(bytes)?;
    if let Some(old) = old {
        f.set_permissions(old.permissions())?;
    }
    f.sync_all()
}

/// The layout rules: a top-level object whose `profile`, if present, is
/// an object of objects.
fn check_layout(data: &Map<String, Value>) -> std::result::Result<(), String> {
    match data.get("profile") {
        None => Ok(()),
        Some(Value::Object(p)) => match p.iter().find(|(_, v)| !v.is_object()) {
            Some((name, v)) => Err(format!(
                "profile {name:?} must be an object, not {}",
                short(v)
            )),
            None => Ok(()),
        },
        Some(v) => Err(format!(
            "\"profile\" must be an object of profiles, not {}",
            short(v)
        )),
    }
}

fn short(v: &Value) -> String {
    shorten(&v.to_string(), 40)
}

fn shorten(s: &str, max: usize) -> String {
    if s.len() > max {
        let mut end = max - 3;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s.to_string()
    }
}

/// Parses configuration text: the original's relaxed JSON (plain JSON,
/// plus trailing commas before `]`/`}`, `#` comments to the end of the
/// line outside strings, and literal tabs in strings). The top level must
/// be an object, and `profile`, if present, an object of objects.
fn parse(text: &str) -> std::result::Result<Map<String, Value>, String> {
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

/// The built-in defaults, the lowest layer of [`effective`]:
/// `binds ["*"]`, `monitor_timeout 30`, `connect_interval 2`,
/// `framing_format ["cbor","json"]` (aemp never offers Perl's `storable`),
/// `auth_offer ["tls_sha3_512","hmac_sha3_512"]`, `auth_accept` = the offer
/// plus `tls_anon` and `cleartext`, `nodelay true`.
pub fn defaults() -> Map<String, Value> {
    let v = json!({
        "binds": ["*"],
        "monitor_timeout": 30,
        "connect_interval": 2,
        "framing_format": ["cbor", "json"],
        "auth_offer": ["tls_sha3_512", "hmac_sha3_512"],
        "auth_accept": ["tls_sha3_512", "hmac_sha3_512", "tls_anon", "cleartext"],
        "nodelay": true,
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!("a literal object"),
    }
}

/// Perl's idea of truth for a configuration value: `null`, `false`, `0`,
/// `""` and `"0"` are false, everything else is true.
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
    if template.is_empty() {
        return Err(Error::Config {
            key: "nodeid".into(),
            problem: "illegal node ID: it is empty".into(),
        });
    }
    let mut id = template.replace("%n", hostname);
    let mut randomised = false;
    if id.contains("%u") {
        id = id.replace("%u", runiq());
        randomised = true;
    }
    if id.ends_with('/') {
        id.push_str(runiq());
        randomised = true;
    }
    Ok(ExpandedNodeId {
        node_id: NodeId::new(&id)?,
        randomised,
    })
}

/// The node ID for an effective configuration: its `nodeid`, else
/// `"<profile>/"`, expanded with [`expand_node_id`] and [`hostname`].
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxed_forms() {
        let m = parse("{\"a\": [1,2,], # c\n \"b\": \"x\ty\", # d, ]\n}").unwrap();
        assert_eq!(m["a"], json!([1, 2]));
        assert_eq!(m["b"], json!("x\ty"));
        // A '#' and ',]' inside strings are data.
        let m = parse(r##"{"a": "# not, ]", "b": "\"#"}"##).unwrap();
        assert_eq!(m["a"], json!("# not, ]"));
        assert_eq!(m["b"], json!("\"#"));
        assert!(parse("[1]").is_err());
        assert!(parse("{\"profile\": 1}").is_err());
        assert!(parse("{,}").is_err());
    }

    #[test]
    fn pretty_round_trips() {
        let v = json!({"version": 1, "s": "a\"b\n/é", "p": {"x": {"l": [1.5, [], {}]}}});
        let text = to_pretty_json(&v);
        assert_eq!(Value::Object(parse(&text).unwrap()), v);
        assert!(text.contains("\"s\" : \"a\\\"b\\n/é\""));
    }
}
