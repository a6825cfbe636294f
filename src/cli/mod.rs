//! The subcommands of `simcse`, one module each.

pub mod convert;
pub mod env;
pub mod encode;
pub mod eval;
pub mod export;
pub mod search;
pub mod train;
pub mod verify;

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

/// Writes a file whole or not at all: a temporary name beside it, then a rename.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
