//! What an exported encoder says about itself: the metadata `simcse export` writes into
//! `model.onnx` (pooler, normalization, maximum length, ...), read straight from the protobuf
//! without loading the graph.

use crate::RuntimeError;
use simcse_core::Pooler;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub model_type: String,
    pub pooler: Pooler,
    pub normalize: bool,
    pub max_length: usize,
    pub hidden_size: usize,
    /// Whether the graph takes `token_type_ids` (BERT does, RoBERTa and GPT-2 do not).
    pub token_type_ids: bool,
    pub precision: String,
    pub optimize: String,
    pub last_hidden_state: bool,
    /// The fingerprint of the weights it was exported from (`ModelDir::weights_fingerprint`),
    /// where the exporter recorded one.
    pub source_fingerprint: Option<String>,
}

impl ModelInfo {
    pub fn read(path: &Path) -> Result<ModelInfo, RuntimeError> {
        let file = std::fs::File::open(path).map_err(|source| RuntimeError::Io { path: path.into(), error: source })?;
        // SAFETY: read-only map; only the top-level fields are parsed, the graph is skipped.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| RuntimeError::Io { path: path.into(), error: source })?;
        let bad = |why: String| RuntimeError::BadModel { path: path.into(), why };
        let props = metadata_props(&map).map_err(|why| bad(format!("not a readable ONNX model: {why}")))?;
        let get = |key: &str| {
            props.get(key).cloned().ok_or_else(|| {
                bad(format!("no `{key}` in the model's metadata: export it with `simcse export`"))
            })
        };
        let number = |key: &str| get(key)?.parse::<usize>().map_err(|_| bad(format!("metadata `{key}` is not a number")));
        Ok(ModelInfo {
            model_type: get("model_type")?,
            pooler: get("pooler")?.parse().map_err(bad)?,
            normalize: get("normalize")? == "true",
            max_length: number("max_length")?,
            hidden_size: number("hidden_size")?,
            token_type_ids: get("token_type_ids")? == "true",
            precision: get("precision")?,
            optimize: get("optimize")?,
            last_hidden_state: props.get("last_hidden_state").is_some_and(|v| v == "true"),
            source_fingerprint: props.get(simcse_core::model_dir::SOURCE_FINGERPRINT_KEY).cloned(),
        })
    }
}

fn varint(buf: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*at).ok_or("truncated varint")?;
        *at += 1;
        value |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint longer than 10 bytes".into())
}

/// Calls `field(number, wire_type, bytes)` for each length-delimited field of a message and
/// skips the others.
fn fields<'a>(buf: &'a [u8], mut each: impl FnMut(u64, &'a [u8]) -> Result<(), String>) -> Result<(), String> {
    let mut at = 0;
    while at < buf.len() {
        let key = varint(buf, &mut at)?;
        match key & 7 {
            0 => {
                varint(buf, &mut at)?;
            }
            1 => at += 8,
            5 => at += 4,
            2 => {
                let len = varint(buf, &mut at)? as usize;
                let end = at.checked_add(len).filter(|&end| end <= buf.len()).ok_or("a field runs past the end")?;
                each(key >> 3, &buf[at..end])?;
                at = end;
            }
            wire => return Err(format!("unsupported wire type {wire}")),
        }
    }
    if at > buf.len() {
        return Err("the last field runs past the end".into());
    }
    Ok(())
}

/// `ModelProto.metadata_props` (field 14): key (1) / value (2) string pairs.
fn metadata_props(model: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let mut props = BTreeMap::new();
    fields(model, |number, bytes| {
        if number == 14 {
            let (mut key, mut value) = (String::new(), String::new());
            fields(bytes, |n, b| {
                let text = String::from_utf8_lossy(b).into_owned();
                match n {
                    1 => key = text,
                    2 => value = text,
                    _ => {}
                }
                Ok(())
            })?;
            props.insert(key, value);
        }
        Ok(())
    })?;
    Ok(props)
}
