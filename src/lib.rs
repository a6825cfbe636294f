//! The `simcse` command's library: the libtorch trainer and what the CLI shares.

#[macro_use]
pub mod stdout;
pub mod progress;
pub mod signals;
pub mod rng;
pub mod train;
