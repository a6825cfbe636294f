//! What an exported encoder says about itself: the metadata `simcse export` writes into
//! `model.onnx` (pooler, normalization, maximum length, precision, ...), one typed record that
//! the exporter writes (`to_props`) and every reader reads (`read`, straight from the protobuf
//! without loading the graph), so that a key is spelled in one place.

use crate::model_dir::SOURCE_FINGERPRINT_KEY;
use crate::{Pooler, Precision};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The form of an exported graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Optimize {
    /// Standard ONNX ops only: ONNX Runtime, tract and any other runtime run it.
    None,
    /// ONNX Runtime's fused contrib ops (Attention, SkipLayerNormalization, BiasGelu/FastGelu,
    /// EmbedLayerNormalization).
    Ort,
}

impl std::fmt::Display for Optimize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Optimize::None => "none",
            Optimize::Ort => "ort",
        })
    }
}

impl std::str::FromStr for Optimize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "none" => Ok(Optimize::None),
            "ort" => Ok(Optimize::Ort),
            _ => Err(format!("`{text}` is not none or ort")),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EncoderMetadata {
    pub model_type: String,
    pub pooler: Pooler,
    pub normalize: bool,
    pub max_length: usize,
    pub hidden_size: usize,
    /// Whether the graph takes `token_type_ids` (BERT does, RoBERTa and GPT-2 do not).
    pub token_type_ids: bool,
    pub precision: Precision,
    pub optimize: Optimize,
    pub last_hidden_state: bool,
    /// The fingerprint of the weights it was exported from (`ModelDir::weights_fingerprint`),
    /// where the exporter recorded one.
    pub source_fingerprint: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{}: {why}", path.display())]
    Bad { path: PathBuf, why: String },
}

impl EncoderMetadata {
    /// The `metadata_props` of the ONNX model, in a fixed order.
    pub fn to_props(&self) -> Vec<(String, String)> {
        let mut props = vec![
            ("pooler", self.pooler.to_string()),
            ("normalize", self.normalize.to_string()),
            ("model_type", self.model_type.clone()),
            ("max_length", self.max_length.to_string()),
            ("hidden_size", self.hidden_size.to_string()),
            ("precision", self.precision.to_string()),
            ("optimize", self.optimize.to_string()),
            ("token_type_ids", self.token_type_ids.to_string()),
            ("last_hidden_state", self.last_hidden_state.to_string()),
        ];
        if let Some(fingerprint) = &self.source_fingerprint {
            props.push((SOURCE_FINGERPRINT_KEY, fingerprint.clone()));
        }
        props.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// The metadata of the ONNX model at `path`.
    pub fn read(path: &Path) -> Result<EncoderMetadata, MetadataError> {
        let io = |error| MetadataError::Io { path: path.into(), error };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: read-only map; only the top-level fields are parsed, the graph is skipped.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let bad = |why: String| MetadataError::Bad { path: path.into(), why };
        let props = metadata_props(&map).map_err(|why| bad(format!("not a readable ONNX model: {why}")))?;
        Self::from_props(&props).map_err(bad)
    }

    pub fn from_props(props: &BTreeMap<String, String>) -> Result<EncoderMetadata, String> {
        let get = |key: &str| {
            props.get(key).cloned().ok_or_else(|| format!("no `{key}` in the model's metadata: export it with `simcse export`"))
        };
        let number = |key: &str| get(key)?.parse::<usize>().map_err(|_| format!("metadata `{key}` is not a number"));
        let flag = |key: &str| match get(key)?.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(format!("metadata `{key}` is {other:?}, not true or false")),
        };
        let parsed = |key: &str, why: String| format!("metadata `{key}`: {why}");
        Ok(EncoderMetadata {
            model_type: get("model_type")?,
            pooler: get("pooler")?.parse().map_err(|why| parsed("pooler", why))?,
            normalize: flag("normalize")?,
            max_length: number("max_length")?,
            hidden_size: number("hidden_size")?,
            token_type_ids: flag("token_type_ids")?,
            precision: get("precision")?.parse().map_err(|why| parsed("precision", why))?,
            optimize: get("optimize")?.parse().map_err(|why| parsed("optimize", why))?,
            // Absent from graphs exported before it was recorded.
            last_hidden_state: props.get("last_hidden_state").is_some_and(|v| v == "true"),
            source_fingerprint: props.get(SOURCE_FINGERPRINT_KEY).cloned(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn props_read_back_as_written() {
        let metadata = EncoderMetadata {
            model_type: "bert".into(),
            pooler: Pooler::Avg,
            normalize: true,
            max_length: 256,
            hidden_size: 384,
            token_type_ids: true,
            precision: Precision::F16,
            optimize: Optimize::Ort,
            last_hidden_state: false,
            source_fingerprint: Some("abc".into()),
        };
        let props: BTreeMap<String, String> = metadata.to_props().into_iter().collect();
        assert_eq!(props["precision"], "fp16");
        assert_eq!(EncoderMetadata::from_props(&props).unwrap(), metadata);
    }

    #[test]
    fn a_bad_value_is_an_error_that_names_its_key() {
        let mut props: BTreeMap<String, String> = EncoderMetadata {
            model_type: "gpt2".into(),
            pooler: Pooler::Cls,
            normalize: false,
            max_length: 8,
            hidden_size: 4,
            token_type_ids: false,
            precision: Precision::F32,
            optimize: Optimize::None,
            last_hidden_state: true,
            source_fingerprint: None,
        }
        .to_props()
        .into_iter()
        .collect();
        props.insert("precision".into(), "fp8".into());
        let error = EncoderMetadata::from_props(&props).unwrap_err();
        assert!(error.contains("metadata `precision`") && error.contains("fp8"), "{error}");
        props.remove("max_length");
        assert!(EncoderMetadata::from_props(&props).unwrap_err().contains("no `max_length`"));
    }
}
