//! The `aemp` tool's configuration commands, driving the real binary in a
//! temporary directory (acceptance.md §4; checklist items 102–110).
//! The network commands (items 111–113) are in `aemp_net.rs`.

use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Rc {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl Rc {
    fn new() -> Rc {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aemp-rc");
        Rc { dir, path }
    }

    /// A clean command: AEMP_RC into the temp dir, HOME there too, no
    /// PERL_ANYEVENT_MP_RC, no logging settings from outside.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_aemp"));
        c.args(args)
            .env("AEMP_RC", &self.path)
            .env("HOME", self.dir.path())
            .env_remove("PERL_ANYEVENT_MP_RC")
            .env_remove("RUST_LOG")
            .env_remove("AEMP_VERBOSE")
            .current_dir(self.dir.path());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "aemp {args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects `code`; returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "aemp {args:?}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    fn text(&self) -> String {
        fs::read_to_string(&self.path).unwrap()
    }

    /// The file, parsed as strict JSON.
    fn json(&self) -> Value {
        let text = self.text();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not valid JSON ({e}):\n{text}"))
    }

    fn profile(&self, name: &str) -> Value {
        self.json()["profile"][name].clone()
    }
}

fn parse(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn gensecret_writes_and_changes_secret_102() {
    let rc = Rc::new();
    let perl_path = rc.dir.path().join("perl-rc");
    let run = || {
        let out = rc
            .cmd(&["gensecret"])
            .env_remove("AEMP_RC")
            .env("PERL_ANYEVENT_MP_RC", &perl_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_str(&fs::read_to_string(&perl_path).unwrap()).unwrap();
        v["secret"].as_str().unwrap().to_string()
    };
    let first = run();
    assert_eq!(first.len(), 86);
    assert!(first.chars().all(|c| c.is_ascii_alphanumeric()), "{first}");
    let second = run();
    assert_ne!(first, second);
    assert!(!rc.path.exists(), "AEMP_RC was unset");
}

#[test]
fn rc_path_precedence_102() {
    let rc = Rc::new();
    let perl_path = rc.dir.path().join("perl-rc");
    // AEMP_RC beats PERL_ANYEVENT_MP_RC.
    let out = rc
        .cmd(&["setsecret", "a"])
        .env("PERL_ANYEVENT_MP_RC", &perl_path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(rc.json()["secret"], json!("a"));
    assert!(!perl_path.exists());
    // Neither set: ~/.perl-anyevent-mp.
    let out = rc
        .cmd(&["setsecret", "b"])
        .env_remove("AEMP_RC")
        .output()
        .unwrap();
    assert!(out.status.success());
    let home_rc = rc.dir.path().join(".perl-anyevent-mp");
    let v: Value = serde_json::from_str(&fs::read_to_string(home_rc).unwrap()).unwrap();
    assert_eq!(v["secret"], json!("b"));
}

#[test]
fn profile_chain_splits_lists_103() {
    let rc = Rc::new();
    rc.ok(&[
        "profile", "p", "binds", "*:4040", "nodeid", "anon/", "seeds", "a:1,b:2",
    ]);
    let shown = parse(&rc.ok(&["showprofile", "p"]));
    assert_eq!(
        shown,
        json!({"binds": ["*:4040"], "nodeid": "anon/", "seeds": ["a:1", "b:2"]})
    );
    assert_eq!(rc.profile("p"), shown);
    assert_eq!(
        rc.json().as_object().unwrap().len(),
        2,
        "only version and profile"
    );
    rc.fails(&["showprofile", "nope"], 1);
}

#[test]
fn original_chaining_example_103() {
    let rc = Rc::new();
    rc.ok(&[
        "gensecret",
        "profile",
        "x",
        "binds",
        "4040,4041",
        "nodeid",
        "anon/",
    ]);
    let v = rc.json();
    assert!(
        v["secret"].is_string(),
        "gensecret went to the global section"
    );
    assert_eq!(
        v["profile"]["x"],
        json!({"binds": ["4040", "4041"], "nodeid": "anon/"})
    );
}

#[test]
fn json_arguments_104() {
    let rc = Rc::new();
    rc.ok(&["setservices", r#"[["m::f",1]]"#]);
    assert_eq!(rc.json()["services"], json!([["m::f", 1]]));
    rc.ok(&[r#"["profile","p","nodeid","x"]"#]);
    assert_eq!(rc.profile("p"), json!({"nodeid": "x"}));
    // The array form can carry JSON values directly.
    rc.ok(&[r#"["profile","q","setmonitor_timeout",5,"addservice",["g",2]]"#]);
    assert_eq!(
        rc.profile("q"),
        json!({"monitor_timeout": 5, "services": [["g", 2]]})
    );
    // A quoted JSON string is a string; an object stays an object.
    rc.ok(&["setsecret", r#""quoted""#]);
    assert_eq!(rc.json()["secret"], json!("quoted"));
    // Bad JSON: a usage error naming the argument; the file is untouched.
    let before = rc.text();
    let err = rc.fails(&["setseeds", "[\"a:1\""], 2);
    assert!(err.contains("[\"a:1\""), "{err}");
    let err = rc.fails(&["[\"profile\""], 2);
    assert!(err.contains("JSON command array"), "{err}");
    assert_eq!(rc.text(), before);
}

#[test]
fn setparent_showconfig_inherits_105() {
    let rc = Rc::new();
    rc.ok(&[
        "setsecret",
        "g",
        "seeds",
        "s:1",
        "profile",
        "base",
        "binds",
        "*:4040",
        "setmonitor_timeout",
        "9",
        "profile",
        "p",
        "setparent",
        "base",
        "nodeid",
        "p/%n",
    ]);
    assert_eq!(rc.profile("p")["parent"], json!("base"));
    let cfg = parse(&rc.ok(&["showconfig", "p"]));
    assert_eq!(cfg["secret"], json!("g")); // from global
    assert_eq!(cfg["seeds"], json!(["s:1"])); // from global
    assert_eq!(cfg["binds"], json!(["*:4040"])); // from the parent
    assert_eq!(cfg["monitor_timeout"], json!(9)); // from the parent
    assert_eq!(cfg["nodeid"], json!("p/%n")); // own, unexpanded
    assert_eq!(cfg["connect_interval"], json!(2)); // a default
    for gone in ["profile", "parent", "version"] {
        assert!(cfg.get(gone).is_none(), "{gone}: {cfg}");
    }
    // Extra KEY VALUE pairs are configure arguments: below the file.
    let cfg = parse(&rc.ok(&["showconfig", "p", "secret", "arg", "extra", "[1]"]));
    assert_eq!(cfg["secret"], json!("g"));
    assert_eq!(cfg["extra"], json!([1]));
    rc.fails(&["showconfig", "p", "odd"], 2);
    // Without a name: the host name's profile (absent here: globals only).
    let cfg = parse(&rc.ok(&["showconfig"]));
    assert_eq!(cfg["secret"], json!("g"));
    assert_eq!(cfg["binds"], json!(["*"]));
    // Loops are refused; parents belong to profiles.
    let err = rc.fails(&["profile", "base", "setparent", "p"], 1);
    assert!(err.contains("base -> p -> base"), "{err}");
    rc.fails(&["setparent", "base"], 2);
}

#[test]
fn addseed_dedupes_delseed_removes_106() {
    let rc = Rc::new();
    rc.ok(&["addseed", "a:1", "addseed", "b:2", "addseed", "a:1"]);
    assert_eq!(rc.json()["seeds"], json!(["b:2", "a:1"]));
    rc.ok(&["delseed", "a:1"]);
    assert_eq!(rc.json()["seeds"], json!(["b:2"]));
    rc.ok(&["addbind", "*:1", "addbind", "*:1", "delbind", "*:2"]);
    assert_eq!(rc.json()["binds"], json!(["*:1"]));

    rc.ok(&["addservice", "f", "addservice", "g", "addservice", "f"]);
    assert_eq!(rc.json()["services"], json!(["f", "g", "f"]));
    rc.ok(&["delservice", "f"]);
    assert_eq!(rc.json()["services"], json!(["g", "f"]));
    rc.ok(&["addservice", r#"["h",1]"#, "delservice", r#"["h",1]"#]);
    assert_eq!(rc.json()["services"], json!(["g", "f"]));
}

#[test]
fn del_commands_inherit_again_107() {
    let rc = Rc::new();
    rc.ok(&[
        "gensecret",
        "gencert",
        "profile",
        "p",
        "setsecret",
        "own",
        "binds",
        "*:1",
        "seeds",
        "a:1",
        "nodeid",
        "n",
        "services",
        "f",
        "setparent",
        "q",
    ]);
    // Give p a certificate of its own, via a PEM file made by gencert.
    let pem = rc.json()["cert"].as_str().unwrap().to_string();
    let pem_file = rc.dir.path().join("cert.pem");
    fs::write(&pem_file, &pem).unwrap();
    rc.ok(&["profile", "p", "setcert", pem_file.to_str().unwrap()]);
    assert_eq!(
        rc.profile("p")
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["binds", "cert", "nodeid", "parent", "secret", "seeds", "services"]
    );
    rc.ok(&[
        "profile",
        "p",
        "delsecret",
        "delcert",
        "delbinds",
        "delseeds",
        "delnodeid",
        "delservices",
        "delparent",
    ]);
    assert_eq!(rc.profile("p"), json!({}));
    let cfg = parse(&rc.ok(&["showconfig", "p"]));
    assert_eq!(
        cfg["secret"],
        rc.json()["secret"],
        "inherited from global again"
    );
    assert_eq!(cfg["binds"], json!(["*"]));
    rc.ok(&["delprofile", "p"]);
    assert!(rc.json()["profile"].get("p").is_none());
    // Global deletes too.
    rc.ok(&["delsecret", "delcert"]);
    assert_eq!(rc.json(), json!({"version": 1, "profile": {}}));
}

#[test]
fn bare_aliases_108() {
    let long = Rc::new();
    let short = Rc::new();
    long.ok(&[
        "setsecret",
        "s",
        "setnodeid",
        "n/",
        "setseeds",
        "a:1,b:2",
        "setbinds",
        "*:3",
        "setservices",
        "f,g",
        "setmonitor_timeout",
        "7",
        "setconnect_interval",
        "0.5",
        "setbusy_wait",
        "0.0002",
        "settick",
        "0",
        "setunsent_limit",
        "1000000",
        "setunsent_high_water",
        "65536",
        "setframing_format",
        "json",
        "setauth_offer",
        "hmac_sha3_512",
        "setauth_accept",
        "hmac_sha3_512,cleartext",
        "setnodelay",
        "off",
        "profile",
        "p",
        "setparent",
        "x",
    ]);
    short.ok(&[
        "secret",
        "s",
        "nodeid",
        "n/",
        "seeds",
        "a:1,b:2",
        "binds",
        "*:3",
        "services",
        "f,g",
        "monitor_timeout",
        "7",
        "connect_interval",
        "0.5",
        "busy_wait",
        "0.0002",
        "tick",
        "0",
        "unsent_limit",
        "1000000",
        "unsent_high_water",
        "65536",
        "framing_format",
        "json",
        "auth_offer",
        "hmac_sha3_512",
        "auth_accept",
        "hmac_sha3_512,cleartext",
        "nodelay",
        "off",
        "profile",
        "p",
        "parent",
        "x",
    ]);
    assert_eq!(long.text(), short.text());
    let v = long.json();
    assert_eq!(v["monitor_timeout"], json!(7));
    assert_eq!(v["connect_interval"], json!(0.5));
    assert_eq!(v["busy_wait"], json!(0.0002));
    assert_eq!(v["tick"], json!(0));
    assert_eq!(v["unsent_limit"], json!(1_000_000));
    assert_eq!(v["unsent_high_water"], json!(65536));
    assert_eq!(v["nodelay"], json!(false));
    assert_eq!(v["framing_format"], json!(["json"]));
    assert_eq!(v["auth_accept"], json!(["hmac_sha3_512", "cleartext"]));
    // Bad values are usage errors naming the command.
    let err = long.fails(&["monitor_timeout", "soon"], 2);
    assert!(
        err.contains("setmonitor_timeout") && err.contains("soon"),
        "{err}"
    );
    long.fails(&["nodelay", "maybe"], 2);
    long.fails(&["monitor_timeout", "0"], 2);
    long.fails(&["unsent_limit", "1.5"], 2);
    long.fails(&["nodeid", "a#b"], 2);
    long.fails(&["setsecret", ""], 2);
}

#[test]
fn unknown_command_and_usage_109() {
    let rc = Rc::new();
    let err = rc.fails(&["frobnicate"], 2);
    assert!(err.contains("frobnicate: no such aemp command"), "{err}");
    let err = rc.fails(&[], 2);
    assert!(err.contains("Usage: aemp"), "{err}");
    // Later in a chain too, and nothing is saved then.
    rc.fails(&["setsecret", "x", "frobnicate"], 2);
    assert!(!rc.path.exists());
    // A missing argument is a usage error.
    let err = rc.fails(&["setsecret"], 2);
    assert!(err.contains("<SECRET>"), "{err}");
    // eval and shell are never offered.
    for cmd in ["eval", "shell"] {
        rc.fails(&[cmd], 2);
    }
}

/// Usage errors found by clap (a missing or unexpected argument) and by
/// the tool (a bad value, an unknown option, an unknown command) look
/// alike: `aemp: CMD: problem`, maybe a usage line, then a hint line.
#[test]
fn one_style_for_usage_errors() {
    let rc = Rc::new();
    for (args, cmd) in [
        (&["setsecret"][..], "setsecret"),
        (&["db", "--timeout"][..], "db"),
        (&["nodelay", "maybe"][..], "setnodelay"),
        (&["snd", "P#x", "--bogus"][..], "snd"),
        (&["setsecret", "[1"][..], "setsecret"),
        (&["nodes", "extra"][..], "nodes"),
    ] {
        let err = rc.fails(args, 2);
        let lines: Vec<&str> = err.lines().collect();
        assert!(
            lines[0].starts_with(&format!("aemp: {cmd}: ")),
            "{args:?}: {err}"
        );
        assert_eq!(
            lines.last(),
            Some(&format!("Try 'aemp help {cmd}'.").as_str()),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("error:") && !err.contains("For more information"),
            "{args:?}: {err}"
        );
    }
    for args in [&["frobnicate"][..], &[][..], &["--help", "x"][..]] {
        let err = rc.fails(args, 2);
        assert!(err.starts_with("aemp: "), "{args:?}: {err}");
        assert!(
            err.ends_with("Try 'aemp --help' for the commands.\n"),
            "{args:?}: {err}"
        );
    }
}

/// `--rc FILE` (or `--rc=FILE`) before the first command uses another
/// configuration file than `$AEMP_RC`, for reading and for writing;
/// without FILE it is a usage error.
#[test]
fn rc_option_uses_another_file() {
    let rc = Rc::new();
    let other = rc.dir.path().join("other-rc");
    let other = other.to_str().unwrap();
    rc.ok(&["--rc", other, "profile", "p", "secret", "x"]);
    assert!(!rc.path.exists(), "AEMP_RC's file was written");
    let v: Value = serde_json::from_str(&fs::read_to_string(other).unwrap()).unwrap();
    assert_eq!(v["profile"]["p"]["secret"], json!("x"));
    let shown = parse(&rc.ok(&[&format!("--rc={other}"), "showprofile", "p"]));
    assert_eq!(shown, json!({"secret": "x"}));
    // Without --rc, AEMP_RC's file (which has no profile p).
    rc.fails(&["showprofile", "p"], 1);
    // Help works after it; a missing FILE is a usage error.
    assert!(rc.ok(&["--rc", other, "--help"]).contains("--rc <FILE>"));
    for args in [&["--rc"][..], &["--rc="][..]] {
        let err = rc.fails(args, 2);
        assert!(err.starts_with("aemp: --rc needs a FILE"), "{err}");
    }
}

/// `aemp completions SHELL` prints a completion script that knows the
/// commands; an unknown shell is a usage error listing the known ones.
#[test]
fn completions_for_the_shells() {
    let rc = Rc::new();
    let bash = rc.ok(&["completions", "bash"]);
    assert!(
        bash.contains("_aemp()") && bash.contains("complete "),
        "{bash}"
    );
    for word in [
        "gensecret",
        "showconfig",
        "snd",
        "--json",
        "--rc",
        "completions",
    ] {
        assert!(bash.contains(word), "{word} missing in the bash script");
    }
    for shell in ["zsh", "fish"] {
        let script = rc.ok(&["completions", shell]);
        assert!(script.contains("gensecret"), "{shell}: {script}");
    }
    let err = rc.fails(&["completions", "tcsh"], 2);
    assert!(
        err.starts_with("aemp: completions: \"tcsh\"") && err.contains("bash"),
        "{err}"
    );
    assert!(!rc.path.exists());
}

#[test]
fn help_everywhere_109() {
    let rc = Rc::new();
    let top = rc.ok(&["--help"]);
    for word in [
        "gensecret",
        "showconfig",
        "eval and shell are not offered",
        "Network commands: run",
    ] {
        assert!(top.contains(word), "{word} missing in:\n{top}");
    }
    // Every command listed in the help answers --help with exit 0.
    let names: Vec<&str> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .collect();
    assert!(names.len() > 40, "{names:?}");
    for name in &names {
        let help = rc.ok(&[name, "--help"]);
        assert!(help.contains(&format!("aemp {name}")), "{name}: {help}");
    }
    assert!(rc.ok(&["help", "setseeds"]).contains("comma-separated"));
    assert!(rc.ok(&["seeds", "-h"]).contains("aemp setseeds"));
    assert!(rc.ok(&["--version"]).starts_with("aemp "));
    assert!(!rc.path.exists(), "help writes nothing");
}

#[test]
fn file_stays_valid_json_after_every_edit_110() {
    let rc = Rc::new();
    let steps: &[&[&str]] = &[
        &["gensecret"],
        &["profile", "a", "seeds", "x:1,y:2"],
        &["profile", "a", "addseed", "z:3", "delseed", "x:1"],
        &[
            "profile",
            "b",
            "setparent",
            "a",
            "binds",
            r#"["*:1","*:2"]"#,
        ],
        &["setservices", r#"[["m::f",1,{"k":"v\"q"}],"Mod::"]"#],
        &["setsecret", "with \"quotes\", commas, # and unicode é"],
        &["gencert"],
        &["profile", "b", "delparent", "delbinds"],
        &["delprofile", "a"],
        &["delservices", "delcert"],
    ];
    for step in steps {
        rc.ok(step);
        let v = rc.json();
        assert_eq!(v["version"], json!(1), "after {step:?}");
    }
    assert_eq!(
        rc.json()["secret"],
        json!("with \"quotes\", commas, # and unicode é")
    );
}

#[test]
fn corrupt_file_survives_110() {
    let rc = Rc::new();
    let junk = "{\"secret\": \"half written";
    fs::write(&rc.path, junk).unwrap();
    // Reading commands work on an empty configuration and keep the file
    // (showconfig without a name: a named profile must exist).
    let out = rc.run(&["showconfig"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("aemp-rc") && err.contains("invalid JSON"),
        "{err}"
    );
    assert_eq!(
        parse(&String::from_utf8_lossy(&out.stdout))["binds"],
        json!(["*"])
    );
    assert_eq!(rc.text(), junk);
    // AEMP_VERBOSE=0 silences the warning.
    let out = rc
        .cmd(&["showconfig"])
        .env("AEMP_VERBOSE", "0")
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty());
    // An edit replaces it; the junk is kept as the backup.
    rc.ok(&["setsecret", "fresh"]);
    assert_eq!(rc.json(), json!({"secret": "fresh", "version": 1}));
    assert_eq!(fs::read_to_string(backup(&rc.path)).unwrap(), junk);
}

fn backup(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push("~");
    s.into()
}

#[test]
fn saved_only_when_changed_and_with_backup() {
    let rc = Rc::new();
    rc.ok(&["setsecret", "one"]);
    let first = rc.text();
    rc.ok(&["setsecret", "one"]);
    assert!(!backup(&rc.path).exists(), "no change: no write, no backup");
    rc.ok(&["setsecret", "two"]);
    assert_eq!(fs::read_to_string(backup(&rc.path)).unwrap(), first);
    // A failing command saves none of the chain's edits.
    rc.fails(
        &["setsecret", "three", "setcert", "/nonexistent/cert.pem"],
        1,
    );
    assert_eq!(rc.json()["secret"], json!("two"));
}

#[test]
fn file_layout_matches_the_original() {
    let rc = Rc::new();
    rc.ok(&[
        "setsecret",
        "s3cret",
        "seeds",
        "seed.example:4040",
        "profile",
        "seed",
        "binds",
        "*:4040",
        "nodeid",
        "seed",
        "profile",
        "worker",
        "setparent",
        "seed",
        "seeds",
        "seed.example:4040,other.example:4040",
        "binds",
        "",
    ]);
    let expected = include_str!("data/rc_layout.json");
    assert_eq!(rc.text(), expected);
    // showprofile prints in the same layout.
    assert_eq!(
        rc.ok(&["showprofile", "seed"]),
        "{\n   \"binds\" : [\n      \"*:4040\"\n   ],\n   \"nodeid\" : \"seed\"\n}\n"
    );
}

#[test]
fn gencert_and_setcert() {
    let rc = Rc::new();
    rc.ok(&["gencert"]);
    let pem = rc.json()["cert"].as_str().unwrap().to_string();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
    assert!(pem.contains("-----BEGIN CERTIFICATE-----\n"), "{pem}");
    rc.ok(&["gencert"]);
    assert_ne!(
        rc.json()["cert"].as_str().unwrap(),
        pem,
        "a new key each time"
    );

    let file = rc.dir.path().join("both.pem");
    fs::write(&file, &pem).unwrap();
    rc.ok(&["profile", "p", "cert", file.to_str().unwrap()]);
    assert_eq!(rc.profile("p")["cert"], json!(pem));

    // Missing file, no key, no certificate, not PEM: exit 1 naming the file.
    let missing = rc.dir.path().join("missing.pem");
    let err = rc.fails(&["setcert", missing.to_str().unwrap()], 1);
    assert!(err.contains("missing.pem"), "{err}");
    let cert_only = pem[pem.find("-----BEGIN CERTIFICATE").unwrap()..].to_string();
    let key_only = pem[..pem.find("-----BEGIN CERTIFICATE").unwrap()].to_string();
    for (name, content, why) in [
        ("cert-only.pem", cert_only.as_str(), "no private key"),
        ("key-only.pem", key_only.as_str(), "no certificate"),
        (
            "junk.pem",
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
            "PEM",
        ),
    ] {
        let f = rc.dir.path().join(name);
        fs::write(&f, content).unwrap();
        let err = rc.fails(&["setcert", f.to_str().unwrap()], 1);
        assert!(err.contains(name) && err.contains(why), "{name}: {err}");
    }
    assert_eq!(
        rc.profile("p")["cert"],
        json!(pem),
        "failures changed nothing"
    );
}
