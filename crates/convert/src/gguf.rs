//! GGUF (llama.cpp's model file, version 2 and 3) of a Llama-architecture decoder, written out
//! as a Hugging Face `LlamaForCausalLM` directory: the tensors dequantized to f32 under
//! transformers' names (llama.cpp's row permutation of the query and key projections undone),
//! `config.json` from the file's metadata and a byte-level BPE `tokenizer.json` from its
//! vocabulary and merges.
//!
//! Layout, little-endian: `GGUF`, u32 version, u64 tensor count, u64 metadata count; metadata
//! entries (string key, u32 value type, value; strings are a u64 length and UTF-8 bytes, arrays
//! a u32 element type, u64 length and the elements); tensor infos (string name, u32 dimension
//! count, u64 dimensions innermost first, u32 ggml type, u64 offset from the data start); the
//! data, starting at the next multiple of `general.alignment` (32 by default).

use crate::binary::{self, Cursor};
use crate::ggml::GgmlType;
use crate::ConvertError;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: usize = 32;
/// llama.cpp's token types (`llama_token_type`) that become special added tokens.
const CONTROL_TOKEN: i64 = 3;
const USER_DEFINED_TOKEN: i64 = 4;

/// True when the file starts with the GGUF magic.
pub fn looks_like(path: &Path) -> Result<bool, ConvertError> {
    binary::starts_with(path, MAGIC)
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Meta {
    Uint(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Array(Vec<Meta>),
}

#[derive(Debug, Clone)]
struct TensorInfo {
    /// Innermost first, as ggml orders them; the row-major shape is the reverse.
    dims: Vec<usize>,
    ggml_type: GgmlType,
    /// From the start of the file.
    offset: usize,
    bytes: usize,
}

impl TensorInfo {
    fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }
}

pub struct Gguf {
    path: PathBuf,
    data: Vec<u8>,
    pub metadata: BTreeMap<String, Meta>,
    tensors: BTreeMap<String, TensorInfo>,
}

/// The Llama sizes the metadata gives.
#[derive(Debug, Clone, Copy)]
struct LlamaSizes {
    layers: usize,
    hidden: usize,
    intermediate: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    vocab: usize,
    context: usize,
    rope_theta: f64,
    eps: f64,
}

impl Gguf {
    pub fn read(path: &Path) -> Result<Gguf, ConvertError> {
        let data = std::fs::read(path).map_err(|error| ConvertError::Io { path: path.into(), error })?;
        let mut c = Cursor { data: &data, at: 0, path, format: "GGUF" };
        if c.take(4, "magic")? != MAGIC {
            return Err(c.bad("it does not start with GGUF".into()));
        }
        let version = c.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(ConvertError::Unsupported { path: path.into(), why: format!("GGUF version {version} (versions 2 and 3 are read)") });
        }
        // A tensor info takes at least 28 bytes, a metadata entry 12.
        let tensor_count = c.count_u64("tensor count", 1 << 20, 28)?;
        let meta_count = c.count_u64("metadata count", 1 << 20, 12)?;
        let mut metadata = BTreeMap::new();
        for _ in 0..meta_count {
            let key = read_string(&mut c, "metadata key")?;
            let value_type = c.u32("metadata type")?;
            let value = read_value(&mut c, value_type, &key, 0)?;
            metadata.insert(key, value);
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(Meta::Uint(a)) if *a > 0 && a.is_power_of_two() && *a <= 1 << 20 => *a as usize,
            Some(other) => return Err(c.bad(format!("general.alignment is {other:?}, not a power of two"))),
        };
        let mut infos = Vec::with_capacity(tensor_count);
        for _ in 0..tensor_count {
            let name = read_string(&mut c, "tensor name")?;
            let n_dims = c.u32("tensor dimension count")? as usize;
            if n_dims == 0 || n_dims > 4 {
                return Err(c.bad(format!("tensor `{name}` has {n_dims} dimensions (ggml has 1 to 4)")));
            }
            let dims = (0..n_dims).map(|_| c.u64("tensor dimension").map(|d| d as usize)).collect::<Result<Vec<_>, _>>()?;
            let type_id = c.u32("tensor type")?;
            let ggml_type = GgmlType::from_id(type_id).map_err(|why| ConvertError::Unsupported { path: path.into(), why: format!("tensor `{name}`: {why}") })?;
            let offset = c.u64("tensor offset")? as usize;
            infos.push((name, dims, ggml_type, offset));
        }
        let data_start = c.at.div_ceil(alignment) * alignment;
        let mut tensors = BTreeMap::new();
        for (name, dims, ggml_type, offset) in infos {
            let elements = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
            let bytes = elements.and_then(|n| ggml_type.bytes_for(n)).ok_or_else(|| {
                damaged(path, format!("tensor `{name}` of {dims:?} {} values is not whole {} blocks", ggml_type.name(), ggml_type.name()))
            })?;
            let start = data_start.checked_add(offset).filter(|s| s.checked_add(bytes).is_some_and(|end| end <= data.len()));
            let Some(start) = start else {
                return Err(ConvertError::Truncated {
                    path: path.into(),
                    why: format!("tensor `{name}` ({bytes} bytes at data offset {offset}) runs past the end of the file ({} bytes)", data.len()),
                });
            };
            if tensors.insert(name.clone(), TensorInfo { dims, ggml_type, offset: start, bytes }).is_some() {
                return Err(damaged(path, format!("tensor `{name}` appears twice")));
            }
        }
        Ok(Gguf { path: path.into(), data, metadata, tensors })
    }

    /// One tensor as f32 values in row-major order, with its row-major shape.
    pub fn dequantized(&self, name: &str) -> Option<(Vec<usize>, Vec<f32>)> {
        let info = self.tensors.get(name)?;
        Some((info.shape(), info.ggml_type.dequantize(&self.data[info.offset..info.offset + info.bytes])))
    }

    /// Tensor names with their ggml type, in name order.
    pub fn tensor_types(&self) -> Vec<(String, &'static str)> {
        self.tensors.iter().map(|(name, info)| (name.clone(), info.ggml_type.name())).collect()
    }

    fn meta(&self, key: &str) -> Result<&Meta, ConvertError> {
        self.metadata.get(key).ok_or_else(|| damaged(&self.path, format!("its metadata has no `{key}`")))
    }

    fn uint(&self, key: &str) -> Result<usize, ConvertError> {
        match self.meta(key)? {
            Meta::Uint(v) => Ok(*v as usize),
            Meta::Int(v) if *v >= 0 => Ok(*v as usize),
            other => Err(damaged(&self.path, format!("`{key}` is {other:?}, not a count"))),
        }
    }

    fn float(&self, key: &str) -> Result<f64, ConvertError> {
        match self.meta(key)? {
            Meta::Float(v) => Ok(*v),
            other => Err(damaged(&self.path, format!("`{key}` is {other:?}, not a number"))),
        }
    }

    fn string(&self, key: &str) -> Result<&str, ConvertError> {
        match self.meta(key)? {
            Meta::Str(s) => Ok(s),
            other => Err(damaged(&self.path, format!("`{key}` is {other:?}, not a string"))),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<&str>, ConvertError> {
        let not = || damaged(&self.path, format!("`{key}` is not a list of strings"));
        let Meta::Array(items) = self.meta(key)? else { return Err(not()) };
        items.iter().map(|m| if let Meta::Str(s) = m { Ok(s.as_str()) } else { Err(not()) }).collect()
    }

    fn optional_id(&self, key: &str) -> Result<Option<usize>, ConvertError> {
        self.metadata.contains_key(key).then(|| self.uint(key)).transpose()
    }

    fn flag(&self, key: &str) -> Option<bool> {
        match self.metadata.get(key) {
            Some(Meta::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// A token the post-processor adds: its template piece, and its `special_tokens` entry.
    fn added_special(&self, token: &Option<String>, id_key: &str) -> Result<(Value, (String, Value)), ConvertError> {
        let Some(token) = token else { return Err(damaged(&self.path, format!("it asks to add a token but has no `{id_key}`"))) };
        let entry = json!({"id": token, "ids": [self.uint(id_key)?], "tokens": [token]});
        Ok((json!({"SpecialToken": {"id": token, "type_id": 0}}), (token.clone(), entry)))
    }

    fn unsupported(&self, why: String) -> ConvertError {
        ConvertError::Unsupported { path: self.path.clone(), why }
    }

    /// The architecture's sizes; only `llama` is read (the Llama family: SmolLM, Llama 2, …).
    fn llama_sizes(&self) -> Result<LlamaSizes, ConvertError> {
        let arch = self.string("general.architecture")?;
        if arch != "llama" {
            return Err(self.unsupported(format!("GGUF architecture `{arch}` (llama is read)")));
        }
        if let Some(Meta::Str(scaling)) = self.metadata.get("llama.rope.scaling.type") {
            if scaling != "none" {
                return Err(self.unsupported(format!("RoPE scaling `{scaling}` (only unscaled RoPE is read)")));
            }
        }
        let hidden = self.uint("llama.embedding_length")?;
        let heads = self.uint("llama.attention.head_count")?;
        let kv_heads = if self.metadata.contains_key("llama.attention.head_count_kv") { self.uint("llama.attention.head_count_kv")? } else { heads };
        if heads == 0 || kv_heads == 0 || hidden % heads != 0 || heads % kv_heads != 0 {
            return Err(damaged(&self.path, format!("{heads} heads ({kv_heads} key/value heads) do not divide the hidden size {hidden}")));
        }
        let head_dim = if self.metadata.contains_key("llama.rope.dimension_count") { self.uint("llama.rope.dimension_count")? } else { hidden / heads };
        if head_dim != hidden / heads {
            return Err(self.unsupported(format!("RoPE over {head_dim} of each head's {} dimensions (whole heads are read)", hidden / heads)));
        }
        let vocab = match self.metadata.contains_key("llama.vocab_size") {
            true => self.uint("llama.vocab_size")?,
            false => self.strings("tokenizer.ggml.tokens")?.len(),
        };
        Ok(LlamaSizes {
            layers: self.uint("llama.block_count")?,
            hidden,
            intermediate: self.uint("llama.feed_forward_length")?,
            heads,
            kv_heads,
            head_dim,
            vocab,
            context: self.uint("llama.context_length")?,
            rope_theta: if self.metadata.contains_key("llama.rope.freq_base") { self.float("llama.rope.freq_base")? } else { 10_000.0 },
            eps: self.float("llama.attention.layer_norm_rms_epsilon")?,
        })
    }

    /// Each tensor of the file under its `LlamaForCausalLM` name: (transformers' name, the
    /// file's name, row-major shape, heads whose query/key rows llama.cpp permuted).
    fn hf_tensors(&self, s: &LlamaSizes) -> Result<Vec<(String, String, Vec<usize>, Option<usize>)>, ConvertError> {
        let (h, kv) = (s.hidden, s.kv_heads * s.head_dim);
        let mut list = vec![("model.embed_tokens.weight".to_string(), "token_embd.weight".to_string(), vec![s.vocab, h], None)];
        let per_layer: [(&str, &str, [usize; 2], Option<usize>); 9] = [
            ("input_layernorm", "attn_norm", [h, 0], None),
            ("self_attn.q_proj", "attn_q", [h, h], Some(s.heads)),
            ("self_attn.k_proj", "attn_k", [kv, h], Some(s.kv_heads)),
            ("self_attn.v_proj", "attn_v", [kv, h], None),
            ("self_attn.o_proj", "attn_output", [h, h], None),
            ("post_attention_layernorm", "ffn_norm", [h, 0], None),
            ("mlp.gate_proj", "ffn_gate", [s.intermediate, h], None),
            ("mlp.up_proj", "ffn_up", [s.intermediate, h], None),
            ("mlp.down_proj", "ffn_down", [h, s.intermediate], None),
        ];
        for layer in 0..s.layers {
            for (module, file_module, [out, input], permuted) in per_layer {
                let shape = if input == 0 { vec![out] } else { vec![out, input] };
                list.push((format!("model.layers.{layer}.{module}.weight"), format!("blk.{layer}.{file_module}.weight"), shape, permuted));
            }
        }
        list.push(("model.norm.weight".into(), "output_norm.weight".into(), vec![h], None));
        if self.tensors.contains_key("output.weight") {
            list.push(("lm_head.weight".into(), "output.weight".into(), vec![s.vocab, h], None));
        }
        let described: std::collections::BTreeSet<&str> = list.iter().map(|(_, file_name, _, _)| file_name.as_str()).collect();
        if let Some(extra) = self.tensors.keys().find(|name| !described.contains(name.as_str())) {
            return Err(self.unsupported(format!("tensor `{extra}` has no counterpart in transformers' LlamaForCausalLM")));
        }
        for (_, file_name, shape, _) in &list {
            let info = self.tensors.get(file_name).ok_or_else(|| damaged(&self.path, format!("it has no tensor `{file_name}`")))?;
            if &info.shape() != shape {
                return Err(ConvertError::BadTensor {
                    path: self.path.clone(),
                    name: file_name.clone(),
                    why: format!("shape {:?} where the metadata's sizes make {shape:?}", info.shape()),
                });
            }
        }
        Ok(list)
    }

    fn config(&self, s: &LlamaSizes) -> Result<Value, ConvertError> {
        Ok(json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": s.hidden,
            "intermediate_size": s.intermediate,
            "num_hidden_layers": s.layers,
            "num_attention_heads": s.heads,
            "num_key_value_heads": s.kv_heads,
            "head_dim": s.head_dim,
            "vocab_size": s.vocab,
            "max_position_embeddings": s.context,
            "rms_norm_eps": s.eps,
            "rope_theta": s.rope_theta,
            "rope_scaling": null,
            "hidden_act": "silu",
            "attention_bias": false,
            "mlp_bias": false,
            "attention_dropout": 0.0,
            "initializer_range": 0.02,
            "tie_word_embeddings": !self.tensors.contains_key("output.weight"),
            "bos_token_id": self.optional_id("tokenizer.ggml.bos_token_id")?,
            "eos_token_id": self.optional_id("tokenizer.ggml.eos_token_id")?,
            "pad_token_id": self.optional_id("tokenizer.ggml.padding_token_id")?,
        }))
    }

    /// Writes config.json, model.safetensors (f32), tokenizer.json and its config into the
    /// empty directory `dir`.
    pub fn write_model_dir(&self, dir: &Path, progress: &mut dyn FnMut(u64, u64) -> bool) -> Result<(), ConvertError> {
        let sizes = self.llama_sizes()?;
        let described = self.hf_tensors(&sizes)?;
        let tokenizer = self.tokenizer()?;
        binary::write_json(dir, "config.json", &self.config(&sizes)?)?;
        binary::write_file(dir, "tokenizer.json", tokenizer.json.as_bytes())?;
        binary::write_json(dir, "tokenizer_config.json", &tokenizer.config(sizes.context))?;
        let tensors: Vec<(String, Vec<usize>)> = described.iter().map(|(name, _, shape, _)| (name.clone(), shape.clone())).collect();
        let values = |i: usize| {
            let (_, file_name, shape, permuted) = &described[i];
            let (_, values) = self.dequantized(file_name).expect("checked by hf_tensors");
            Ok(match permuted {
                Some(heads) => unpermute_rows(&values, shape[0], shape[1], *heads),
                None => values,
            })
        };
        binary::write_f32_safetensors(dir, &self.path, &tensors, &values, progress)
    }

    /// A byte-level BPE tokenizer from `tokenizer.ggml.*`, pre-tokenizing as llama.cpp does for
    /// the file's `tokenizer.ggml.pre`.
    fn tokenizer(&self) -> Result<BpeTokenizer, ConvertError> {
        let model = self.string("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(self.unsupported(format!("tokenizer model `{model}` (the byte-level BPE `gpt2` is read)")));
        }
        let pre = if self.metadata.contains_key("tokenizer.ggml.pre") { self.string("tokenizer.ggml.pre")? } else { "default" };
        let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
        let pre_tokenizer = match pre {
            // llama.cpp's GPT-2 regex, which ByteLevel's own is.
            "default" | "gpt2" | "mpt" | "olmo" | "jais" => byte_level.clone(),
            // The same after splitting off every digit.
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva" => {
                json!({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level]})
            }
            other => return Err(self.unsupported(format!("pre-tokenizer `{other}` (tokenizer.ggml.pre; gpt2 and smollm families are read)"))),
        };
        let tokens = self.strings("tokenizer.ggml.tokens")?;
        let merges = self.strings("tokenizer.ggml.merges")?;
        let types: Vec<i64> = match self.metadata.get("tokenizer.ggml.token_type") {
            Some(Meta::Array(items)) => items.iter().map(|m| if let Meta::Int(t) = m { *t } else { 1 }).collect(),
            _ => vec![1; tokens.len()],
        };
        let name_of = |key: &str| -> Result<Option<String>, ConvertError> {
            match self.optional_id(key)? {
                Some(id) => tokens.get(id).map(|t| Some(t.to_string())).ok_or_else(|| damaged(&self.path, format!("`{key}` {id} is not a token id"))),
                None => Ok(None),
            }
        };
        let bos = name_of("tokenizer.ggml.bos_token_id")?;
        let eos = name_of("tokenizer.ggml.eos_token_id")?;
        let add_bos = self.flag("tokenizer.ggml.add_bos_token").unwrap_or(false);
        let add_eos = self.flag("tokenizer.ggml.add_eos_token").unwrap_or(false);
        let added: Vec<Value> = tokens
            .iter()
            .zip(&types)
            .enumerate()
            .filter(|(_, (_, t))| **t == CONTROL_TOKEN || **t == USER_DEFINED_TOKEN)
            .map(|(id, (token, t))| {
                json!({"id": id, "content": token, "single_word": false, "lstrip": false, "rstrip": false,
                       "normalized": *t == USER_DEFINED_TOKEN, "special": *t == CONTROL_TOKEN})
            })
            .collect();
        let vocab: serde_json::Map<String, Value> = tokens.iter().enumerate().map(|(id, t)| (t.to_string(), json!(id))).collect();
        let bos_added = if add_bos { Some(self.added_special(&bos, "tokenizer.ggml.bos_token_id")?) } else { None };
        let eos_added = if add_eos { Some(self.added_special(&eos, "tokenizer.ggml.eos_token_id")?) } else { None };
        let mut single: Vec<Value> = Vec::new();
        let mut special_tokens = serde_json::Map::new();
        single.extend(bos_added.iter().map(|(piece, _)| piece.clone()));
        single.push(json!({"Sequence": {"id": "A", "type_id": 0}}));
        single.extend(eos_added.iter().map(|(piece, _)| piece.clone()));
        for (token, entry) in bos_added.into_iter().chain(eos_added).map(|(_, special)| special) {
            special_tokens.insert(token, entry);
        }
        let post_processor = if add_bos || add_eos {
            json!({"type": "TemplateProcessing", "single": single, "pair": single, "special_tokens": special_tokens})
        } else {
            json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true})
        };
        let tokenizer = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": post_processor,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {
                "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": vocab, "merges": merges,
            },
        });
        let json = serde_json::to_string(&tokenizer).expect("serializable");
        // What we write must load: a failure here is ours (or a vocabulary that contradicts itself).
        json.parse::<tokenizers::Tokenizer>().map_err(|e| self.unsupported(format!("the tokenizer built from it does not load: {e}")))?;
        Ok(BpeTokenizer {
            json,
            bos,
            eos,
            unk: name_of("tokenizer.ggml.unknown_token_id")?,
            pad: name_of("tokenizer.ggml.padding_token_id")?,
            add_bos,
            add_eos,
        })
    }
}

