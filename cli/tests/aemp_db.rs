//! The `aemp` tool's database commands (`nodes`, `trace`, `db
//! family|keys|values|mon`), driving the real binary against an `aemp run`
//! seed (a global node: its own address is among its seeds) and library
//! nodes in this process that join through that seed, all on 127.0.0.1.
//! Every child is killed and reaped; every wait is bounded.

use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[path = "support/run.rs"]
mod run;
#[path = "support/seed_env.rs"]
mod seed_env;
use run::{Out, Proc};
use seed_env::Env;

/// The command's stdout as JSON.
fn json(out: &Out) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

#[test]
fn nodes_lists_the_seed_and_a_library_node() {
    let env = Env::new();
    let _seed = env.seed();
    let n = env.node("lib");
    let me = n.id().to_string();
    let out = env.run_until(&["nodes"], |o| o.code == Some(0) && o.stdout.contains(&me));
    let lines: Vec<&str> = out.stdout.lines().collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted, "{out:?}");
    assert!(lines.contains(&"seed global"), "{out:?}");
    assert!(lines.contains(&me.as_str()), "{out:?}");
    assert!(
        !out.stdout.contains("aemp/"),
        "the command's own node is left out: {out:?}"
    );
    assert!(out.stderr.is_empty(), "{out:?}");
    // --connect replaces the seeds of the file.
    env.run(&["seeds", "127.0.0.1:1"]).ok();
    let out = env.run(&["nodes", "--connect", &env.seed]).ok();
    assert!(out.stdout.lines().any(|l| l == "seed global"), "{out:?}");
}

#[test]
fn trace_shows_nodes_addresses_and_globals() {
    let env = Env::new();
    let _seed = env.seed();
    let n = env.node("lib");
    let me = n.id().to_string();
    let out = env.run_until(&["trace"], |o| o.code == Some(0) && o.stdout.contains(&me));
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "master seed", "{out:?}");
    assert!(
        lines.contains(&format!("seed global {}", env.seed).as_str()),
        "{out:?}"
    );
    let mine = format!("{me} slave {}", n.listen_addrs()[0]);
    assert!(lines.contains(&mine.as_str()), "{out:?}");
}

#[test]
fn stats_shows_every_nodes_peers_and_ports() {
    let env = Env::new();
    let _seed = env.seed();
    let n = env.node("lib");
    let me = n.id().to_string();
    let (_t, _mailbox) = {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = n.port_thread(move |_mb| {
            let _ = rx.recv();
        });
        (tx, t)
    };
    let out = env.run_until(&["stats"], |o| {
        o.code == Some(0) && o.stdout.contains(&format!("{me}: "))
    });
    let text = &out.stdout;
    // The library node's block: its ports, and its link to the seed.
    let block: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{me}: ")))
        .take_while(|l| l.starts_with(&format!("{me}: ")) || l.starts_with("    "))
        .collect();
    assert!(block[0].contains(" ports, 1 thread ports"), "{out:?}");
    assert!(
        block[1]
            .split_whitespace()
            .eq(["PEER", "STATE", "QUEUED", "UNSENT", "SENT", "RECEIVED", "HEARD", "AGE"]),
        "{out:?}"
    );
    let seed_row = block
        .iter()
        .find(|l| l.trim_start().starts_with("seed "))
        .unwrap_or_else(|| panic!("no seed row: {out:?}"));
    let cells: Vec<&str> = seed_row.split_whitespace().collect();
    assert_eq!(cells[1], "up", "{out:?}");
    // The seed answers too, and lists the library node as a peer.
    assert!(text.lines().any(|l| l.starts_with("seed: ")), "{out:?}");
    // Asking one node by name; a node that does not exist fails (exit 1).
    let out = env.run(&["stats", &me]).ok();
    assert!(out.stdout.starts_with(&format!("{me}: ")), "{out:?}");
    let out = env.run(&["stats", "--timeout", "1", "ghost/x"]).fails(1);
    assert!(out.stdout.contains("ghost/x: no answer"), "{out:?}");
}

#[test]
fn db_family_keys_values_print_what_was_set() {
    let env = Env::new();
    let _seed = env.seed();
    let n = env.node("lib");
    let _a = n.db_set("cli_fam", "a", json!({"x": [1, 2]})).unwrap();
    let _b = n.db_set("cli_fam", "b", "text").unwrap();
    let port = n.port_fn(|_| {});
    let _r = n.db_reg("cli_fam", &port).unwrap();
    let p = port.to_string();

    let out = env.run_until(&["db", "family", "cli_fam"], |o| {
        o.code == Some(0) && o.stdout.contains(&p)
    });
    assert_eq!(
        json(&out),
        json!({"a": {"x": [1, 2]}, "b": "text", p.clone(): null}),
        "{out:?}"
    );
    assert!(out.stdout.contains("\n  \"a\": {"), "pretty: {out:?}");

    let out = env.run(&["db", "keys", "cli_fam"]).ok();
    let mut keys: Vec<String> = serde_json::from_value(json(&out)).unwrap();
    keys.sort();
    let mut want = vec!["a".to_string(), "b".to_string(), p.clone()];
    want.sort();
    assert_eq!(keys, want, "{out:?}");

    let out = env.run(&["db", "--timeout", "5", "values", "cli_fam"]).ok();
    let values = json(&out);
    let values = values.as_array().unwrap();
    assert_eq!(values.len(), 3, "{out:?}");
    for v in [json!({"x": [1, 2]}), json!("text"), Value::Null] {
        assert!(values.contains(&v), "{v} missing: {out:?}");
    }

    let out = env.run(&["db", "keys", "no_such_family"]).ok();
    assert_eq!(json(&out), json!([]));
}

