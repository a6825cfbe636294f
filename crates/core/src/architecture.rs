//! The encoder architectures (BERT, RoBERTa, MPNet, GPT-2, Llama) as the exporter and the trainer need
//! them: sizes, activation and special ids, read from a Hugging Face `config.json`.

use crate::model_dir::{ModelConfig, Pooler};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{}: {why}", path.display())]
pub struct ArchitectureError {
    pub path: PathBuf,
    pub why: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// BERT's `gelu`: x * Phi(x) with the exact erf.
    GeluErf,
    /// GPT-2's `gelu_new`: the tanh approximation.
    GeluTanh,
    Relu,
    /// Llama's `silu`: x * sigmoid(x) (its MLP's gate).
    Silu,
}

impl Activation {
    pub fn from_config(name: &str) -> Result<Activation, String> {
        match name {
            "gelu" => Ok(Activation::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Activation::GeluTanh),
            "relu" => Ok(Activation::Relu),
            "silu" | "swish" => Ok(Activation::Silu),
            other => Err(format!("activation `{other}` is not supported (gelu, gelu_new, relu, silu are)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BertSpec {
    pub roberta: bool,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub eps: f32,
    pub activation: Activation,
    /// RoBERTa numbers positions after this id (its padding index).
    pub pad_token_id: i64,
}

#[derive(Debug, Clone)]
pub struct Gpt2Spec {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub inner: usize,
    pub vocab: usize,
    pub positions: usize,
    pub eps: f32,
    pub activation: Activation,
}

/// MPNet as transformers' `MPNetModel`: BERT's post-LayerNorm blocks, RoBERTa's positions,
/// no token types, and one relative-position attention bias shared by every layer.
#[derive(Debug, Clone)]
pub struct MpnetSpec {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub eps: f32,
    pub activation: Activation,
    pub pad_token_id: i64,
    /// `relative_attention_num_buckets`: the bias table's rows (transformers reads the first 32).
    pub relative_buckets: usize,
}

/// A Llama-family decoder as transformers' `LlamaModel`: pre-RMSNorm blocks, rotary positions,
/// grouped-query causal attention and a gated (SwiGLU) MLP.
#[derive(Debug, Clone)]
pub struct LlamaSpec {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    /// `num_key_value_heads`: query heads share key/value heads in groups of heads / kv_heads.
    pub kv_heads: usize,
    pub head_dim: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub eps: f32,
    pub rope_theta: f64,
    pub activation: Activation,
    /// `attention_bias`: the query, key, value and output projections have biases.
    pub attention_bias: bool,
    /// `mlp_bias`: the gate, up and down projections have biases.
    pub mlp_bias: bool,
}

impl LlamaSpec {
    fn from_config(config: &ModelConfig, hidden: usize, heads: usize, activation: Activation) -> Result<LlamaSpec, String> {
        let extra = |field: &str| config.extra.get(field).filter(|v| !v.is_null());
        let whole = |field: &str| -> Result<Option<usize>, String> {
            extra(field)
                .map(|v| v.as_u64().map(|n| n as usize).ok_or_else(|| format!("config.json's {field} {v} is not a whole number")))
                .transpose()
        };
        let flag = |field: &str| extra(field).and_then(|v| v.as_bool()).unwrap_or(false);
        // transformers 5 keeps the scaling in `rope_parameters` too, as its `rope_type`.
        let rope_type = extra("rope_parameters").and_then(|p| p.get("rope_type")).and_then(|t| t.as_str());
        if let Some(scaling) = extra("rope_scaling").or(extra("rope_parameters").filter(|_| rope_type.is_some_and(|t| t != "default"))) {
            return Err(format!(
                "config.json has rope_scaling {scaling}: only plain rotary positions are supported (rope_scaling null)"
            ));
        }
        let rope_theta = match extra("rope_theta").or_else(|| extra("rope_parameters").and_then(|p| p.get("rope_theta"))) {
            None => 10_000.0,
            Some(v) => v.as_f64().filter(|t| *t > 1.0).ok_or_else(|| format!("config.json's rope_theta {v} is not a number above 1"))?,
        };
        let kv_heads = whole("num_key_value_heads")?.unwrap_or(heads);
        if kv_heads == 0 || heads % kv_heads != 0 {
            return Err(format!("num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}"));
        }
        let head_dim = whole("head_dim")?.unwrap_or(hidden / heads);
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(format!("head_dim {head_dim} is not an even number: rotary positions rotate pairs"));
        }
        let need = |value: Option<usize>, field: &str| value.ok_or_else(|| format!("config.json lacks `{field}`"));
        Ok(LlamaSpec {
            hidden,
            layers: need(config.num_hidden_layers, "num_hidden_layers")?,
            heads,
            kv_heads,
            head_dim,
            intermediate: need(config.intermediate_size, "intermediate_size")?,
            vocab: need(config.vocab_size, "vocab_size")?,
            max_positions: need(config.max_position_embeddings, "max_position_embeddings")?,
            eps: extra("rms_norm_eps").and_then(|v| v.as_f64()).unwrap_or(1e-6) as f32,
            rope_theta,
            activation,
            attention_bias: flag("attention_bias"),
            mlp_bias: flag("mlp_bias"),
        })
    }
}

/// The architectures this project handles, read from `config.json`.
#[derive(Debug, Clone)]
pub enum Architecture {
    Bert(BertSpec),
    Mpnet(MpnetSpec),
    Gpt2(Gpt2Spec),
    Llama(LlamaSpec),
}

impl Architecture {
    pub fn from_config(config: &ModelConfig, path: &Path) -> Result<Architecture, ArchitectureError> {
        let bad = |why: String| ArchitectureError { path: path.into(), why };
        let need = |value: Option<usize>, field: &str| value.ok_or_else(|| bad(format!("config.json lacks `{field}`")));
        let hidden = need(config.hidden_size, "hidden_size")?;
        let heads = need(config.num_attention_heads, "num_attention_heads")?;
        if config.model_type == "llama" {
            let activation = Activation::from_config(config.hidden_act.as_deref().unwrap_or("silu")).map_err(&bad)?;
            if heads == 0 {
                return Err(bad("config.json has num_attention_heads 0".into()));
            }
            let arch = Architecture::Llama(LlamaSpec::from_config(config, hidden, heads, activation).map_err(&bad)?);
            arch.check_sizes().map_err(bad)?;
            return Ok(arch);
        }
        if heads == 0 || hidden % heads != 0 {
            return Err(bad(format!("hidden_size {hidden} is not a multiple of num_attention_heads {heads}")));
        }
        let activation = |default: &str| {
            Activation::from_config(config.hidden_act.as_deref().unwrap_or(default)).map_err(&bad)
        };
        let arch = match config.model_type.as_str() {
            "bert" | "roberta" => Architecture::Bert(BertSpec {
                roberta: config.model_type == "roberta",
                hidden,
                layers: need(config.num_hidden_layers, "num_hidden_layers")?,
                heads,
                intermediate: need(config.intermediate_size, "intermediate_size")?,
                vocab: need(config.vocab_size, "vocab_size")?,
                max_positions: need(config.max_position_embeddings, "max_position_embeddings")?,
                type_vocab: config.type_vocab_size.unwrap_or(2),
                eps: config.layer_norm_eps.unwrap_or(1e-12) as f32,
                activation: activation("gelu")?,
                pad_token_id: config.pad_token_id.unwrap_or(if config.model_type == "roberta" { 1 } else { 0 }),
            }),
            "mpnet" => Architecture::Mpnet(MpnetSpec {
                hidden,
                layers: need(config.num_hidden_layers, "num_hidden_layers")?,
                heads,
                intermediate: need(config.intermediate_size, "intermediate_size")?,
                vocab: need(config.vocab_size, "vocab_size")?,
                max_positions: need(config.max_position_embeddings, "max_position_embeddings")?,
                eps: config.layer_norm_eps.unwrap_or(1e-12) as f32,
                activation: activation("gelu")?,
                pad_token_id: config.pad_token_id.unwrap_or(1),
                relative_buckets: match config.extra.get("relative_attention_num_buckets") {
                    None => 32,
                    Some(value) => value
                        .as_u64()
                        .filter(|&n| n >= 32)
                        .map(|n| n as usize)
                        .ok_or_else(|| bad(format!("config.json's relative_attention_num_buckets {value} is not a whole number of 32 or more (transformers always looks up 32 buckets)")))?,
                },
            }),
            "gpt2" => Architecture::Gpt2(Gpt2Spec {
                hidden,
                layers: need(config.num_hidden_layers, "n_layer")?,
                heads,
                inner: config.intermediate_size.unwrap_or(4 * hidden),
                vocab: need(config.vocab_size, "vocab_size")?,
                positions: need(config.max_position_embeddings, "n_positions")?,
                eps: config.layer_norm_eps.unwrap_or(1e-5) as f32,
                activation: activation("gelu_new")?,
            }),
            other => return Err(bad(format!("model_type `{other}` is not supported (bert, roberta, mpnet, gpt2, llama are)"))),
        };
        arch.check_sizes().map_err(bad)?;
        Ok(arch)
    }

    /// Every table and layer has something in it: a config with a zero size is not a model.
    fn check_sizes(&self) -> Result<(), String> {
        let sizes: Vec<(&str, usize)> = match self {
            Architecture::Bert(s) => vec![
                ("hidden_size", s.hidden),
                ("intermediate_size", s.intermediate),
                ("vocab_size", s.vocab),
                ("type_vocab_size", s.type_vocab),
            ],
            Architecture::Mpnet(s) => vec![("hidden_size", s.hidden), ("intermediate_size", s.intermediate), ("vocab_size", s.vocab)],
            Architecture::Gpt2(s) => vec![("n_embd", s.hidden), ("n_inner", s.inner), ("vocab_size", s.vocab)],
            Architecture::Llama(s) => vec![("hidden_size", s.hidden), ("intermediate_size", s.intermediate), ("vocab_size", s.vocab)],
        };
        if let Some((field, _)) = sizes.iter().find(|(_, size)| *size == 0) {
            return Err(format!("config.json has {field} 0"));
        }
        if self.max_tokens() == 0 {
            return Err("config.json's position table holds no token (max_position_embeddings / n_positions)".into());
        }
        Ok(())
    }

    pub fn hidden(&self) -> usize {
        match self {
            Architecture::Bert(s) => s.hidden,
            Architecture::Mpnet(s) => s.hidden,
            Architecture::Gpt2(s) => s.hidden,
            Architecture::Llama(s) => s.hidden,
        }
    }

    /// The longest input in tokens the position table holds (RoBERTa and MPNet number positions
    /// after their padding index, so two fewer than `max_position_embeddings`).
    pub fn max_tokens(&self) -> usize {
        match self {
            Architecture::Bert(s) if s.roberta => s.max_positions.saturating_sub(s.pad_token_id.max(0) as usize + 1),
            Architecture::Bert(s) => s.max_positions,
            Architecture::Mpnet(s) => s.max_positions.saturating_sub(s.pad_token_id.max(0) as usize + 1),
            Architecture::Gpt2(s) => s.positions,
            Architecture::Llama(s) => s.max_positions,
        }
    }

    /// An error naming the limit when `length` tokens would run past the position table.
    pub fn check_length(&self, length: usize, option: &str) -> Result<(), String> {
        let limit = self.max_tokens();
        if length > limit {
            let field = match self {
                Architecture::Gpt2(_) => "n_positions",
                _ => "max_position_embeddings",
            };
            return Err(format!(
                "{option} {length} is past the model's position table: it holds {limit} tokens ({field} in config.json)"
            ));
        }
        Ok(())
    }

    pub fn uses_token_types(&self) -> bool {
        matches!(self, Architecture::Bert(s) if !s.roberta)
    }

    /// Where the weights may sit under a prefix: SimCSE or HF head checkpoints keep one.
    pub fn weight_prefixes(&self) -> &'static [&'static str] {
        match self {
            Architecture::Bert(s) if s.roberta => &["roberta."],
            Architecture::Bert(_) => &["bert."],
            Architecture::Mpnet(_) => &["mpnet."],
            Architecture::Gpt2(_) => &["transformer."],
            Architecture::Llama(_) => &["model."],
        }
    }

    /// Whether attention only looks back (GPT-2, Llama).
    pub fn is_decoder(&self) -> bool {
        matches!(self, Architecture::Gpt2(_) | Architecture::Llama(_))
    }

    pub fn check_pooler(&self, pooler: Pooler) -> Result<(), String> {
        let name = match self {
            Architecture::Gpt2(_) => "GPT-2",
            _ => "Llama",
        };
        match pooler {
            Pooler::Cls | Pooler::ClsBeforePooler if self.is_decoder() => Err(format!(
                "pooler `{pooler}` takes the first token's state, which {name}'s causal attention keeps blind to \
                 the sentence; use avg or wavg, or last"
            )),
            Pooler::Last if !self.is_decoder() => Err(format!(
                "pooler `last` is for decoders, whose last token has seen the whole sentence; this model's \
                 attention is bidirectional: use cls, cls_before_pooler, avg, avg_top2 or avg_first_last"
            )),
            _ => Ok(()),
        }
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    fn llama(extra: serde_json::Value) -> Result<Architecture, ArchitectureError> {
        let mut config = serde_json::json!({
            "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 96, "vocab_size": 100, "max_position_embeddings": 128,
        });
        config.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        Architecture::from_config(&serde_json::from_value(config).unwrap(), Path::new("config.json"))
    }

    #[test]
    fn llama_defaults_are_transformers() {
        let Ok(Architecture::Llama(spec)) = llama(serde_json::json!({})) else { panic!("a Llama") };
        assert_eq!((spec.kv_heads, spec.head_dim, spec.rope_theta, spec.eps), (4, 16, 10_000.0, 1e-6));
        assert_eq!((spec.activation, spec.attention_bias, spec.mlp_bias), (Activation::Silu, false, false));
        // transformers 5 writes rope_theta inside rope_parameters.
        let Ok(Architecture::Llama(spec)) = llama(serde_json::json!({"rope_parameters": {"rope_theta": 1e5, "rope_type": "default"}}))
        else {
            panic!("a Llama")
        };
        assert_eq!(spec.rope_theta, 1e5);
    }

    #[test]
    fn llama_configs_we_cannot_run_are_refused() {
        let why = |extra| llama(extra).unwrap_err().why;
        assert!(why(serde_json::json!({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}})).contains("rope_scaling"));
        assert!(why(serde_json::json!({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e6}})).contains("yarn"));
        assert!(why(serde_json::json!({"num_key_value_heads": 3})).contains("num_key_value_heads 3"));
        assert!(why(serde_json::json!({"head_dim": 15})).contains("head_dim 15"));
        assert!(why(serde_json::json!({"hidden_act": "tanh"})).contains("activation `tanh`"));
        assert!(why(serde_json::json!({"num_attention_heads": 0})).contains("num_attention_heads 0"));
    }
}
