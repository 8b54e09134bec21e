//! The command table: each command's name, bare alias, arguments, help
//! and action. Command groups (`config_cmds`, later the network commands)
//! each return their [`Spec`]s; [`Table`] finds them, takes their
//! arguments off the chain and renders help with clap.

use aemp::rcfile::RcFile;
use clap::error::ErrorKind;
use serde_json::{Map, Value};
use std::iter::Peekable;

/// The hint line that ends every usage error.
pub fn hint(command: Option<&str>) -> String {
    match command {
        Some(c) => format!("Try 'aemp help {c}'."),
        None => "Try 'aemp --help' for the commands.".into(),
    }
}

/// How a command line ends, other than success.
#[derive(Debug)]
pub enum Failure {
    /// Help or version text was asked for: print it, exit 0.
    Help(String),
    /// The command line is wrong: exit 2.
    Usage(String),
    /// The command could not do its work: exit 1.
    Failed(String),
}

impl Failure {
    /// A failure of the command `name`: a usage error gets the tool's one
    /// style, `NAME: problem` (the prefix added when missing) and the
    /// hint line; the others are left as they are.
    pub fn of(self, name: &str) -> Failure {
        match self {
            Failure::Usage(text) => {
                let text = text.trim_end();
                let text = if text.starts_with(&format!("{name}: ")) {
                    text.to_string()
                } else {
                    format!("{name}: {text}")
                };
                Failure::Usage(format!("{text}\n{}", hint(Some(name))))
            }
            other => other,
        }
    }
}

/// What the commands of one command line share: the configuration file
/// and the section that edits go to.
pub struct Session {
    /// The configuration file, loaded at the start, saved at the end.
    pub rc: RcFile,
    /// `None`: the global section; else the profile chosen by `profile`.
    pub section: Option<String>,
    /// The words came from a JSON command array: every argument is
    /// decoded already (see `argv`).
    pub decoded: bool,
}

impl Session {
    pub fn new() -> Session {
        Session {
            rc: RcFile::load_default(),
            section: None,
            decoded: false,
        }
    }

    /// The section that edits go to (a chosen profile is created if
    /// needed).
    pub fn section(&mut self) -> &mut Map<String, Value> {
        self.rc.section_mut(self.section.as_deref())
    }

    /// Saves the file if anything changed.
    pub fn finish(mut self) -> Result<(), Failure> {
        match self.rc.save() {
            Ok(written) => {
                if written {
                    log::info!(
                        "saved {}",
                        self.rc
                            .path()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default()
                    );
                }
                Ok(())
            }
            Err(e) => Err(Failure::Failed(e.to_string())),
        }
    }
}

/// How many arguments a command takes off the chain.
pub enum Arity {
    /// None.
    Zero,
    /// Exactly one (missing: a usage error).
    One {
        /// Its name in help, e.g. `SECRET`.
        value: &'static str,
        /// Its help line.
        help: &'static str,
    },
    /// All remaining arguments (the command ends the chain).
    Rest {
        /// Their name in help.
        value: &'static str,
        /// Their help line.
        help: &'static str,
    },
}

/// A command's action.
pub type Run = Box<dyn Fn(&mut Session, Vec<Value>) -> Result<(), Failure>>;

/// One command.
pub struct Spec {
    pub name: &'static str,
    pub alias: Option<&'static str>,
    pub about: String,
    pub long_about: Option<String>,
    pub usage: Option<&'static str>,
    pub arity: Arity,
    /// Options shown in help and checked by clap; the command reads them
    /// itself from the front of its arguments.
    pub options: Vec<clap::Arg>,
    /// The command gets its arguments as the strings typed and decodes
    /// them itself (see [`Spec::raw_args`]).
    pub raw: bool,
    pub run: Run,
}

/// Builds a [`Spec`].
pub fn spec(
    name: &'static str,
    alias: Option<&'static str>,
    arity: Arity,
    about: impl Into<String>,
    run: impl Fn(&mut Session, Vec<Value>) -> Result<(), Failure> + 'static,
) -> Spec {
    Spec {
        name,
        alias,
        about: about.into(),
        long_about: None,
        usage: None,
        arity,
        options: Vec::new(),
        raw: false,
        run: Box::new(run),
    }
}

