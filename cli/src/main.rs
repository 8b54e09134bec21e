//! `aemp`: the command line tool of aemp, the Rust form of Perl's
//! AnyEvent::MP, with the original's commands.
//!
//! Commands chain (`aemp profile seed binds '*:4040' nodeid seed`): each
//! takes its own arguments and the rest is read again. Arguments starting
//! with `[`, `{` or `"` are JSON; a single argument starting with `[` is
//! the whole command line as a JSON array.
//!
//! Layout: this file reads the arguments, runs the chain and sets the exit
//! code (0 ok, 1 failure, 2 usage: `aemp: CMD: problem`, then a hint
//! line); `cmd.rs` has the command table and its
//! help; each command group lives in its own module (`config_cmds.rs`,
//! `net_cmds.rs`, `db_cmds.rs`; a large group keeps its concerns in files
//! of a folder of the same name) and contributes its commands to the table.

mod argv;
mod cmd;
mod completions;
mod config_cmds;
mod db_cmds;
mod net_cmds;

use cmd::{Failure, Session};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    init_logging();
    let args: Vec<String> = match std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect::<Result<_, _>>()
    {
        Ok(a) => a,
        Err(bad) => {
            return fail(Failure::Usage(format!(
                "argument {bad:?} is not valid UTF-8"
            )))
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => fail(f),
    }
}

fn fail(f: Failure) -> ExitCode {
    match f {
        Failure::Help(text) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Failure::Usage(text) => {
            // One style for every usage error: `aemp: CMD: problem`, then
            // lines such as the usage, then a hint line.
            let text = text.trim_end();
            let text = if text.lines().last().is_some_and(|l| l.starts_with("Try '")) {
                text.to_string()
            } else {
                format!("{text}\n{}", cmd::hint(None))
            };
            let _ = writeln!(std::io::stderr(), "aemp: {text}");
            ExitCode::from(2)
        }
        Failure::Failed(text) => {
            let _ = writeln!(std::io::stderr(), "aemp: {}", text.trim_end());
            ExitCode::from(1)
        }
    }
}

/// Every command, in help order.
fn table() -> cmd::Table {
    let mut commands = config_cmds::commands();
    commands.extend(net_cmds::commands());
    commands.extend(db_cmds::commands());
    commands.push(completions::completions_spec());
    cmd::Table::new(commands)
}

/// Runs the whole command line: every command in turn, then saves the
/// configuration file if it changed. Nothing is saved when a command fails.
fn run(args: Vec<String>) -> Result<(), Failure> {
    let table = table();
    let args = take_rc_option(args, &table)?;
    if args.is_empty() {
        return Err(Failure::Usage(format!(
            "no command given\n{}",
            table.usage()
        )));
    }
    if let Some(done) = table.top_level(&args) {
        return done;
    }
    let (words, decoded) = argv::words(args)?;
    let mut words = words.into_iter().peekable();
    let mut session = Session::new();
    session.decoded = decoded;
    while let Some(name) = words.next() {
        let name = if decoded {
            name
        } else {
            argv::decode_one(name)?
        };
        let spec = table.find(&name)?;
        let taken = spec.take(&mut words);
        let mut values = spec.check(&taken).map_err(|f| f.of(spec.name))?;
        if !decoded && !spec.raw {
            values = values
                .into_iter()
                .map(argv::decode_one)
                .collect::<Result<_, _>>()
                .map_err(|f| f.of(spec.name))?;
        }
        (spec.run)(&mut session, values).map_err(|f| f.of(spec.name))?;
    }
    session.finish()
}

/// The global option `--rc FILE` (or `--rc=FILE`), before the first
/// command: the configuration file to use instead of `$AEMP_RC`,
/// `$PERL_ANYEVENT_MP_RC` or `~/.perl-anyevent-mp`. It becomes `AEMP_RC`
/// for this process, so that everything that reads the file (the
/// commands, and the library's `configure` for `run`) reads this one.
fn take_rc_option(mut args: Vec<String>, table: &cmd::Table) -> Result<Vec<String>, Failure> {
    let file = match args.first().map(String::as_str) {
        Some("--rc") if args.len() > 1 => {
            args.remove(0);
            args.remove(0)
        }
        Some(a) if a.starts_with("--rc=") => args.remove(0)["--rc=".len()..].to_string(),
        Some("--rc") => String::new(),
        _ => return Ok(args),
    };
    if file.is_empty() {
        return Err(Failure::Usage(format!(
            "--rc needs a FILE\n{}",
            table.usage()
        )));
    }
    // Still one thread: nothing else reads the environment yet.
    std::env::set_var("AEMP_RC", file);
    Ok(args)
}

/// `RUST_LOG` works as usual; `AEMP_VERBOSE=0..9` sets the level first
/// (0 off, 1 error, 2–4 warn, 5–7 info, 8 debug, 9 trace; default warn),
/// and `RUST_LOG` directives apply on top of it. `AEMP_TRACE=1` shows the
/// network's `SND`/`RCV` packet lines (log target `aemp::trace`, info).
/// The logger forwards records to log catchers (`aemp::logcatch`).
fn init_logging() {
    let level = match std::env::var("AEMP_VERBOSE")
        .ok()
        .and_then(|v| v.trim().parse::<u8>().ok())
    {
        Some(0) => log::LevelFilter::Off,
        Some(1) => log::LevelFilter::Error,
        Some(2..=4) | None => log::LevelFilter::Warn,
        Some(5..=7) => log::LevelFilter::Info,
        Some(8) => log::LevelFilter::Debug,
        Some(_) => log::LevelFilter::Trace,
    };
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level);
    if std::env::var("AEMP_TRACE").is_ok_and(|v| !v.is_empty() && v != "0") {
        builder.filter_module("aemp::trace", log::LevelFilter::Info);
    }
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    // Through aemp's forwarder, so that a log catcher (`aemp log`, or a
    // node running AnyEvent::MP::LogCatcher::catch) sees this node's records.
    let logger = builder.build();
    let max = logger.filter();
    let _ = aemp::logcatch::install(Some(Box::new(logger)), max);
}