struct BpeTokenizer {
    json: String,
    bos: Option<String>,
    eos: Option<String>,
    unk: Option<String>,
    pad: Option<String>,
    add_bos: bool,
    add_eos: bool,
}

impl BpeTokenizer {
    fn config(&self, max_length: usize) -> Value {
        json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": self.bos, "eos_token": self.eos, "unk_token": self.unk, "pad_token": self.pad,
            "add_bos_token": self.add_bos, "add_eos_token": self.add_eos,
            "model_max_length": max_length,
            "clean_up_tokenization_spaces": false,
        })
    }
}

/// llama.cpp stores each head's query (key) rows interleaved, (0, d/2, 1, d/2 + 1, …), for its
/// RoPE; transformers rotates halves. Row h·d + 2b + a of the file is row h·d + a·d/2 + b.
fn unpermute_rows(values: &[f32], rows: usize, cols: usize, heads: usize) -> Vec<f32> {
    let head_dim = rows / heads;
    let half = head_dim / 2;
    let mut out = vec![0f32; values.len()];
    for h in 0..heads {
        for a in 0..2 {
            for b in 0..half {
                let from = h * head_dim + 2 * b + a;
                let to = h * head_dim + a * half + b;
                out[to * cols..(to + 1) * cols].copy_from_slice(&values[from * cols..(from + 1) * cols]);
            }
        }
    }
    out
}