impl Spec {
    /// Adds a longer help text (shown by `--help`).
    pub fn long(mut self, text: impl Into<String>) -> Spec {
        self.long_about = Some(text.into());
        self
    }

    /// Adds an option (see [`Spec::options`]).
    pub fn option(mut self, arg: clap::Arg) -> Spec {
        self.options.push(arg);
        self
    }

    /// The command decodes its JSON arguments itself (`argv::decode_one`,
    /// or `argv::json_data` for `--json`), unless `Session::decoded`.
    pub fn raw_args(mut self) -> Spec {
        self.raw = true;
        self
    }

    /// Replaces the usage line clap would make.
    pub fn usage(mut self, usage: &'static str) -> Spec {
        self.usage = Some(usage);
        self
    }

    /// Takes this command's arguments off the chain: `--help`/`-h` alone,
    /// or what the arity says.
    pub fn take(&self, argv: &mut Peekable<impl Iterator<Item = Value>>) -> Vec<Value> {
        if matches!(argv.peek(), Some(Value::String(s)) if s == "--help" || s == "-h") {
            return argv.next().into_iter().collect();
        }
        match self.arity {
            Arity::Zero => Vec::new(),
            Arity::One { .. } => argv.next().into_iter().collect(),
            Arity::Rest { .. } => argv.collect(),
        }
    }

    /// Lets clap check the taken arguments (and answer `--help`).
    pub fn check(&self, taken: &[Value]) -> Result<Vec<Value>, Failure> {
        let words = std::iter::once(self.name.to_string()).chain(taken.iter().map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }));
        match self.clap().try_get_matches_from(words) {
            Ok(_) => Ok(taken.to_vec()),
            Err(e) if e.kind() == ErrorKind::DisplayHelp => {
                Err(Failure::Help(e.render().to_string()))
            }
            // clap's own message, in the tool's style: `CMD: problem`,
            // the usage line (the hint follows, see `Failure::of`).
            Err(e) => {
                let text = e.render().to_string();
                let problem = text
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches("error:")
                    .trim();
                // A list of missing arguments follows on indented lines.
                let listed: Vec<&str> = text
                    .lines()
                    .skip(1)
                    .take_while(|l| l.starts_with("  "))
                    .map(str::trim)
                    .collect();
                let problem = match listed.is_empty() {
                    true => problem.to_string(),
                    false => format!("{problem} {}", listed.join(" ")),
                };
                Err(Failure::Usage(format!(
                    "{}: {problem}\n{}",
                    self.name,
                    self.clap().render_usage().to_string().trim_end()
                )))
            }
        }
    }

    /// The clap form of this command, for checking and help.
    pub fn clap(&self) -> clap::Command {
        let mut c = clap::Command::new(self.name)
            .bin_name(format!("aemp {}", self.name))
            .about(self.about.clone())
            .disable_version_flag(true);
        if let Some(long) = &self.long_about {
            c = c.long_about(format!("{}\n\n{long}", self.about));
        }
        if let Some(usage) = self.usage {
            c = c.override_usage(usage);
        }
        if let Some(alias) = &self.alias {
            c = c.visible_alias(*alias);
        }
        c = c.args(self.options.iter().cloned());
        let arg = |value: &'static str, help: &'static str| {
            clap::Arg::new(value)
                .value_name(value)
                .help(help)
                .allow_hyphen_values(true)
        };
        match self.arity {
            Arity::Zero => c,
            Arity::One { value, help } => c.arg(arg(value, help).required(true)),
            Arity::Rest { value, help } => c.arg(
                arg(value, help)
                    .num_args(0..)
                    .trailing_var_arg(true)
                    .action(clap::ArgAction::Append),
            ),
        }
    }
}

/// All commands.
pub struct Table {
    specs: Vec<Spec>,
}

const ABOUT: &str = "aemp: configure and run nodes of aemp (Erlang-style message passing, \
the Rust form of Perl's AnyEvent::MP). The configuration file is shared with Perl nodes.";

