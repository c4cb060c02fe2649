//! `kubectl classcache completion bash|zsh|fish|kubectl`: the shell completion scripts, made by
//! clap_complete from the command line itself. It prints only; it must not install anything.

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use std::io::Write;

use crate::cli::{Cli, CompletionShell};

/// The command the bash, zsh and fish scripts complete: the plugin's own executable (kubectl
/// completes `kubectl classcache …` through [`KUBECTL_COMPLETE`] instead).
pub const BIN: &str = "kubectl-classcache";

/// `kubectl_complete-classcache`: kubectl (1.26+) runs it with the words after `classcache`
/// and reads candidates, one a line, then cobra's `:<directive>`. It drives the bash script.
const KUBECTL_COMPLETE: &str = include_str!("../completion/kubectl_complete-classcache");

pub fn print(shell: CompletionShell, out: &mut impl Write) -> Result<()> {
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
        CompletionShell::Kubectl => {
            return out
                .write_all(KUBECTL_COMPLETE.as_bytes())
                .context("cannot write the completion script to stdout");
        }
    };
    let mut script = vec![];
    if shell == Shell::Bash {
        // clap_complete's bash script (4.6) names its subcommand cases inconsistently when the
        // program's name holds a `-` (`kubectl__classcache__subcmd__x` vs
        // `kubectl__subcmd__classcache__subcmd__x`): no subcommand's options would complete.
        // So it is made for a name without one, and registered for the real name.
        let ident = BIN.replace('-', "_");
        clap_complete::generate(shell, &mut visible_command(), &ident, &mut script);
        let text = String::from_utf8(script).context("clap_complete wrote non-UTF-8")?;
        let mut fixed = String::new();
        for line in text.lines() {
            match line.strip_suffix(&format!(" {ident}")) {
                Some(head) if line.trim_start().starts_with("complete -F ") => {
                    fixed.push_str(&format!("{head} {BIN}\n"))
                }
                _ => fixed.push_str(&format!("{line}\n")),
            }
        }
        script = fixed.into_bytes();
    } else {
        clap_complete::generate(shell, &mut visible_command(), BIN, &mut script);
    }
    out.write_all(&script)
        .context("cannot write the completion script to stdout")
}

/// The command line without its hidden subcommands (clap_complete would offer them): the
/// top level has no arguments of its own beyond --help/--version, so its subcommands are all.
fn visible_command() -> clap::Command {
    let cli = Cli::command();
    debug_assert!(cli
        .get_arguments()
        .all(|a| ["help", "version"].contains(&a.get_id().as_str())));
    let mut visible = clap::Command::new(BIN)
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true);
    if let Some(about) = cli.get_about() {
        visible = visible.about(about.clone());
    }
    visible.subcommands(cli.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every visible subcommand is offered; the hidden one (scripts/helm-chart.sh's) is not.
    #[test]
    fn completions_offer_the_visible_subcommands_only() {
        for shell in [
            CompletionShell::Bash,
            CompletionShell::Zsh,
            CompletionShell::Fish,
        ] {
            let mut out = vec![];
            print(shell, &mut out).unwrap();
            let script = String::from_utf8(out).unwrap();
            for sub in [
                "enable",
                "disable",
                "status",
                "install",
                "uninstall",
                "completion",
            ] {
                assert!(script.contains(sub), "{shell:?} lacks {sub}");
            }
            assert!(!script.contains("helm-chart"), "{shell:?}:\n{script}");
        }
        let mut out = vec![];
        print(CompletionShell::Kubectl, &mut out).unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .starts_with("#!/usr/bin/env bash\n"));
    }
}