fn damaged(path: &Path, why: String) -> ConvertError {
    binary::damaged(path, "GGUF", why)
}

fn read_string(c: &mut Cursor, what: &str) -> Result<String, ConvertError> {
    let len = c.count_u64(what, usize::MAX, 1)?;
    let bytes = c.take(len, what)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| c.bad(format!("a {what} is not UTF-8")))
}

/// A metadata value of GGUF's type `value_type`; arrays nest at most a few deep.
fn read_value(c: &mut Cursor, value_type: u32, key: &str, depth: usize) -> Result<Meta, ConvertError> {
    let what = "metadata value";
    Ok(match value_type {
        0 => Meta::Uint(c.u8(what)? as u64),
        1 => Meta::Int(c.u8(what)? as i8 as i64),
        2 => Meta::Uint(c.u16(what)? as u64),
        3 => Meta::Int(c.u16(what)? as i16 as i64),
        4 => Meta::Uint(c.u32(what)? as u64),
        5 => Meta::Int(c.u32(what)? as i32 as i64),
        6 => Meta::Float(c.f32(what)? as f64),
        7 => Meta::Bool(c.u8(what)? != 0),
        8 => Meta::Str(read_string(c, what)?),
        9 if depth < 4 => {
            let element_type = c.u32("array element type")?;
            let len = c.count_u64("array length", usize::MAX, 1)?;
            Meta::Array((0..len).map(|_| read_value(c, element_type, key, depth + 1)).collect::<Result<_, _>>()?)
        }
        10 => Meta::Uint(c.u64(what)?),
        11 => Meta::Int(c.u64(what)? as i64),
        12 => Meta::Float(f64::from_bits(c.u64(what)?)),
        other => return Err(c.bad(format!("metadata `{key}` has value type {other} (0 to 12 are GGUF's)"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// llama.cpp's `permute` (convert_hf_to_gguf.py), to check that ours undoes it.
    fn permute(values: &[f32], rows: usize, cols: usize, heads: usize) -> Vec<f32> {
        let half = rows / heads / 2;
        let mut out = vec![0f32; values.len()];
        for h in 0..heads {
            for a in 0..2 {
                for b in 0..half {
                    let (hf, file) = (h * 2 * half + a * half + b, h * 2 * half + 2 * b + a);
                    out[file * cols..(file + 1) * cols].copy_from_slice(&values[hf * cols..(hf + 1) * cols]);
                }
            }
        }
        out
    }

    /// A GGUF v3 file with `general.architecture` and one 32-value tensor of ggml type `type_id`.
    fn tiny_gguf(version: u32, type_id: u32, data: &[u8]) -> Vec<u8> {
        let string = |s: &str| [(s.len() as u64).to_le_bytes().to_vec(), s.as_bytes().to_vec()].concat();
        let mut out = b"GGUF".to_vec();
        out.extend(version.to_le_bytes());
        out.extend(1u64.to_le_bytes());
        out.extend(1u64.to_le_bytes());
        out.extend(string("general.architecture"));
        out.extend(8u32.to_le_bytes());
        out.extend(string("llama"));
        out.extend(string("t"));
        out.extend(1u32.to_le_bytes());
        out.extend(32u64.to_le_bytes());
        out.extend(type_id.to_le_bytes());
        out.extend(0u64.to_le_bytes());
        out.resize(out.len().div_ceil(32) * 32, 0);
        out.extend(data);
        out
    }

    fn read_bytes(bytes: &[u8]) -> Result<Gguf, ConvertError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.gguf");
        std::fs::write(&path, bytes).unwrap();
        Gguf::read(&path)
    }

    #[test]
    fn a_tiny_file_reads_and_damage_is_named() {
        let values: Vec<u8> = (0..32).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let file = read_bytes(&tiny_gguf(3, 0, &values)).unwrap();
        assert_eq!(file.metadata["general.architecture"], Meta::Str("llama".into()));
        assert_eq!(file.dequantized("t").unwrap(), (vec![32], (0..32).map(|i| i as f32).collect()));

        let truncated = tiny_gguf(3, 0, &values[..100]);
        assert!(matches!(read_bytes(&truncated), Err(ConvertError::Truncated { .. })));
        let error = read_bytes(&tiny_gguf(3, 12, &[0; 144])).err().unwrap().to_string();
        assert!(error.contains("Q4_K is not supported"), "{error}");
        let error = read_bytes(&tiny_gguf(1, 0, &values)).err().unwrap().to_string();
        assert!(error.contains("GGUF version 1"), "{error}");
        // A count that would need more bytes than the file has is refused before allocating.
        let mut absurd = tiny_gguf(3, 0, &values);
        absurd[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(read_bytes(&absurd).err().unwrap().to_string().contains("tensor count"));
    }

    #[test]
    fn unpermute_undoes_llama_cpp_permute() {
        let (rows, cols, heads) = (12, 2, 3);
        let original: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
        let permuted = permute(&original, rows, cols, heads);
        assert_ne!(permuted, original);
        // Head 0 of 4 rows: file rows (0, 2, 1, 3).
        assert_eq!(&permuted[..8], &[0.0, 1.0, 4.0, 5.0, 2.0, 3.0, 6.0, 7.0]);
        assert_eq!(unpermute_rows(&permuted, rows, cols, heads), original);
    }
}
