//! The subcommands of `simcse`, one module each.

pub mod convert;
pub mod env;

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
