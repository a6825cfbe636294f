//! Each description asks for exactly the tensors of transformers' own checkpoint of that
//! architecture, by name and shape (tests/fixtures/encoders, written by gen_encoders.py with
//! transformers' `save_pretrained`): an engine never needs a map from our names to theirs.

use simcse_core::architecture::Architecture;
use simcse_core::{ModelDir, Pooler};
use simcse_models::ops::{Activation, Attention, Linear, Norm, Ops, PositionIds, RelativePositionBias, Rope, Table};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// An engine that computes nothing and writes down every weight asked for.
#[derive(Default)]
struct Recorder {
    asked: BTreeMap<String, Vec<usize>>,
}

impl Recorder {
    fn ask(&mut self, name: String, dims: &[usize]) {
        let previous = self.asked.insert(name.clone(), dims.to_vec());
        assert!(previous.is_none_or(|p| p == dims), "`{name}` asked for with two shapes");
    }

    fn projection(&mut self, linear: &Linear) {
        self.ask(linear.weight(), &linear.weight_dims());
        if linear.bias {
            self.ask(linear.bias(), &[linear.outputs]);
        }
    }
}

impl Ops for Recorder {
    type Value = ();
    type Mask = ();
    type Error = std::convert::Infallible;

    fn share(&self, _: &()) {}
    fn embedding(&mut self, _: &(), table: &Table) -> Result<(), Self::Error> {
        self.ask(table.name.clone(), &table.dims());
        Ok(())
    }
    fn embedding_row(&mut self, table: &Table, row: usize) -> Result<(), Self::Error> {
        assert!(row < table.rows);
        self.embedding(&(), table)
    }
    fn position_embeddings(&mut self, _: &(), table: &Table, _: PositionIds) -> Result<(), Self::Error> {
        self.embedding(&(), table)
    }
    fn linear(&mut self, _: &(), linear: &Linear) -> Result<(), Self::Error> {
        self.projection(linear);
        Ok(())
    }
    fn linear_f32(&mut self, _: &(), linear: &Linear) -> Result<(), Self::Error> {
        self.projection(linear);
        Ok(())
    }
    fn layer_norm(&mut self, _: &(), norm: &Norm) -> Result<(), Self::Error> {
        self.ask(norm.weight(), &[norm.hidden]);
        self.ask(norm.bias(), &[norm.hidden]);
        Ok(())
    }
    fn rms_norm(&mut self, _: &(), norm: &Norm) -> Result<(), Self::Error> {
        self.ask(norm.weight(), &[norm.hidden]);
        Ok(())
    }
    fn rotary(&mut self, _: &(), rope: &Rope) {
        assert_eq!(rope.head_dim % 2, 0);
    }
    fn attention_mask(&mut self, _: &(), _: bool) {}
    fn add_position_bias(&mut self, _: (), _: &(), bias: &RelativePositionBias) -> Result<(), Self::Error> {
        self.ask(bias.table.name.clone(), &bias.table.dims());
        Ok(())
    }
    fn attention(&mut self, _: &(), _: &(), _: &(), _: &(), attention: &Attention) {
        assert_eq!(attention.hidden % attention.heads, 0);
        assert_eq!(attention.heads % attention.kv_heads, 0);
    }
    fn add(&mut self, _: &(), _: &()) {}
    fn mul(&mut self, _: &(), _: &()) {}
    fn div(&mut self, _: &(), _: &()) {}
    fn scale_f32(&mut self, _: &(), _: f32) {}
    fn activation(&mut self, _: &(), _: Activation) {}
    fn tanh(&mut self, _: &()) {}
    fn dropout(&mut self, _: &(), _: f64) {}
    fn to_f32(&mut self, _: &()) {}
    fn mask_to_f32(&mut self, _: &()) {}
    fn first_token(&mut self, _: &()) {}
    fn last_token(&mut self, _: &(), _: &()) {}
    fn sum_over_sequence(&mut self, _: &(), _: bool) {}
    fn cumsum_over_sequence(&mut self, _: &()) {}
    fn unsqueeze_last(&mut self, _: &()) {}
    fn split_last(&mut self, _: &(), sizes: &[usize]) -> Vec<()> {
        vec![(); sizes.len()]
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/encoders").join(name)
}

/// Tensor names and shapes from a safetensors file's header.
fn checkpoint_tensors(path: &Path) -> BTreeMap<String, Vec<usize>> {
    let bytes = std::fs::read(path).unwrap();
    let length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes[8..8 + length]).unwrap();
    header
        .into_iter()
        .filter(|(name, _)| name != "__metadata__")
        .map(|(name, info)| {
            let shape = info["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
            (name, shape)
        })
        .collect()
}

#[test]
fn descriptions_ask_for_exactly_transformers_weights() {
    for (model, pooler) in [("bert", Pooler::Cls), ("roberta", Pooler::Cls), ("mpnet", Pooler::Cls), ("gpt2", Pooler::Wavg), ("llama", Pooler::Last)] {
        let dir = fixture(model);
        let config = ModelDir::new(&dir).config().unwrap();
        let arch = Architecture::from_config(&config, &dir.join("config.json")).unwrap();
        let mut recorder = Recorder::default();
        let inputs = simcse_models::Inputs { ids: &(), mask: &(), token_types: arch.uses_token_types().then_some(&()) };
        let states = simcse_models::encode(&mut recorder, &arch, &inputs).unwrap();
        assert_eq!(states.len(), config.num_hidden_layers.unwrap() + 1, "{model}: one state per layer and the embeddings'");
        simcse_models::pool(&mut recorder, pooler, &states, &(), arch.hidden()).unwrap();
        let expected = checkpoint_tensors(&dir.join("model.safetensors"));
        assert_eq!(recorder.asked, expected, "{model}");
    }
}