const AFTER: &str = "\
Commands chain: each takes its own arguments and the rest is read again, e.g.
  aemp profile seed binds '*:4040' nodeid seed
Edits go to the global section, or to the profile chosen by an earlier
`profile NAME`. The file is saved at the end, only if something changed, and
not at all when a command fails.

Arguments starting with [, { or \" are JSON (aemp setservices '[[\"m::f\",1]]');
a single argument starting with [ is the whole command line as a JSON array
(aemp '[\"profile\",\"p\",\"nodeid\",\"x\"]'). List values (seeds, binds,
services, framing_format, auth_offer, auth_accept) are comma-separated or a
JSON array. Every setX command has the bare alias X (seeds = setseeds).
snd and cal --json read every data argument as JSON; the network commands'
options may stand anywhere on their line, and -- ends them.

The file: --rc FILE (before the first command), else $AEMP_RC, else
$PERL_ANYEVENT_MP_RC, else ~/.perl-anyevent-mp.
Logging: RUST_LOG, or AEMP_VERBOSE=0..9; AEMP_TRACE=1 prints SND/RCV lines.
Exit codes: 0 ok, 1 failure, 2 usage error.

Network commands: run (a node), snd, cal, mon, restart (see aemp help snd);
nodes, trace, db family|keys|values|mon FAMILY (see aemp help db). The
original's eval and shell are not offered: aemp nodes only run registered
functions, never code sent to them.

Shell completions: aemp completions bash|zsh|fish prints the script.";

impl Table {
    pub fn new(specs: Vec<Spec>) -> Table {
        Table { specs }
    }

    /// The command called `name` (or with that bare alias).
    pub fn find(&self, name: &Value) -> Result<&Spec, Failure> {
        let found = match name {
            Value::String(n) => self
                .specs
                .iter()
                .find(|s| s.name == n || s.alias == Some(n.as_str())),
            _ => None,
        };
        found.ok_or_else(|| {
            let shown = match name {
                Value::String(n) => n.clone(),
                other => other.to_string(),
            };
            Failure::Usage(format!("{shown}: no such aemp command\n{}", hint(None)))
        })
    }

    /// The clap form of the whole tool, for help.
    pub fn clap(&self) -> clap::Command {
        clap::Command::new("aemp")
            .version(env!("CARGO_PKG_VERSION"))
            .about(ABOUT)
            .override_usage("aemp [--rc FILE] <COMMAND> [ARGS]... [<COMMAND> [ARGS]...]...")
            .arg(
                clap::Arg::new("rc")
                    .long("rc")
                    .value_name("FILE")
                    .value_hint(clap::ValueHint::FilePath)
                    .help("use FILE as the configuration file (before the first command)"),
            )
            .after_help(AFTER)
            .subcommands(self.specs.iter().map(Spec::clap))
    }

    /// The short usage and the hint, for a usage error of the whole
    /// line.
    pub fn usage(&self) -> String {
        format!(
            "{}\n{}",
            self.clap().render_usage().to_string().trim_end(),
            hint(None)
        )
    }

    /// `--help`, `help [COMMAND]` and `--version` as the first argument;
    /// `None` for a command line to run.
    pub fn top_level(&self, args: &[String]) -> Option<Result<(), Failure>> {
        let first = args.first()?.as_str();
        match (first, args.get(1)) {
            ("-h" | "--help" | "help", None) => {
                Some(Err(Failure::Help(self.clap().render_help().to_string())))
            }
            ("help", Some(name)) => {
                Some(self.find(&Value::String(name.clone())).and_then(|spec| {
                    Err(Failure::Help(spec.clap().render_long_help().to_string()))
                }))
            }
            ("-V" | "--version", None) => Some(Err(Failure::Help(format!(
                "aemp {}\n",
                env!("CARGO_PKG_VERSION")
            )))),
            ("-h" | "--help" | "-V" | "--version", Some(_)) => Some(Err(Failure::Usage(format!(
                "{first} takes no further arguments\n{}",
                self.usage()
            )))),
            _ => None,
        }
    }
}
