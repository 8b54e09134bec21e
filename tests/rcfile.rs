//! The configuration file and the `configure` merge (acceptance.md §1.2,
//! §4.3; checklist items 63–65 and 69). Items 62 and 66–68 need a
//! configured node (services, listeners): they come with the network layer.

use aemp::rcfile::{self, LoadStatus, RcFile};
use aemp::Error;
use serde_json::{json, Map, Value};
use std::fs;

fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn layered() -> RcFile {
    RcFile::from_json(
        r#"{
        "version": 1,
        "k_global": "global", "k_parent": "global", "k_profile": "global", "k_args": "global",
        "profile": {
            "grand": { "k_parent": "grand", "k_grand": "grand" },
            "parent": { "parent": "grand", "k_parent": "parent", "k_profile": "parent" },
            "p": { "parent": "parent", "k_profile": "p" }
        }
    }"#,
    )
    .unwrap()
}

#[test]
fn nodeid_expands_hostname_and_random_63() {
    let cfg = map(json!({"nodeid": "x/%n/%u"}));
    let id = rcfile::node_id(&cfg, "p").unwrap();
    let host = rcfile::hostname();
    assert_eq!(id.node_id.as_str(), format!("x/{host}/{}", rcfile::runiq()));
    assert!(id.randomised);
    assert!(rcfile::runiq().len() >= 12);
    assert!(rcfile::runiq().chars().all(|c| c.is_ascii_alphanumeric()));

    let trailing = rcfile::expand_node_id("seed/", "h").unwrap();
    assert_eq!(
        trailing.node_id.as_str(),
        format!("seed/{}", rcfile::runiq())
    );
    assert!(trailing.randomised);

    let plain = rcfile::expand_node_id("seed/%n", "h").unwrap();
    assert_eq!(plain.node_id.as_str(), "seed/h");
    assert!(!plain.randomised);
}

#[test]
fn no_nodeid_gives_profile_slash_random_64() {
    let rc = RcFile::new();
    let r = rcfile::resolve(&rc, Some("p"), &Map::new(), false, false).unwrap();
    assert_eq!(r.profile, "p");
    let id = r.node_id.node_id.as_str();
    assert!(id.starts_with("p/") && id.len() > 2, "{id}");
    assert!(r.node_id.randomised);
}

#[test]
fn default_profile_is_hostname_64() {
    let host = rcfile::hostname();
    assert!(!host.is_empty());
    let rc = RcFile::from_json(&format!(
        r#"{{"version":1,"profile":{{"{host}":{{"nodeid":"from-host-profile"}}}}}}"#
    ))
    .unwrap();
    let r = rcfile::resolve(&rc, None, &Map::new(), false, false).unwrap();
    assert_eq!(r.profile, host);
    assert_eq!(r.node_id.node_id.as_str(), "from-host-profile");
    // The `profile` key of the arguments picks the profile too.
    let r = rcfile::resolve(&rc, None, &map(json!({"profile": "q"})), false, false).unwrap();
    assert_eq!(r.profile, "q");
}

#[test]
fn precedence_profile_parent_global_args_defaults_65() {
    let rc = layered();
    let args = map(json!({"k_args": "args", "k_only_args": "args", "monitor_timeout": 7}));
    let cfg = rcfile::effective(&rc, Some("p"), &args, false, false).unwrap();
    assert_eq!(cfg["k_profile"], json!("p")); // profile > parent > global
    assert_eq!(cfg["k_parent"], json!("parent")); // parent > grandparent > global
    assert_eq!(cfg["k_grand"], json!("grand")); // the chain is recursive
    assert_eq!(cfg["k_global"], json!("global"));
    assert_eq!(cfg["k_args"], json!("global")); // global > args
    assert_eq!(cfg["k_only_args"], json!("args"));
    assert_eq!(cfg["monitor_timeout"], json!(7)); // args > defaults
    assert_eq!(cfg["connect_interval"], json!(2)); // defaults
    for gone in ["profile", "parent", "version"] {
        assert!(!cfg.contains_key(gone), "{gone} in {cfg:?}");
    }
}

#[test]
fn force_puts_args_on_top_65() {
    let rc = layered();
    let args = map(json!({"k_profile": "args", "k_args": "args"}));
    let cfg = rcfile::effective(&rc, Some("p"), &args, true, false).unwrap();
    assert_eq!(cfg["k_profile"], json!("args"));
    assert_eq!(cfg["k_args"], json!("args"));
    assert_eq!(cfg["k_parent"], json!("parent"));
    // The same through the arguments, with Perl truth.
    let args = map(json!({"k_profile": "args", "force": 1}));
    let cfg = rcfile::effective(&rc, Some("p"), &args, false, false).unwrap();
    assert_eq!(cfg["k_profile"], json!("args"));
    assert!(!cfg.contains_key("force"));
}

