//! Output that never panics. A closed stdout (`simcse ... | head`) is not an error: writes
//! stop quietly and `closed()` says so (training polls it and stops as on an interrupt), as
//! ripgrep does. A closed stderr loses the message and nothing else.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes a line to stdout; after a broken pipe, nothing.
pub fn line(text: std::fmt::Arguments) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(format_args!("{text}\n")).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CLOSED.store(true, Ordering::Relaxed);
        }
    }
}

/// Writes a line to stderr, ignoring failure.
pub fn error_line(text: std::fmt::Arguments) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Whether stdout's reader went away.
pub fn closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// `outln!` that stops quietly on a closed stdout.
#[macro_export]
macro_rules! outln {
    () => { $crate::stdout::line(format_args!("")) };
    ($($arg:tt)*) => { $crate::stdout::line(format_args!($($arg)*)) };
}

/// `errln!` that never panics.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::stdout::error_line(format_args!($($arg)*)) };
}
