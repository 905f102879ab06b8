//! Build metadata for `pgtenant --version` and the `build_info` module: the
//! git commit the binary was built from and the target triple.
//!
//! The commit comes from `PGTENANT_GIT_COMMIT` when set (builds from a tree
//! without `.git`, such as a container build context), else from `git
//! rev-parse HEAD` when git and a repository are there, else "unknown".
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=PGTENANT_GIT_COMMIT");
    let commit = match std::env::var("PGTENANT_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => {
            // Rebuild when HEAD moves: HEAD itself, the branch it points to,
            // and packed refs (worktrees keep HEAD in their own git dir).
            for path in ["HEAD", "packed-refs"] {
                if let Some(p) = git(&["rev-parse", "--git-path", path]) {
                    println!("cargo:rerun-if-changed={p}");
                }
            }
            if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
                if let Some(p) = git(&["rev-parse", "--git-path", &r]) {
                    println!("cargo:rerun-if-changed={p}");
                }
            }
            git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".to_string())
        }
    };
    let commit: String = commit
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .take(64)
        .collect();
    let target = std::env::var("TARGET").unwrap_or_default();
    let short: String = commit.chars().take(12).collect();
    println!("cargo:rustc-env=PGTENANT_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=PGTENANT_TARGET={target}");
    println!(
        "cargo:rustc-env=PGTENANT_LONG_VERSION={} (commit {short}, {target})",
        std::env::var("CARGO_PKG_VERSION").unwrap_or_default()
    );
}
