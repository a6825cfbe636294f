//! STS evaluation in SentEval's protocol, as SimCSE's `evaluation.py` runs it; usable with any
//! encoder (the trainer passes its own), so it needs neither ONNX Runtime nor libtorch.

pub mod data;
pub mod evaluate;
pub mod stats;
pub mod table;

pub use data::{DataDirs, Mode, Pair, Subset, Task, TaskSpec, TASKS};
pub use evaluate::{evaluate, Aggregate, Embed, SubsetScore, TaskScore};
pub use table::simcse_table;

/// SimCSE's English table, in its order.
pub const STS_TABLE: &[&str] = &["STS12", "STS13", "STS14", "STS15", "STS16", "STSBenchmark", "SICKRelatedness"];
/// SimCSE's dev table.
pub const DEV_TABLE: &[&str] = &["STSBenchmark", "SICKRelatedness"];
/// The Chinese pair sets.
pub const ZH_TABLE: &[&str] = &["STS-B-zh", "LCQMC", "PAWSX"];
