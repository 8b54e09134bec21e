//! `aemp completions SHELL`: prints the shell completion script made by
//! clap_complete from the command table (commands, their aliases and
//! options; the global `--rc FILE`).

use crate::cmd::{spec, Arity, Failure, Spec};
use clap::ValueEnum;
use clap_complete::Shell;
use serde_json::Value;

/// The shells clap_complete writes for, by name.
fn shell_names() -> Vec<String> {
    Shell::value_variants()
        .iter()
        .filter_map(|s| s.to_possible_value())
        .map(|v| v.get_name().to_string())
        .collect()
}

/// `aemp completions`.
pub fn completions_spec() -> Spec {
    spec(
        "completions",
        None,
        Arity::One {
            value: "SHELL",
            help: "bash, zsh, fish (also elvish, powershell)",
        },
        "Print the shell completion script for SHELL",
        |_, a| completions(&a[0]),
    )
    .long(
        "Completes the command names and their options; as commands chain, a completed \
command's own arguments come from the shell's file names. Install, e.g.\n\n  \
aemp completions bash > ~/.local/share/bash-completion/completions/aemp\n  \
aemp completions zsh > \"${fpath[1]}/_aemp\"\n  \
aemp completions fish > ~/.config/fish/completions/aemp.fish",
    )
}

fn completions(shell: &Value) -> Result<(), Failure> {
    let name = shell.as_str().unwrap_or_default();
    let shell: Shell = name.parse().map_err(|_| {
        Failure::Usage(format!(
            "{shell}: not a shell clap_complete knows ({})",
            shell_names().join(", ")
        ))
    })?;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut crate::table().clap(), "aemp", &mut script);
    // A closed output (`| head`) is not an error.
    let mut out = std::io::stdout().lock();
    let _ =
        std::io::Write::write_all(&mut out, &script).and_then(|()| std::io::Write::flush(&mut out));
    Ok(())
}
