//! The subcommands of `simcse`, one module each.

pub mod convert;
pub mod env;
pub mod encode;
pub mod eval;
pub mod export;
pub mod search;
pub mod serve;
#[cfg(feature = "train")]
pub mod train;
#[cfg(feature = "train")]
pub mod verify;
#[cfg(not(feature = "train"))]
#[path = "without_train.rs"]
pub mod train;

/// A `--precision`/`--dtype` parser that lists `names` in `--help` and in its errors.
pub fn precision_parser(names: &[&'static str]) -> impl clap::builder::TypedValueParser<Value = simcse_core::Precision> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(names.iter().copied()).try_map(|name| name.parse::<simcse_core::Precision>())
}

/// `1234567` -> `1.2M`, the way parameter counts are usually quoted.
pub fn count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.2}B", n as f64 / 1e9),
    }
}

/// Decimal megabytes, as throughput is quoted (MB/s).
pub fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// The lines of a text file, for sentence inputs: an empty file is an error, since encoding
/// nothing is never what was meant.
pub fn read_lines(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let lines: Vec<String> = text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect();
    anyhow::ensure!(!lines.is_empty(), "{}: no sentences (the file is empty)", path.display());
    Ok(lines)
}

/// The non-blank lines of a text file with their line numbers (from 0): a corpus or a query
/// file, where a blank line is not a sentence.
pub fn read_sentences(path: &std::path::Path) -> anyhow::Result<(Vec<usize>, Vec<String>)> {
    let (numbers, lines): (Vec<usize>, Vec<String>) =
        read_lines(path)?.into_iter().enumerate().filter(|(_, line)| !line.trim().is_empty()).unzip();
    anyhow::ensure!(!lines.is_empty(), "{}: no sentences (every line is blank)", path.display());
    Ok((numbers, lines))
}

/// Writes a file whole or not at all, its parent having to exist.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    Ok(simcse_core::atomic::write_bytes(path, bytes)?)
}

/// Fails before any work where `path` could not be written at the end (no parent directory).
pub fn check_writable(path: &std::path::Path) -> anyhow::Result<()> {
    simcse_core::atomic::existing_parent(path)?;
    anyhow::ensure!(!path.is_dir(), "{} is a directory; give a file name to write", path.display());
    Ok(())
}

/// Tells the user what opening an encoder did (a graph exported on the fly, ...).
pub fn print_notes(encoder: &simcse_runtime::Encoder) {
    for note in &encoder.notes {
        errln!("{note}");
    }
}
