//! `simcse`: SimCSE sentence encoders in Rust. Each subcommand takes a model directory and
//! writes one (../shared/DESIGN.md, "The flow").

#[macro_use]
extern crate simcse_core;

mod cli;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "simcse", version, about = "SimCSE sentence encoders: convert, train, export, encode, evaluate")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert a PyTorch checkpoint (zip or legacy format, sharded or not) or safetensors into a
    /// model directory, without Python
    Convert(cli::convert::ConvertArgs),
    /// Train with SimCSE (unsupervised or supervised, fp32/fp16/bf16) on libtorch; SimCSE's train.py flags
    Train(cli::train::TrainArgs),
    /// Export a model directory's encoder, pooler included, as one ONNX file
    Export(cli::export::ExportArgs),
    /// Encode sentences (one a line) with an exported model: .npy, .safetensors or .jsonl
    Encode(cli::encode::EncodeArgs),
    /// STS evaluation in SentEval's protocol: SimCSE's table (STS12-16, STS-B, SICK-R), or Chinese pair sets
    Eval(cli::eval::EvalArgs),
    /// Semantic search over a corpus (SimCSE's tool): exact, or approximate with HNSW
    Search(cli::search::SearchArgs),
    /// Serve an encoder over HTTP: text-embeddings-inference's routes, OpenAI's /v1/embeddings, /search
    Serve(cli::serve::ServeArgs),
    /// Show what this binary runs on and was built with: libtorch and CUDA, ONNX Runtime, tract
    Env,
}

fn main() -> ExitCode {
    simcse_core::signals::install();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Convert(args) => cli::convert::run(args),
        Command::Train(args) => {
            let given = matches.subcommand_matches("train").expect("the train subcommand");
            cli::train::run(args, given)
        }
        Command::Export(args) => cli::export::run(args).map(|_| ExitCode::SUCCESS),
        Command::Encode(args) => cli::encode::run(args).map(|_| ExitCode::SUCCESS),
        Command::Eval(args) => cli::eval::run(args).map(|_| ExitCode::SUCCESS),
        Command::Search(args) => cli::search::run(args).map(|_| ExitCode::SUCCESS),
        Command::Serve(args) => cli::serve::run(args).map(|_| ExitCode::SUCCESS),
        Command::Env => cli::env::run().map(|_| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        // A closed stdout is where the reader wanted no more: not an error (as ripgrep).
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}
