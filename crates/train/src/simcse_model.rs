//! SimCSE's `BertForCL` / `RobertaForCL` (and the seed's GPT-2 variant): an encoder, the pooler,
//! SimCSE's MLP over the pooled vector for the `cls` pooler (stored as `pooler.dense`, as
//! `simcse_to_huggingface.py` renames it), and the optional MLM head.

use super::mlm::{self, MlmHead};
use super::model::{init_like_huggingface, load_weights_with, Encoder, LoadSpec, Compute};
use simcse_core::architecture::Architecture;
use simcse_core::Pooler;
use std::path::Path;
use tch::{nn, Tensor};

pub struct SimcseModel {
    pub vs: nn::VarStore,
    pub arch: Architecture,
    pub encoder: Encoder,
    pub pooler: Pooler,
    /// `--mlp-only-train`: the MLP is used in training, not in evaluation.
    pub mlp_only_train: bool,
    pub mlm: Option<MlmHead>,
}

/// One padded batch on the device.
pub struct Inputs {
    pub ids: Tensor,
    pub mask: Tensor,
    pub token_types: Tensor,
}

/// `--do-mlm` needs BERT's or RoBERTa's masked-language-model head.
pub fn check_mlm(arch: &Architecture) -> anyhow::Result<()> {
    match arch {
        Architecture::Bert(_) => Ok(()),
        Architecture::Gpt2(_) | Architecture::Llama(_) => {
            anyhow::bail!("--do-mlm: a decoder has no masked-language-model head; train it without MLM")
        }
        Architecture::Mpnet(_) => anyhow::bail!("--do-mlm is not supported for MPNet (its MLM head is not written yet); train it without MLM"),
    }
}

impl SimcseModel {
    /// A model whose variables are all freshly initialized (see `load` / `init_random`).
    pub fn new(device: tch::Device, arch: &Architecture, pooler: Pooler, mlp_only_train: bool, do_mlm: bool) -> anyhow::Result<SimcseModel> {
        arch.check_pooler(pooler).map_err(anyhow::Error::msg)?;
        let vs = nn::VarStore::new(device);
        let encoder = Encoder::new(&vs.root(), arch, pooler == Pooler::Cls);
        let mlm = match (do_mlm, arch) {
            (false, _) => None,
            (true, Architecture::Bert(spec)) => Some(MlmHead::new(&vs.root(), spec)),
            (true, other) => return Err(check_mlm(other).expect_err("only BERT and RoBERTa have an MLM head")),
        };
        Ok(SimcseModel { vs, arch: arch.clone(), encoder, pooler, mlp_only_train, mlm })
    }

    fn roberta(&self) -> bool {
        matches!(&self.arch, Architecture::Bert(s) if s.roberta)
    }

    /// Loads the encoder from a model directory; SimCSE's MLP starts fresh (as in SimCSE, where
    /// `mlp.*` is not in a pretrained checkpoint), the MLM head from the checkpoint's where it
    /// has one. Returns the variables that were initialized instead of loaded.
    pub fn load(&mut self, weights: &Path) -> anyhow::Result<Vec<String>> {
        let roberta = self.roberta();
        let alias = move |name: &str| mlm::checkpoint_name(name, roberta);
        let spec = LoadSpec { prefixes: self.arch.weight_prefixes(), optional: &["pooler.", "lm_head."], alias: &alias };
        let mut fresh = load_weights_with(&mut self.vs, weights, &spec)?;
        // SimCSE's MLP is always new: it replaces BERT's pooler in BertForCL.
        fresh.extend(self.vs.variables().into_keys().filter(|n| n.starts_with("pooler.")));
        fresh.sort();
        fresh.dedup();
        // A checkpoint's MLM decoder is tied to the word embeddings and stored once: where the
        // rest of its head was loaded, the decoder starts as a copy of the embeddings.
        let head: Vec<String> = self.vs.variables().into_keys().filter(|n| n.starts_with("lm_head.")).collect();
        let head_loaded = head.iter().any(|n| !fresh.contains(n));
        if head_loaded && fresh.iter().any(|n| n == "lm_head.decoder.weight") {
            let variables = self.vs.variables();
            tch::no_grad(|| variables["lm_head.decoder.weight"].shallow_clone().copy_(&variables["embeddings.word_embeddings.weight"]));
            fresh.retain(|n| n != "lm_head.decoder.weight");
        }
        init_like_huggingface(&self.vs, &fresh, None);
        Ok(fresh)
    }

    /// Hugging Face's initialization for every variable (`--init random`).
    pub fn init_random(&mut self) {
        let names: Vec<String> = self.vs.variables().into_keys().collect();
        let layers = match &self.arch {
            Architecture::Gpt2(s) => Some(s.layers),
            _ => None,
        };
        init_like_huggingface(&self.vs, &names, layers);
    }

    pub fn set_precision(&mut self, precision: Compute) {
        self.encoder.set_precision(precision);
    }

    /// Sentence embeddings [batch, hidden] in f32. In training, `cls` is [CLS] through the MLP;
    /// in evaluation the MLP is left out under `--mlp-only-train`.
    pub fn embed(&self, inputs: &Inputs, train: bool) -> Tensor {
        let types = self.arch.uses_token_types().then_some(&inputs.token_types);
        let states = self.encoder.forward(&inputs.ids, &inputs.mask, types, train);
        let pooler = if self.pooler == Pooler::Cls && !train && self.mlp_only_train { Pooler::ClsBeforePooler } else { self.pooler };
        self.encoder.pool(pooler, &states, &inputs.mask).to_kind(tch::Kind::Float)
    }

    /// The pooler a saved model is used with: `cls` means [CLS] through the MLP (saved as the
    /// pooler), which `--mlp-only-train` leaves out.
    pub fn inference_pooler(&self) -> Pooler {
        if self.pooler == Pooler::Cls && self.mlp_only_train {
            Pooler::ClsBeforePooler
        } else {
            self.pooler
        }
    }

    /// MLM logits for masked inputs (a separate forward pass, as in SimCSE's cl_forward).
    pub fn mlm_logits(&self, masked: &Inputs) -> Option<Tensor> {
        let head = self.mlm.as_ref()?;
        let types = self.arch.uses_token_types().then_some(&masked.token_types);
        let states = self.encoder.forward(&masked.ids, &masked.mask, types, true);
        Some(head.forward(states.last().unwrap(), self.encoder.precision()))
    }

    /// Every variable, all trained, sorted by name: the order the optimizer's state is saved in.
    pub fn named_variables(&self) -> Vec<(String, Tensor)> {
        let mut params: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        params
    }

    /// The variables a saved model directory holds: the encoder and the pooler, not the MLM head.
    pub fn model_tensors(&self) -> Vec<(String, Tensor)> {
        let mut tensors: Vec<(String, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .filter(|(n, _)| !n.starts_with("lm_head."))
            .map(|(n, t)| (n, t.to_device(tch::Device::Cpu).to_kind(tch::Kind::Float)))
            .collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        tensors
    }
}
