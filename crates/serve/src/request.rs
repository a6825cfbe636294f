//! The request bodies, as text-embeddings-inference and OpenAI define them.

use crate::infer::Input;
use serde::de::Error;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use simcse_core::tokenize::TruncationDirection;

/// `inputs` / `input`: a string, token ids, or a list of either. `was_list` keeps whether it
/// came as a list (TEI's `method` label).
#[derive(Debug)]
pub struct Inputs {
    pub items: Vec<Input>,
    pub was_list: bool,
}

impl<'de> Deserialize<'de> for Inputs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let expected = "a string, a list of strings, a list of token ids or a list of lists of token ids";
        let one = |value: &Value| -> Result<Input, D::Error> {
            match value {
                Value::String(text) => Ok(Input::Text(text.clone())),
                Value::Array(ids) => ids
                    .iter()
                    .map(|id| id.as_u64().and_then(|id| u32::try_from(id).ok()))
                    .collect::<Option<Vec<u32>>>()
                    .map(Input::Ids)
                    .ok_or_else(|| D::Error::custom(format!("expected {expected}, found a list holding something else"))),
                other => Err(D::Error::custom(format!("expected {expected}, found {}", kind(other)))),
            }
        };
        match Value::deserialize(deserializer)? {
            Value::Array(items) if items.first().is_some_and(Value::is_number) => Ok(Inputs { items: vec![one(&Value::Array(items))?], was_list: false }),
            Value::Array(items) => Ok(Inputs { items: items.iter().map(one).collect::<Result<_, _>>()?, was_list: true }),
            value => Ok(Inputs { items: vec![one(&value)?], was_list: false }),
        }
    }
}

/// Only text, for the routes that take no token ids (`/tokenize`, `/search`).
pub fn texts(inputs: Inputs) -> Result<Vec<String>, crate::error::ApiError> {
    inputs
        .items
        .into_iter()
        .map(|input| match input {
            Input::Text(text) => Ok(text),
            Input::Ids(_) => Err(crate::error::ApiError::validation("this route takes text, not token ids")),
        })
        .collect()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// TEI's `truncation_direction`: `Right` (keep the start) or `Left` (keep the end).
#[derive(Debug, Clone, Copy, Deserialize)]
pub enum Direction {
    #[serde(alias = "left", alias = "LEFT")]
    Left,
    #[serde(alias = "right", alias = "RIGHT")]
    Right,
}

impl From<Direction> for TruncationDirection {
    fn from(direction: Direction) -> Self {
        match direction {
            Direction::Left => TruncationDirection::Left,
            Direction::Right => TruncationDirection::Right,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
pub struct EmbedRequest {
    pub inputs: Inputs,
    #[serde(default = "yes")]
    pub normalize: bool,
    pub truncate: Option<bool>,
    pub truncation_direction: Option<Direction>,
    pub dimensions: Option<usize>,
    pub prompt_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SimilarityInputs {
    pub source_sentence: String,
    pub sentences: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct SimilarityRequest {
    pub inputs: SimilarityInputs,
    pub truncate: Option<bool>,
    pub truncation_direction: Option<Direction>,
    pub prompt_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct TokenizeRequest {
    pub inputs: Inputs,
    #[serde(default = "yes")]
    pub add_special_tokens: bool,
    pub prompt_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct OpenAiRequest {
    pub input: Inputs,
    #[allow(dead_code)]
    pub model: Option<String>,
    pub encoding_format: Option<String>,
    pub dimensions: Option<usize>,
    #[allow(dead_code)]
    pub user: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SearchRequest {
    pub queries: Inputs,
    pub top_k: Option<usize>,
    pub threshold: Option<f32>,
    pub truncate: Option<bool>,
    pub truncation_direction: Option<Direction>,
}
