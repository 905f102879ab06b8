//! `pgtenant completions bash|zsh|fish`: shell completion scripts generated
//! from the command line definition itself (clap_complete), so they cannot
//! disagree with it. The man page comes from the same definition
//! (`examples/man.rs`, clap_mangen), outside the binary.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, CompletionShell};

/// Writes the completion script for `shell`.
pub fn write(shell: CompletionShell, out: &mut dyn Write) {
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    clap_complete::generate(shell, &mut Cli::command(), "pgtenant", out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(shell: CompletionShell) -> String {
        let mut out = Vec::new();
        write(shell, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_subcommand_and_flag_is_completed() {
        for shell in [
            CompletionShell::Bash,
            CompletionShell::Zsh,
            CompletionShell::Fish,
        ] {
            let s = script(shell);
            for word in [
                "apply",
                "plan",
                "status",
                "run",
                "wait",
                "probe",
                "completions",
                "resync-interval",
                "log-format",
                "exit-code",
            ] {
                assert!(s.contains(word), "{shell:?} completion lacks {word}");
            }
        }
    }
}
