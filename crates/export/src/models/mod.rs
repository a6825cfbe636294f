//! From a Hugging Face config to the encoder graph with its pooler.

pub mod bert;
pub mod gpt2;
pub mod layers;
pub mod pooling;

use crate::onnx::proto::{Dim, ElemType};
use crate::{ExportError, ExportOptions};
use layers::Net;
use simcse_core::architecture::Architecture;
use simcse_core::Pooler;

fn batch_seq() -> Vec<Dim> {
    vec![Dim::Named("batch".into()), Dim::Named("sequence".into())]
}

/// Builds the whole graph: inputs, encoder, pooler, normalization, outputs.
pub fn build(net: &mut Net, arch: &Architecture, pooler: Pooler, options: &ExportOptions, normalize: bool) -> Result<(), ExportError> {
    let ids = net.g.input("input_ids", ElemType::Int64, batch_seq());
    let mask = net.g.input("attention_mask", ElemType::Int64, batch_seq());
    let states = match arch {
        Architecture::Bert(spec) => {
            let token_types = (!spec.roberta).then(|| net.g.input("token_type_ids", ElemType::Int64, batch_seq()));
            bert::encode(net, spec, &bert::Inputs { ids: ids.clone(), mask: mask.clone(), token_types })?
        }
        Architecture::Gpt2(spec) => gpt2::encode(net, spec, &ids, &mask)?,
    };
    let mask_f32 = net.mask_f32(&mask);
    let input = pooling::PoolInput { states: &states, mask: &mask_f32, hidden: arch.hidden() };
    let mut embedding = pooling::pool(net, pooler, &input)?;
    if normalize {
        embedding = pooling::l2_normalize(net, &embedding);
    }
    let hidden = arch.hidden() as i64;
    net.g.output(&embedding, "sentence_embedding", ElemType::Float, vec![Dim::Named("batch".into()), Dim::Fixed(hidden)]);
    if options.last_hidden_state {
        let last = net.to_f32(states.last().unwrap());
        let dims = vec![Dim::Named("batch".into()), Dim::Named("sequence".into()), Dim::Fixed(hidden)];
        net.g.output(&last, "last_hidden_state", ElemType::Float, dims);
    }
    Ok(())
}
