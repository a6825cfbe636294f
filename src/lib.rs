//! The `simcse` command's library: the libtorch trainer and what the CLI shares.

pub mod progress;
pub mod rng;
pub mod train;
