//! Checkpoints in, model directories out, with no Python and no libtorch: PyTorch's ZIP and
//! legacy pickle formats (through a minimal unpickler that runs no code), sharded indexes and
//! safetensors, renamed and cast into a Hugging Face model directory with `simcse.json`.

pub mod checkpoint;
pub mod convert;
pub mod dtype;
mod error;
pub mod keys;
pub mod pickle;
pub mod safetensors_file;
pub mod safetensors_out;
pub mod source;
pub mod torch;
pub mod torch_write;
pub mod zip;

pub use convert::{convert, ConvertOptions, ConvertReport};
pub use dtype::DType;
pub use error::ConvertError;
pub use keys::KeyMap;
