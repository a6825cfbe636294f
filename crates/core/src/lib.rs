//! What every stage of simcse shares, with neither libtorch nor an inference engine: the model
//! directory (its configs, `simcse.json`, what a directory is when it is not one), the
//! architectures and poolers, tokenization and length-sorted batching, STS data and SentEval's
//! scoring, the one atomic-write helper, and the process-wide pieces (signals, progress, a
//! stdout that a closed pipe silences).

#[macro_use]
pub mod stdout;
pub mod architecture;
pub mod atomic;
pub mod batch;
pub mod device;
mod embeddings;
mod input_error;
pub mod model_dir;
pub mod onnx_metadata;
pub mod precision;
pub mod progress;
pub mod rng;
pub mod signals;
pub mod sts;
pub mod tokenize;

pub use architecture::Architecture;
pub use device::{Device, DeviceChoice};
pub use embeddings::Embeddings;
pub use input_error::InputError;
pub use model_dir::{ModelConfig, ModelDir, ModelDirError, Needs, Pooler, SimcseConfig};
pub use onnx_metadata::{EncoderMetadata, Optimize};
pub use precision::Precision;
