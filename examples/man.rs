//! Writes pgtenant's man page (roff) to stdout, generated from the command
//! line definition, so that it cannot disagree with `--help`:
//!
//!     cargo run --example man > pgtenant.1
//!
//! Kept out of the binary (clap_mangen is a dev-dependency): the image stays
//! small and the page ships as a release artefact (scripts/build-image).
use clap::CommandFactory;

fn main() -> std::io::Result<()> {
    let cmd = pgtenant::cli::Cli::command();
    clap_mangen::Man::new(cmd).render(&mut std::io::stdout().lock())
}
