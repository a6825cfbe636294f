//! The model directory every command reads and writes (DESIGN.md, "The flow"): Hugging Face's
//! layout plus `simcse.json`, so that `transformers.AutoModel.from_pretrained(dir)` reads it too.

use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const SIMCSE_FILE: &str = "simcse.json";
/// PyTorch's weight file, which `simcse train` writes beside `model.safetensors` for SimCSE's
/// own scripts (`simcse_to_huggingface.py` reads it).
pub const PYTORCH_WEIGHTS_FILE: &str = "pytorch_model.bin";
pub const ONNX_FILE: &str = "model.onnx";
/// What `simcse train` keeps in its output directory about the run (see the trainer).
pub const RUN_FILE: &str = "training_run.json";
/// The ONNX metadata key of [`ModelDir::weights_fingerprint`].
pub const SOURCE_FINGERPRINT_KEY: &str = "source_sha256";

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

/// Every name a model directory written by simcse holds at its top level.
pub fn model_dir_entries() -> impl Iterator<Item = &'static str> {
    let companions = COMPANION_FILES.iter().map(|f| f.split('/').next().unwrap_or(f));
    [WEIGHTS_FILE, PYTORCH_WEIGHTS_FILE, SIMCSE_FILE, ONNX_FILE, "model.onnx.data"].into_iter().chain(companions)
}

/// The entries of `dir` a model directory does not hold (sorted; directories end in `/`).
pub fn foreign_entries(dir: &Path) -> Vec<String> {
    let known: Vec<&str> = model_dir_entries().collect();
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut foreign: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| !known.contains(&e.file_name().to_string_lossy().as_ref()))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() { format!("{name}/") } else { name }
        })
        .collect();
    foreign.sort();
    foreign
}

/// What a command needs of a model directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// `config.json` and the tokenizer (an encoder given its ONNX graph).
    Config,
    /// `config.json` and `model.safetensors` (export, training).
    Weights,
}

/// Why `path` is not a model directory, saying what it is instead and where a model is, or
/// `None` where it is one.
pub fn not_a_model_dir(path: &Path, needs: Needs) -> Option<String> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(_) => return Some("no such directory".into()),
    };
    if !meta.is_dir() {
        return Some(if path.extension().is_some_and(|e| e == "onnx") {
            "is an ONNX file; give the model directory it was exported from (and --onnx FILE where the graph lives elsewhere)".into()
        } else {
            "is a file, not a model directory".into()
        });
    }
    let has = |name: &str| path.join(name).exists();
    let show = |name: &str| path.join(name).display().to_string();
    if has(CONFIG_FILE) {
        if needs == Needs::Weights && !has(WEIGHTS_FILE) {
            return Some(if has(PYTORCH_WEIGHTS_FILE) || has("pytorch_model.bin.index.json") {
                format!("is a Hugging Face checkpoint (PyTorch weights, no {WEIGHTS_FILE}): convert it first with `simcse convert {} NEW_DIR`", path.display())
            } else {
                format!("has {CONFIG_FILE} but no {WEIGHTS_FILE}")
            });
        }
        return None;
    }
    if has(RUN_FILE) {
        return Some(describe_run(path));
    }
    if let Some(inner) = ["best", "final"].iter().find(|d| path.join(d).join(CONFIG_FILE).is_file()) {
        return Some(format!("is the output directory of an older `simcse train`; its model is {}", show(inner)));
    }
    if has("embeddings.safetensors") && has("sentences.jsonl") {
        return Some("is a search index (`simcse search --index`), not a model directory".into());
    }
    if has(WEIGHTS_FILE) || has(PYTORCH_WEIGHTS_FILE) {
        return Some(format!("has weights but no {CONFIG_FILE}: copy the checkpoint's config.json beside them"));
    }
    let models: Vec<String> = std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(CONFIG_FILE).is_file())
        .map(|e| e.path().display().to_string())
        .collect();
    if !models.is_empty() {
        let mut models = models;
        models.sort();
        return Some(format!("holds no model itself, but these model directories: {}", models.join(", ")));
    }
    Some(format!("has no {CONFIG_FILE}: not a model directory (`simcse convert` makes one from a checkpoint)"))
}

/// A training run's output directory that has no model (yet): what its run file says.
fn describe_run(path: &Path) -> String {
    let run: serde_json::Value = read_json(&path.join(RUN_FILE), "a training run").unwrap_or_default();
    let step = run.get("step").and_then(|s| s.as_i64()).unwrap_or(0);
    let status = run.get("status").and_then(|s| s.as_str()).unwrap_or("stopped");
    let checkpoint = run.get("checkpoints").and_then(|c| c.as_array()).and_then(|c| c.last()).and_then(|c| c.as_str());
    let mut text = format!(
        "is the output directory of a training run ({status} at step {step}) that has no model yet: the model is written \
         at the first STS-B dev evaluation, or at the end of a run without evaluation"
    );
    if let Some(checkpoint) = checkpoint {
        text.push_str(&format!("; its latest checkpoint {} is a model directory", path.join(checkpoint).display()));
    }
    text
}

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
    /// The last non-padding token's state, an end-of-sequence token appended to every
    /// sentence (decoder embedders: e5-mistral, gte-Qwen).
    Last,
}

impl Pooler {
    pub const ALL: [Pooler; 7] = [
        Pooler::Cls,
        Pooler::ClsBeforePooler,
        Pooler::Avg,
        Pooler::AvgTop2,
        Pooler::AvgFirstLast,
        Pooler::Wavg,
        Pooler::Last,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Pooler::Cls => "cls",
            Pooler::ClsBeforePooler => "cls_before_pooler",
            Pooler::Avg => "avg",
            Pooler::AvgTop2 => "avg_top2",
            Pooler::AvgFirstLast => "avg_first_last",
            Pooler::Wavg => "wavg",
            Pooler::Last => "last",
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
    /// Put before every sentence before tokenizing: multilingual-e5's `query: ` / `passage: `.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
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
    #[error("{path}: {why}")]
    NotAModelDir { path: PathBuf, why: String },
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

    /// The directory at `path`, checked to hold what `needs` asks; otherwise an error that
    /// says what `path` is and where a model is.
    pub fn open(path: impl Into<PathBuf>, needs: Needs) -> Result<ModelDir, ModelDirError> {
        let path = path.into();
        match not_a_model_dir(&path, needs) {
            Some(why) => Err(ModelDirError::NotAModelDir { path, why }),
            None => Ok(ModelDir { path }),
        }
    }

    /// A digest of what defines the encoder's function: `config.json` and `model.safetensors`
    /// (SHA-256 of both, hex). Exported graphs record it to tell when they are stale.
    pub fn weights_fingerprint(&self) -> Result<String, ModelDirError> {
        let mut hasher = sha2::Sha256::new();
        for path in [self.path.join(CONFIG_FILE), self.weights()] {
            let io = |error| ModelDirError::Io { path: path.clone(), error };
            let file = std::fs::File::open(&path).map_err(io)?;
            // SAFETY: read-only map, only hashed.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
            hasher.update((map.len() as u64).to_le_bytes());
            hasher.update(&map[..]);
        }
        Ok(hex(&hasher.finalize()))
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

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &'static str) -> Result<T, ModelDirError> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelDirError::Io { path: path.into(), error: source })?;
    serde_json::from_str(&text).map_err(|source| ModelDirError::Json { path: path.into(), what, error: source })
}
