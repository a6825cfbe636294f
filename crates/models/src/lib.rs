//! BERT, RoBERTa, MPNet, GPT-2 and Llama and SimCSE's poolers, each written once against [`Ops`].
//!
//! As candle's `VarBuilder` hides where weights come from, [`Ops`] hides which engine runs:
//! the trainer implements it with libtorch tensors (`simcse-train`), the exporter with ONNX
//! graph nodes (`simcse-export`, where ONNX Runtime's fused ops override the plain
//! compositions of [`plain`]). A model asks for its weights by their Hugging Face names.

mod bert;
mod gpt2;
mod llama;
mod mpnet;
pub mod ops;
pub mod plain;
mod pooling;

pub use ops::{Attention, Embeddings, Linear, Norm, Ops, PositionIds, Qkv, RelativePositionBias, Rope, Table, TokenTypes, WeightLayout};
pub use pooling::{pool, pooler_dense};

use simcse_core::architecture::Architecture;

/// Hugging Face's dropout for these models (hidden states and attention probabilities); Llama,
/// which has none, gets it too in training (SimCSE's positives need it).
pub const DROPOUT: f64 = 0.1;

/// An encoder's inputs: int64 [batch, seq] values of the engine.
pub struct Inputs<'a, V> {
    pub ids: &'a V,
    pub mask: &'a V,
    /// BERT's segment ids; `None` where the architecture has none or the input is one segment.
    pub token_types: Option<&'a V>,
}

/// The hidden states [batch, seq, hidden] as Hugging Face's `output_hidden_states` gives them:
/// the embeddings' output, then each layer's (for GPT-2 and Llama the last is after the final norm).
pub fn encode<O: Ops + ?Sized>(ops: &mut O, arch: &Architecture, inputs: &Inputs<O::Value>) -> Result<Vec<O::Value>, O::Error> {
    match arch {
        Architecture::Bert(spec) => bert::encode(ops, spec, inputs),
        Architecture::Mpnet(spec) => mpnet::encode(ops, spec, inputs),
        Architecture::Gpt2(spec) => gpt2::encode(ops, spec, inputs),
        Architecture::Llama(spec) => llama::encode(ops, spec, inputs),
    }
}
