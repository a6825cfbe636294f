//! Architectures to train from random weights (`--init random --config NAME`), with the shapes
//! of the Hugging Face checkpoints of the same names and the tokenizer's vocabulary size.

use anyhow::bail;
use serde_json::{json, Value};

pub const PRESETS: &[&str] = &["bert-base", "bert-large", "roberta-base", "gpt2", "bert-tiny"];

pub fn config(name: &str, vocab_size: usize) -> anyhow::Result<Value> {
    let bert = |hidden: usize, layers: usize, heads: usize| {
        json!({
            "model_type": "bert", "architectures": ["BertModel"], "vocab_size": vocab_size,
            "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
            "intermediate_size": 4 * hidden, "max_position_embeddings": 512, "type_vocab_size": 2,
            "layer_norm_eps": 1e-12, "hidden_act": "gelu", "pad_token_id": 0,
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
        })
    };
    Ok(match name {
        "bert-base" => bert(768, 12, 12),
        "bert-large" => bert(1024, 24, 16),
        "bert-tiny" => bert(128, 2, 2),
        "roberta-base" => json!({
            "model_type": "roberta", "architectures": ["RobertaModel"], "vocab_size": vocab_size,
            "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
            "max_position_embeddings": 514, "type_vocab_size": 1, "layer_norm_eps": 1e-5, "hidden_act": "gelu",
            "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
        }),
        "gpt2" => json!({
            "model_type": "gpt2", "architectures": ["GPT2Model"], "vocab_size": vocab_size,
            "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024, "layer_norm_epsilon": 1e-5,
            "activation_function": "gelu_new", "initializer_range": 0.02,
        }),
        other => bail!("unknown --config `{other}`; one of {}", PRESETS.join(", ")),
    })
}