#[test]
fn norc_ignores_the_file_65() {
    let rc = layered();
    let args = map(json!({"k_args": "args"}));
    let cfg = rcfile::effective(&rc, Some("p"), &args, false, true).unwrap();
    assert_eq!(cfg["k_args"], json!("args"));
    assert!(!cfg.contains_key("k_profile"));
    assert!(!cfg.contains_key("k_global"));
    let cfg = rcfile::effective(&rc, Some("p"), &map(json!({"norc": "1"})), false, false).unwrap();
    assert!(!cfg.contains_key("k_global"));
    assert!(!cfg.contains_key("norc"));
}

#[test]
fn defaults_table_65() {
    let cfg = rcfile::effective(&RcFile::new(), Some("x"), &Map::new(), false, false).unwrap();
    assert_eq!(
        Value::Object(cfg),
        json!({
            "binds": ["*"],
            "monitor_timeout": 30,
            "connect_interval": 2,
            "framing_format": ["cbor", "json"],
            "auth_offer": ["tls_sha3_512", "hmac_sha3_512"],
            "auth_accept": ["tls_sha3_512", "hmac_sha3_512", "tls_anon", "cleartext"],
            "nodelay": true
        })
    );
}

#[test]
fn empty_nodeid_is_an_error_69() {
    let rc = RcFile::from_json(r#"{"version":1,"nodeid":""}"#).unwrap();
    let e = rcfile::resolve(&rc, Some("p"), &Map::new(), false, false).unwrap_err();
    assert!(
        matches!(&e, Error::Config { key, .. } if key == "nodeid"),
        "{e}"
    );
    assert!(e.to_string().contains("illegal node ID"), "{e}");
    // Also from arguments, and bad characters after expansion.
    let e = rcfile::resolve(
        &RcFile::new(),
        Some("p"),
        &map(json!({"nodeid": ""})),
        false,
        false,
    );
    assert!(e.is_err());
    assert!(matches!(
        rcfile::expand_node_id("a#b", "h"),
        Err(Error::InvalidNodeId { .. })
    ));
    let e = rcfile::node_id(&map(json!({"nodeid": 5})), "p").unwrap_err();
    assert!(e.to_string().contains("nodeid"), "{e}");
}

#[test]
fn parent_cycle_is_a_clear_error() {
    let rc = RcFile::from_json(
        r#"{"version":1,"profile":{"a":{"parent":"b"},"b":{"parent":"c"},"c":{"parent":"a"}}}"#,
    )
    .unwrap();
    let e = rcfile::effective(&rc, Some("a"), &Map::new(), false, false).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("a -> b -> c -> a"), "{text}");
    let rc = RcFile::from_json(r#"{"version":1,"profile":{"a":{"parent":"a"}}}"#).unwrap();
    assert!(rcfile::effective(&rc, Some("a"), &Map::new(), false, false).is_err());
    // A missing parent contributes nothing; a missing profile neither.
    let rc = RcFile::from_json(r#"{"version":1,"profile":{"a":{"parent":"gone","x":1}}}"#).unwrap();
    let cfg = rcfile::effective(&rc, Some("a"), &Map::new(), false, false).unwrap();
    assert_eq!(cfg["x"], json!(1));
    assert!(rcfile::effective(&rc, Some("nope"), &Map::new(), false, false).is_ok());
    // norc never looks at the chain.
    let rc = RcFile::from_json(r#"{"version":1,"profile":{"a":{"parent":"a"}}}"#).unwrap();
    assert!(rcfile::effective(&rc, Some("a"), &Map::new(), false, true).is_ok());
}

#[test]
fn services_parse() {
    let cfg = map(json!({"services": [["m::f", 1]]}));
    assert_eq!(
        rcfile::services(&cfg).unwrap(),
        vec![rcfile::Service::Call {
            func: "m::f".into(),
            args: vec![json!(1)]
        }]
    );
    let e = rcfile::services(&map(json!({"services": [5]}))).unwrap_err();
    assert!(e.to_string().contains("services"), "{e}");
}

#[test]
fn path_rules() {
    use std::path::PathBuf;
    let p = |a: Option<&str>, b: Option<&str>, h: Option<&str>, d: Option<&str>| {
        rcfile::path_from(
            a.map(Into::into),
            b.map(Into::into),
            h.map(Into::into),
            d.map(Into::into),
        )
    };
    assert_eq!(
        p(Some("/a"), Some("/b"), Some("/h"), None),
        Some(PathBuf::from("/a"))
    );
    assert_eq!(
        p(Some(""), Some("/b"), Some("/h"), None),
        Some(PathBuf::from("/b"))
    );
    assert_eq!(
        p(None, None, Some("/h"), None),
        Some(PathBuf::from("/h/.perl-anyevent-mp"))
    );
    assert_eq!(
        p(None, None, None, Some("C:/d")),
        Some(PathBuf::from("C:/d/perl-anyevent-mp"))
    );
    assert_eq!(p(None, None, None, None), None);
}

#[test]
fn missing_file_is_empty_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rc");
    let mut rc = RcFile::load(&path);
    assert_eq!(rc.status(), &LoadStatus::Missing);
    assert_eq!(Value::Object(rc.as_map().clone()), json!({"version": 1}));
    assert!(!rc.save().unwrap());
    assert!(!path.exists());
}

#[test]
fn save_is_atomic_with_backup_and_only_when_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rc");
    let mut rc = RcFile::load(&path);
    rc.section_mut(None).insert("secret".into(), json!("one"));
    assert!(rc.save().unwrap());
    let first = fs::read_to_string(&path).unwrap();
    assert_eq!(
        first,
        "{\n   \"secret\" : \"one\",\n   \"version\" : 1\n}\n"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    }
    let mut rc = RcFile::load(&path);
    assert_eq!(rc.status(), &LoadStatus::Loaded);
    assert!(!rc.save().unwrap(), "unchanged: no write");
    rc.section_mut(Some("p"))
        .insert("nodeid".into(), json!("n"));
    assert!(rc.save().unwrap());
    assert_eq!(fs::read_to_string(dir.path().join("rc~")).unwrap(), first);
    assert!(!dir.path().join("rc~new~").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }
    let again = RcFile::load(&path);
    assert_eq!(again.profile("p").unwrap()["nodeid"], json!("n"));
}

#[cfg(unix)]
#[test]
fn save_follows_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    fs::write(&real, "{\"version\":1}").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let mut rc = RcFile::load(&link);
    rc.section_mut(None).insert("secret".into(), json!("s"));
    rc.save().unwrap();
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(fs::read_to_string(&real)
        .unwrap()
        .contains("\"secret\" : \"s\""));
}

