//! The model directory every command reads and writes (DESIGN.md, "The flow"): Hugging Face's
//! layout plus `simcse.json`, so that `transformers.AutoModel.from_pretrained(dir)` reads it too.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const SIMCSE_FILE: &str = "simcse.json";

/// Files besides the weights that make a model directory usable: the HF config, every
/// tokenizer format we read (WordPiece, BPE, SentencePiece, `tokenizer.json`), and the
/// sentence-transformers description of the pooling, which tells us the intended pooler.
pub const COMPANION_FILES: &[&str] = &[
    CONFIG_FILE,
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
];

/// How token states become one sentence vector: SimCSE's poolers, plus GPT-2's weighted mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooler {
    /// The [CLS] state through the pooler's dense + tanh.
    Cls,
    /// The [CLS] state as it is.
    ClsBeforePooler,
    /// Mean over non-padding tokens of the last layer.
    Avg,
    /// Mean over tokens of the mean of the last two layers.
    AvgTop2,
    /// Mean over tokens of the mean of the first and last layers.
    AvgFirstLast,
    /// Position-weighted mean (w_i proportional to i), for GPT-2.
    Wavg,
}

impl Pooler {
    pub const ALL: [Pooler; 6] = [
        Pooler::Cls,
        Pooler::ClsBeforePooler,
        Pooler::Avg,
        Pooler::AvgTop2,
        Pooler::AvgFirstLast,
        Pooler::Wavg,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Pooler::Cls => "cls",
            Pooler::ClsBeforePooler => "cls_before_pooler",
            Pooler::Avg => "avg",
            Pooler::AvgTop2 => "avg_top2",
            Pooler::AvgFirstLast => "avg_first_last",
            Pooler::Wavg => "wavg",
        }
    }
}

impl fmt::Display for Pooler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Pooler {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pooler::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            let names: Vec<_> = Pooler::ALL.iter().map(|p| p.name()).collect();
            format!("unknown pooler `{s}`; expected one of {}", names.join(", "))
        })
    }
}

/// The parts of Hugging Face's `config.json` this project reads. BERT/RoBERTa and GPT-2 name
/// the same sizes differently; the aliases accept both. Everything else is kept in `extra`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelConfig {
    pub model_type: String,
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(alias = "n_embd")]
    pub hidden_size: Option<usize>,
    #[serde(alias = "n_layer")]
    pub num_hidden_layers: Option<usize>,
    #[serde(alias = "n_head")]
    pub num_attention_heads: Option<usize>,
    #[serde(alias = "n_inner")]
    pub intermediate_size: Option<usize>,
    pub vocab_size: Option<usize>,
    #[serde(alias = "n_positions")]
    pub max_position_embeddings: Option<usize>,
    pub type_vocab_size: Option<usize>,
    #[serde(alias = "layer_norm_epsilon")]
    pub layer_norm_eps: Option<f64>,
    #[serde(alias = "activation_function")]
    pub hidden_act: Option<String>,
    pub pad_token_id: Option<i64>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// What the encoder needs beyond Hugging Face's files (`simcse.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SimcseConfig {
    pub pooler: Pooler,
    pub max_seq_length: usize,
    #[serde(default)]
    pub normalize: bool,
    /// What made this directory, oldest first: each command appends one entry.
    #[serde(default)]
    pub provenance: Vec<serde_json::Value>,
}

/// SimCSE's tool truncates at 128 tokens.
pub const DEFAULT_MAX_SEQ_LENGTH: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum ModelDirError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}: not valid JSON for {what}: {error}")]
    Json { path: PathBuf, what: &'static str, error: serde_json::Error },
}

/// A model directory on disk.
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub path: PathBuf,
}

impl ModelDir {
    pub fn new(path: impl Into<PathBuf>) -> ModelDir {
        ModelDir { path: path.into() }
    }

    pub fn weights(&self) -> PathBuf {
        self.path.join(WEIGHTS_FILE)
    }

    pub fn config(&self) -> Result<ModelConfig, ModelDirError> {
        read_json(&self.path.join(CONFIG_FILE), "a Hugging Face config")
    }

    /// `simcse.json`, or `None` where the directory has none.
    pub fn simcse(&self) -> Result<Option<SimcseConfig>, ModelDirError> {
        let path = self.path.join(SIMCSE_FILE);
        if !path.exists() {
            return Ok(None);
        }
        read_json(&path, "simcse.json").map(Some)
    }
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &'static str) -> Result<T, ModelDirError> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelDirError::Io { path: path.into(), error: source })?;
    serde_json::from_str(&text).map_err(|source| ModelDirError::Json { path: path.into(), what, error: source })
}