#[test]
fn db_mon_prints_the_state_then_changes_until_sigterm() {
    let env = Env::new();
    let _seed = env.seed();
    let n = env.node("lib");
    let a = n.db_set("cli_mon", "a", 1).unwrap();
    // The entry is at the master once a query sees it.
    env.run_until(&["db", "keys", "cli_mon"], |o| o.stdout.contains("\"a\""));

    let mut mon = Proc::start(env.cmd(&["db", "mon", "cli_mon"]));
    assert_eq!(mon.line().as_deref(), Some("+ a 1"));
    let b = n.db_set("cli_mon", "b c", json!({"k": "v"})).unwrap();
    assert_eq!(mon.line().as_deref(), Some(r#"+ "b c" {"k":"v"}"#));
    let _a2 = n.db_set("cli_mon", "a", 2).unwrap();
    assert_eq!(mon.line().as_deref(), Some("~ a 2"));
    drop(b);
    assert_eq!(mon.line().as_deref(), Some(r#"- "b c""#));
    a.forget();
    n.db_del("cli_mon", &["a"]).unwrap();
    assert_eq!(mon.line().as_deref(), Some("- a"));

    assert_eq!(mon.wait(Some(libc::SIGTERM)), Some(0));
    let err = mon.stderr();
    assert!(!err.contains("panicked"), "{err}");
    assert!(mon.pending_line().is_none(), "no more output");
}

#[test]
fn db_mon_fails_when_the_network_is_lost() {
    let env = Env::new();
    let mut seed = env.seed();
    let mut mon = Proc::start(env.cmd(&["db", "mon", "--timeout", "1", "'l"]));
    assert_eq!(
        mon.line(),
        Some(format!("+ seed [\"{}\"]", env.seed)),
        "the seed's listeners"
    );
    assert_eq!(seed.wait(Some(libc::SIGTERM)), Some(0));
    let start = Instant::now();
    assert_eq!(mon.wait(None), Some(1));
    assert!(start.elapsed() < Duration::from_secs(10));
    let err = mon.stderr();
    assert!(
        err.contains("lost the connection to the network (master seed is gone)")
            && err.contains(&format!("tried {}", env.seed)),
        "{err}"
    );
}

#[test]
fn fails_fast_without_a_seed_and_names_bad_input() {
    let env = Env::new();
    // Nothing listens at the seed address.
    for args in [
        &["nodes", "--timeout", "1"][..],
        &["trace", "--timeout", "1"],
        &["db", "keys", "fam", "--timeout", "1"],
        &["db", "--timeout", "1", "mon", "fam"],
    ] {
        let out = env.run(args).fails(1);
        assert!(
            out.stderr
                .contains(&format!("no seed answered within 1 s: tried {}", env.seed)),
            "{args:?}: {out:?}"
        );
        assert!(out.took < Duration::from_secs(8), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    let out = env
        .run(&[
            "nodes",
            "--timeout",
            "1",
            "--connect",
            "127.0.0.1:1,127.0.0.1:2",
        ])
        .fails(1);
    assert!(
        out.stderr.contains("tried 127.0.0.1:1, 127.0.0.1:2"),
        "{out:?}"
    );

    env.run(&["seeds", "[]"]).ok();
    let out = env.run(&["nodes"]).fails(1);
    assert!(out.stderr.contains("no seeds"), "{out:?}");

    let out = env.run(&["db", "bogus", "fam"]).fails(2);
    assert!(out.stderr.contains("\"bogus\""), "{out:?}");
    let out = env.run(&["db", "keys", "1bad"]).fails(2);
    assert!(out.stderr.contains("\"1bad\""), "{out:?}");
    let out = env.run(&["db", "keys"]).fails(2);
    assert!(out.stderr.contains("FAMILY is missing"), "{out:?}");
    let out = env.run(&["nodes", "--timeout", "soon"]).fails(2);
    assert!(out.stderr.contains("--timeout soon"), "{out:?}");
    let out = env.run(&["trace", "extra"]).fails(2);
    assert!(out.stderr.contains("extra"), "{out:?}");
    for cmd in ["nodes", "trace", "db"] {
        let out = env.run(&[cmd, "--help"]).ok();
        assert!(out.stdout.contains("--timeout"), "{out:?}");
    }
}
