//! `simcse bench`: each stage measured against its Python baseline in the same run, on the
//! same machine, written as JSON and printed as a table (DESIGN.md, "Conventions").

mod convert;
mod process;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// `simcse convert` against PyTorch (torch.load + safetensors.torch.save_file): seconds and peak RSS
    Convert(convert::ConvertBenchArgs),
}

pub fn run(which: BenchCommand) -> anyhow::Result<()> {
    match which {
        BenchCommand::Convert(args) => convert::run(args),
    }
}
