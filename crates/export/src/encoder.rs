//! The whole encoder graph: inputs, the model description run on graph nodes, the pooler,
//! normalization, outputs.

use crate::net::Net;
use crate::onnx::graph::{int, ints, Precision};
use crate::onnx::proto::{Dim, ElemType};
use crate::{ExportError, ExportOptions};
use simcse_core::architecture::Architecture;
use simcse_core::Pooler;
use simcse_models::{Inputs, Ops};

fn batch_seq() -> Vec<Dim> {
    vec![Dim::Named("batch".into()), Dim::Named("sequence".into())]
}

pub fn build(net: &mut Net, arch: &Architecture, pooler: Pooler, options: &ExportOptions, normalize: bool) -> Result<(), ExportError> {
    let ids = net.g.input("input_ids", ElemType::Int64, batch_seq());
    let mask = net.g.input("attention_mask", ElemType::Int64, batch_seq());
    let token_types = arch.uses_token_types().then(|| net.g.input("token_type_ids", ElemType::Int64, batch_seq()));
    let inputs = Inputs { ids: &ids, mask: &mask, token_types: token_types.as_ref() };
    let states = simcse_models::encode(net, arch, &inputs)?;
    let mut embedding = simcse_models::pool(net, pooler, &states, &mask, arch.hidden())?;
    if normalize {
        embedding = l2_normalize(net, &embedding);
    }
    let hidden = arch.hidden() as i64;
    net.g.output(&embedding, "sentence_embedding", ElemType::Float, vec![Dim::Named("batch".into()), Dim::Fixed(hidden)]);
    if options.last_hidden_state {
        let last = net.to_f32(states.last().expect("the embeddings' output at least"));
        let dims = vec![Dim::Named("batch".into()), Dim::Named("sequence".into()), Dim::Fixed(hidden)];
        net.g.output(&last, "last_hidden_state", ElemType::Float, dims);
    }
    Ok(())
}

/// x / max(||x||, 1e-12), as torch.nn.functional.normalize.
fn l2_normalize(net: &mut Net, x: &str) -> String {
    let norm = net.g.op("ReduceL2", &[x], vec![("axes", ints(&[-1])), ("keepdims", int(1))]);
    let eps = net.g.scalar(1e-12, Precision::F32);
    let norm = net.g.op("Max", &[&norm, &eps], vec![]);
    net.g.op("Div", &[x, &norm], vec![])
}
