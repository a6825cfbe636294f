//! SIGINT and SIGTERM. By default an interrupt ends the command at once, after any swap in
//! progress has finished and with every temporary removed (`simcse_core::atomic`):
//! nothing half-written is left. Long work that can stop cleanly (training saves its state)
//! asks for a graceful first interrupt instead: it polls `interrupted()` and stops, and a
//! second interrupt abandons that, the same way.
//!
//! Exit codes: 128 + the signal, as a shell reports a process the signal killed (130 for
//! SIGINT, 143 for SIGTERM).

use signal_hook::consts::{SIGINT, SIGTERM};
use std::io::Write;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

/// The first signal received (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// Where set, what the first interrupt prints, the command having asked to stop gracefully.
static GRACEFUL: Mutex<Option<Graceful>> = Mutex::new(None);

struct Graceful {
    first: String,
    abandoned: String,
}

/// Starts the thread that receives SIGINT and SIGTERM; called once, first thing in `main`.
pub fn install() {
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else { return };
    std::thread::spawn(move || {
        for signal in signals.forever() {
            let first = RECEIVED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst).is_ok();
            let graceful = GRACEFUL.lock().unwrap_or_else(|p| p.into_inner());
            match (&*graceful, first) {
                (Some(g), true) => say(&g.first),
                (Some(g), false) => abandon(signal, &g.abandoned),
                (None, _) => abandon(signal, "interrupted; nothing half-written was left behind"),
            }
        }
    });
}

/// From now on the first interrupt only sets `interrupted()`, after printing `first`; a second
/// one prints `abandoned` and ends the process.
pub fn stop_gracefully(first: &str, abandoned: &str) {
    *GRACEFUL.lock().unwrap_or_else(|p| p.into_inner()) = Some(Graceful { first: first.into(), abandoned: abandoned.into() });
}

/// The signal that asked the command to stop, if one did.
pub fn interrupted() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

pub fn exit_code(signal: i32) -> u8 {
    (128 + signal).clamp(0, 255) as u8
}

fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn abandon(signal: i32, message: &str) -> ! {
    // Waits for a swap in progress, removes the temporaries, and keeps new swaps out.
    let _swap = crate::atomic::abandon();
    say(message);
    // _exit: no destructors of libtorch or ONNX Runtime run under the main thread's feet.
    unsafe { libc::_exit(exit_code(signal) as i32) }
}
