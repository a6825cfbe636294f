//! `simcse-bench`: each stage of `simcse` measured against its Python baseline in the same run,
//! on the same machine, written as JSON and printed as a table (DESIGN.md, "Conventions").
//! Not part of the product: the Makefile's bench-* targets run it.

#[macro_use]
extern crate simcse_core;

mod convert;
mod encode;
mod eval;
mod export;
mod latency;
mod process;
mod search;
mod serve;
mod startup;
mod train;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "simcse-bench", version, about = "Measure a stage of simcse against its Python baseline in the same run")]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// `simcse convert` against PyTorch (torch.load + safetensors.torch.save_file): seconds and peak RSS
    Convert(convert::ConvertBenchArgs),
    /// Sentences/s and peak RSS of our ONNX Runtime and tract backends against sentence-transformers
    Encode(encode::EncodeBenchArgs),
    /// The test-mode STS evaluation against SentEval's protocol on transformers: seconds and peak RSS
    Eval(eval::EvalBenchArgs),
    /// `simcse export` against torch.onnx.export: seconds and peak RSS
    Export(export::ExportBenchArgs),
    /// Per-batch latency and throughput of an exported graph on ONNX Runtime (CPU or CUDA),
    /// optionally beside PyTorch eager
    Latency(latency::LatencyBenchArgs),
    /// Exact and HNSW search over random unit vectors: queries/s and recall@k
    Search(search::SearchBenchArgs),
    /// `simcse serve` against infinity-emb on loopback: sentences/s, p50/p99, overload, soak memory
    Serve(serve::ServeBenchArgs),
    /// Start-up time and peak RSS of `simcse --help` and a small `simcse encode`, default build beside slim
    Startup(startup::StartupBenchArgs),
    /// SimCSE training steps/s and memory on synthetic batches, beside PyTorch eager (AMP)
    Train(train::TrainBenchArgs),
    /// One measured run of our encoder (what `encode` runs in a child process)
    #[command(hide = true)]
    EncodeWorker(encode::EncodeWorkerArgs),
}

fn main() -> ExitCode {
    simcse_core::signals::install();
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(which: BenchCommand) -> anyhow::Result<()> {
    match which {
        BenchCommand::Convert(args) => convert::run(args),
        BenchCommand::Encode(args) => encode::run(args),
        BenchCommand::Eval(args) => eval::run(args),
        BenchCommand::Export(args) => export::run(args),
        BenchCommand::Latency(args) => latency::run(args),
        BenchCommand::Search(args) => search::run(args),
        BenchCommand::Serve(args) => serve::run(args),
        BenchCommand::Startup(args) => startup::run(args),
        BenchCommand::Train(args) => train::run(args),
        BenchCommand::EncodeWorker(args) => encode::worker(args),
    }
}