#[test]
fn corrupt_file_survives_until_edited_110() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rc");
    let junk = "{ this is not json";
    fs::write(&path, junk).unwrap();
    let mut rc = RcFile::load(&path);
    assert!(matches!(rc.status(), LoadStatus::Invalid(p) if p.contains("invalid JSON")));
    assert_eq!(Value::Object(rc.as_map().clone()), json!({"version": 1}));
    // Reading and merging work on the empty configuration.
    rcfile::effective(&rc, Some("p"), &Map::new(), false, false).unwrap();
    assert!(!rc.save().unwrap());
    assert_eq!(fs::read_to_string(&path).unwrap(), junk);
    // An explicit edit replaces it and keeps the original as the backup.
    rc.section_mut(None).insert("secret".into(), json!("s"));
    assert!(rc.save().unwrap());
    assert_eq!(fs::read_to_string(dir.path().join("rc~")).unwrap(), junk);
    let v: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v, json!({"secret": "s", "version": 1}));
}

#[test]
fn wrong_shapes_are_invalid_not_fatal() {
    for text in [
        "[1,2]",
        "{\"profile\": []}",
        "{\"profile\": {\"p\": 1}}",
        "\u{0}\u{1}",
        "",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rc");
        fs::write(&path, text).unwrap();
        let rc = RcFile::load(&path);
        assert!(matches!(rc.status(), LoadStatus::Invalid(_)), "{text:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("rc"), [0xff, 0xfe]).unwrap();
    assert!(
        matches!(RcFile::load(dir.path().join("rc")).status(), LoadStatus::Invalid(p) if p.contains("UTF-8"))
    );
    // A directory where the file should be: unreadable, not a crash.
    let rc = RcFile::load(dir.path());
    assert!(matches!(rc.status(), LoadStatus::Unreadable(_)));
}

#[test]
fn relaxed_json_as_the_original_accepts() {
    let rc = RcFile::from_json(
        "# aemp configuration\n{\n  \"version\": 1,\n  \"seeds\": [\"a:1\", \"b:2\",], # two seeds\n  \"secret\": \"tab\there\",\n}\n",
    )
    .unwrap();
    assert_eq!(rc.as_map()["seeds"], json!(["a:1", "b:2"]));
    assert_eq!(rc.as_map()["secret"], json!("tab\there"));
    let e = RcFile::from_json("{\"a\": 1").unwrap_err();
    assert!(matches!(e, Error::RcFile { .. }));
}

#[test]
fn remove_profile_keeps_layout() {
    let mut rc = RcFile::from_json(r#"{"version":1,"profile":{"p":{"nodeid":"x"}}}"#).unwrap();
    assert_eq!(rc.profile_names(), vec!["p"]);
    assert!(rc.remove_profile("p"));
    assert!(!rc.remove_profile("p"));
    assert_eq!(
        rc.to_json_string(),
        "{\n   \"profile\" : {},\n   \"version\" : 1\n}\n"
    );
}
