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
//!
//! Layout: this file holds the file itself ([`RcFile`]: finding, loading,
//! saving); `relaxed.rs` the original's relaxed JSON and pretty layout;
//! `profile.rs` the merge of defaults, arguments, global section and
//! profiles, node-ID expansion and the `services` list.

mod profile;
mod relaxed;

pub use profile::{
    defaults, effective, expand_node_id, hostname, node_id, resolve, runiq, services, truthy,
    ExpandedNodeId, Resolved, Service,
};
pub(crate) use profile::{
    expand_node_id_with, AUTH_OFFER, CONNECT_INTERVAL, MONITOR_TIMEOUT, NODELAY,
};
pub use relaxed::{parse_value, to_pretty_json};

use crate::error::{Error, Result};
use relaxed::parse;
use serde_json::{Map, Value};
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
///
/// ```
/// // In a program of one's own: where RcFile::load_default() reads.
/// std::env::set_var("AEMP_RC", "/etc/aemp/rc.json");
/// assert_eq!(aemp::rcfile::default_path(), Some("/etc/aemp/rc.json".into()));
/// ```
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
    m.insert("version".into(), Value::from(1));
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
    ///
    /// ```
    /// use aemp::rcfile::RcFile;
    /// let rc = RcFile::from_json(r#"{"version":1, "secret":"s", "profile":{"seed":{"binds":["*:4040"]}}}"#).unwrap();
    /// assert_eq!(rc.profile_names(), ["seed"]);
    /// assert_eq!(rc.profile("seed").unwrap()["binds"][0], "*:4040");
    /// assert!(RcFile::from_json("[1, 2]").is_err()); // the top level must be an object
    /// ```
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
    ///
    /// ```
    /// use aemp::rcfile::{LoadStatus, RcFile};
    /// let dir = tempfile::tempdir().unwrap();
    /// std::env::set_var("AEMP_RC", dir.path().join("rc")); // else $PERL_ANYEVENT_MP_RC, ~/.perl-anyevent-mp
    /// let rc = RcFile::load_default();
    /// assert_eq!(rc.status(), &LoadStatus::Missing); // no file yet: an empty configuration
    /// ```
    pub fn load_default() -> RcFile {
        match default_path() {
            Some(p) => RcFile::load(p),
            None => RcFile::new(),
        }
    }

    /// Loads `path`. Never fails: a missing file gives an empty
    /// configuration; an unreadable or invalid one is logged as a warning
    /// and treated as empty (see [`RcFile::status`]).
    ///
    /// ```
    /// use aemp::rcfile::{LoadStatus, RcFile};
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("rc");
    /// std::fs::write(&path, r#"{"version":1,"secret":"s",}"#).unwrap(); // relaxed JSON
    /// let rc = RcFile::load(&path);
    /// assert_eq!(rc.status(), &LoadStatus::Loaded);
    /// assert_eq!(rc.as_map()["secret"], "s");
    ///
    /// std::fs::write(&path, "not json").unwrap();
    /// assert!(matches!(RcFile::load(&path).status(), LoadStatus::Invalid(_))); // never an error
    /// ```
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
    ///
    /// ```
    /// use aemp::rcfile::RcFile;
    /// use serde_json::json;
    /// let mut rc = RcFile::new();
    /// rc.section_mut(None).insert("secret".into(), json!("s3cret")); // global
    /// rc.section_mut(Some("seed")).insert("binds".into(), json!(["*:4040"])); // creates the profile
    /// assert_eq!(rc.profile("seed").unwrap()["binds"], json!(["*:4040"]));
    /// assert!(rc.is_changed());
    /// ```
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
    ///
    /// ```
    /// use aemp::rcfile::RcFile;
    /// let mut rc = RcFile::from_json(r#"{"version":1,"profile":{"old":{},"new":{}}}"#).unwrap();
    /// assert!(rc.remove_profile("old"));
    /// assert!(!rc.remove_profile("old")); // gone already
    /// assert_eq!(rc.profile_names(), ["new"]);
    /// ```
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
    ///
    /// ```
    /// let mut rc = aemp::rcfile::RcFile::new();
    /// rc.section_mut(None).insert("secret".into(), "s".into());
    /// assert_eq!(rc.to_json_string(), "{\n   \"secret\" : \"s\",\n   \"version\" : 1\n}\n");
    /// ```
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
    ///
    /// ```
    /// use aemp::rcfile::RcFile;
    /// use serde_json::json;
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("rc");
    /// let mut rc = RcFile::load(&path); // missing: empty
    /// rc.section_mut(Some("worker")).insert("seeds".into(), json!(["seed.example:4040"]));
    /// assert!(rc.save().unwrap()); // written
    /// assert!(!rc.save().unwrap()); // nothing changed since
    /// let again = RcFile::load(&path);
    /// assert_eq!(again.profile("worker").unwrap()["seeds"], json!(["seed.example:4040"]));
    /// assert!(std::fs::read_to_string(&path).unwrap().contains(r#""seeds" : ["#)); // the original's layout
    /// ```
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
