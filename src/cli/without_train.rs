//! `simcse train` in a build without the `train` feature (`make slim`): the command is there, so
//! that a script gets a message that says what is missing rather than "unrecognized subcommand"
//! (as ripgrep answers `-P` without PCRE2).

use clap::{ArgMatches, Args};
use std::process::ExitCode;

#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct TrainArgs {
    /// Whatever was given: none of it can be run here
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

pub fn run(_args: TrainArgs, _given: &ArgMatches) -> anyhow::Result<ExitCode> {
    Err(not_in_this_build("`simcse train`"))
}

/// The error of every libtorch-only capability of this build.
pub fn not_in_this_build(what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} is not in this build (built without the `train` feature, which links libtorch); \
         use the default build (cargo build --release)"
    )
}
