//! The routes: text-embeddings-inference's (`/embed`, `/similarity`, `/tokenize`, `/info`,
//! `/health`, `/metrics`), OpenAI's `/v1/embeddings`, and SimCSE's `/search`.

use crate::error::{body_rejection, parse_body, ApiError, OpenAiError};
use crate::infer::{finish, AppState, Embeddings};
use crate::metrics::{method, Stages};
use crate::request::{texts, EmbedRequest, OpenAiRequest, SearchRequest, SimilarityRequest, TokenizeRequest};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub type Shared = State<Arc<AppState>>;
type Body = Result<Bytes, BytesRejection>;

fn read<T: serde::de::DeserializeOwned>(state: &AppState, body: Body) -> Result<T, ApiError> {
    let body = body.map_err(|rejection| body_rejection(rejection, state.options.payload_limit))?;
    parse_body(&body)
}

fn no_prompts(prompt_name: &Option<String>) -> Result<(), ApiError> {
    match prompt_name {
        Some(name) => Err(ApiError::validation(format!("`prompt_name` {name:?}: this model has no prompts")).on("prompt_name")),
        None => Ok(()),
    }
}

/// Checks `dimensions` and `normalize` against what the graph gives.
fn check_output(state: &AppState, dimensions: Option<usize>, normalize: bool) -> Result<(), ApiError> {
    let hidden = state.info.hidden_size;
    if let Some(d) = dimensions {
        if d == 0 || d > hidden {
            return Err(ApiError::validation(format!("`dimensions` {d} is out of range: 1 to {hidden}, this model's size")).on("dimensions"));
        }
    }
    if !normalize && state.info.normalize {
        return Err(ApiError::validation(
            "`normalize: false`: this model's graph L2-normalizes its output (exported with --normalize, or its simcse.json \
             says so), so unnormalized embeddings are not available; export it again without normalization to serve them",
        )
        .on("normalize"));
    }
    Ok(())
}

/// A JSON response with TEI's timing headers (milliseconds) and token count.
fn timed(body: impl serde::Serialize, started: Instant, stages: &Stages, tokens: usize) -> Response {
    let mut response = Json(body).into_response();
    let ms = |d: Duration| HeaderValue::from(d.as_millis() as u64);
    let headers = response.headers_mut();
    headers.insert("x-compute-time", ms(started.elapsed()));
    headers.insert("x-tokenization-time", ms(stages.tokenization));
    headers.insert("x-queue-time", ms(stages.queue));
    headers.insert("x-inference-time", ms(stages.inference));
    headers.insert("x-total-tokens", HeaderValue::from(tokens as u64));
    response
}

/// Runs `embed` under the request metrics of `method`.
async fn counted<T>(state: &AppState, method: &'static str, work: impl std::future::Future<Output = Result<T, ApiError>>) -> Result<(T, Instant), ApiError> {
    state.metrics.request(method);
    let started = Instant::now();
    let result = work.await;
    Ok((result?, started))
}

fn record(state: &AppState, method: &str, started: Instant, embeddings: &Embeddings) {
    state.metrics.success(method, started.elapsed(), &embeddings.stages);
}

pub async fn embed(State(state): Shared, body: Body) -> Result<Response, ApiError> {
    let request: EmbedRequest = read(&state, body)?;
    no_prompts(&request.prompt_name)?;
    check_output(&state, request.dimensions, request.normalize)?;
    let method = method(request.inputs.items.len(), request.inputs.was_list);
    let truncation = state.default_truncation(request.truncate, request.truncation_direction.map(Into::into));
    let (mut embeddings, started) = counted(&state, method, state.embed(request.inputs.items, truncation)).await?;
    finish(&mut embeddings.rows, request.dimensions, request.normalize, state.info.normalize);
    record(&state, method, started, &embeddings);
    Ok(timed(&embeddings.rows, started, &embeddings.stages, embeddings.tokens))
}

pub async fn similarity(State(state): Shared, body: Body) -> Result<Response, ApiError> {
    let request: SimilarityRequest = read(&state, body)?;
    no_prompts(&request.prompt_name)?;
    let SimilarityRequest { inputs, truncate, truncation_direction, .. } = request;
    if inputs.sentences.is_empty() {
        return Err(ApiError::new(crate::error::ErrorKind::Empty, "`sentences` cannot be empty").on("sentences"));
    }
    state.check_count(inputs.sentences.len())?;
    let truncation = state.default_truncation(truncate, truncation_direction.map(Into::into));
    let mut all = vec![crate::infer::Input::Text(inputs.source_sentence)];
    all.extend(inputs.sentences.into_iter().map(crate::infer::Input::Text));
    // The source sentence rides along: the client's batch is the list of sentences.
    let (mut embeddings, started) = counted(&state, "batch", state.embed_counted(all, truncation)).await?;
    finish(&mut embeddings.rows, None, true, state.info.normalize);
    let (source, others) = embeddings.rows.split_first().expect("the source sentence");
    let scores: Vec<f32> = others.iter().map(|row| simcse_runtime::similarity::cosine(source, row)).collect();
    record(&state, "batch", started, &embeddings);
    Ok(timed(scores, started, &embeddings.stages, embeddings.tokens))
}

pub async fn tokenize(State(state): Shared, body: Body) -> Result<Response, ApiError> {
    let request: TokenizeRequest = read(&state, body)?;
    no_prompts(&request.prompt_name)?;
    let sentences = texts(request.inputs)?;
    state.check_count(sentences.len())?;
    let tokenizers = state.tokenizers.clone();
    let add_special = request.add_special_tokens;
    let pieces = tokio::task::spawn_blocking(move || {
        sentences.iter().map(|s| tokenizers.counting.pieces(s, add_special)).collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| ApiError::new(crate::error::ErrorKind::Tokenizer, e.to_string()))?
    .map_err(|e| ApiError::new(crate::error::ErrorKind::Tokenizer, e.to_string()))?;
    let body: Vec<Vec<Value>> = pieces
        .iter()
        .map(|tokens| {
            tokens
                .iter()
                .map(|t| json!({ "id": t.id, "text": t.text, "special": t.special, "start": t.span.map(|s| s.0), "stop": t.span.map(|s| s.1) }))
                .collect()
        })
        .collect();
    Ok(Json(body).into_response())
}

/// OpenAI's embeddings response, serialized as it is built (f32 printed as f32).
#[derive(serde::Serialize)]
struct OpenAiResponse<'a> {
    object: &'static str,
    data: Vec<OpenAiEmbedding<'a>>,
    model: &'a str,
    usage: OpenAiUsage,
}

#[derive(serde::Serialize)]
struct OpenAiEmbedding<'a> {
    object: &'static str,
    embedding: EmbeddingData<'a>,
    index: usize,
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum EmbeddingData<'a> {
    Float(&'a [f32]),
    Base64(String),
}

#[derive(serde::Serialize)]
struct OpenAiUsage {
    prompt_tokens: usize,
    total_tokens: usize,
}

pub async fn openai_embeddings(State(state): Shared, body: Body) -> Result<Response, OpenAiError> {
    let request: OpenAiRequest = read(&state, body)?;
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::validation(format!("`encoding_format` {other:?} is not float or base64")).on("encoding_format").into())
        }
    };
    check_output(&state, request.dimensions, true)?;
    let method = method(request.input.items.len(), request.input.was_list);
    let truncation = state.default_truncation(None, None);
    let (mut embeddings, started) = counted(&state, method, state.embed(request.input.items, truncation)).await?;
    finish(&mut embeddings.rows, request.dimensions, true, state.info.normalize);
    record(&state, method, started, &embeddings);
    let data: Vec<OpenAiEmbedding> = embeddings
        .rows
        .iter()
        .enumerate()
        .map(|(index, row)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = row.iter().flat_map(|v| v.to_le_bytes()).collect();
                EmbeddingData::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                EmbeddingData::Float(row)
            };
            OpenAiEmbedding { object: "embedding", embedding, index }
        })
        .collect();
    let usage = OpenAiUsage { prompt_tokens: embeddings.tokens, total_tokens: embeddings.tokens };
    let body = OpenAiResponse { object: "list", data, model: &state.options.model_id, usage };
    Ok(timed(body, started, &embeddings.stages, embeddings.tokens))
}

pub async fn search(State(state): Shared, body: Body) -> Result<Response, ApiError> {
    let request: SearchRequest = read(&state, body)?;
    let Some(index) = state.index.clone() else {
        return Err(ApiError::new(crate::error::ErrorKind::NotFound, "this server was started without --corpus: there is no index to search"));
    };
    let top_k = request.top_k.unwrap_or(simcse_runtime::tool::DEFAULT_TOP_K);
    let threshold = request.threshold.unwrap_or(simcse_runtime::tool::DEFAULT_THRESHOLD);
    simcse_runtime::search::check_search(top_k, threshold).map_err(|e| ApiError::validation(e.to_string()))?;
    let queries = texts(request.queries)?;
    let truncation = state.default_truncation(request.truncate, request.truncation_direction.map(Into::into));
    let inputs = queries.iter().cloned().map(crate::infer::Input::Text).collect();
    let method = method(queries.len(), queries.len() > 1);
    let (mut embeddings, started) = counted(&state, method, state.embed(inputs, truncation)).await?;
    finish(&mut embeddings.rows, None, true, state.info.normalize);
    let dim = state.info.hidden_size;
    let matrix = simcse_runtime::Embeddings { rows: embeddings.rows.len(), dim, values: embeddings.rows.concat() };
    let searched = index.clone();
    let hits = tokio::task::spawn_blocking(move || searched.search(&matrix, top_k, threshold))
        .await
        .map_err(|e| ApiError::new(crate::error::ErrorKind::Backend, e.to_string()))?
        .map_err(|e| ApiError::new(crate::error::ErrorKind::Backend, e.to_string()))?;
    record(&state, method, started, &embeddings);
    let body: Vec<Value> = queries
        .iter()
        .zip(hits)
        .map(|(query, hits)| {
            let hits: Vec<Value> = hits
                .iter()
                .map(|hit| json!({ "sentence": index.sentences[hit.index], "score": hit.score, "index": index.lines[hit.index] }))
                .collect();
            json!({ "query": query, "hits": hits })
        })
        .collect();
    Ok(timed(body, started, &embeddings.stages, embeddings.tokens))
}

/// TEI's pooling names where ours has one.
fn pooling_name(pooler: simcse_core::Pooler) -> String {
    match pooler {
        simcse_core::Pooler::Avg => "mean".into(),
        simcse_core::Pooler::Cls | simcse_core::Pooler::ClsBeforePooler => "cls".into(),
        simcse_core::Pooler::Last => "last_token".into(),
        other => other.to_string(),
    }
}

pub async fn info(State(state): Shared) -> Response {
    let options = &state.options;
    let info = &state.info;
    Json(json!({
        "model_id": options.model_id,
        "model_sha": null,
        "model_dtype": match info.precision { simcse_core::Precision::F16 => "float16", _ => "float32" },
        "model_type": { "embedding": { "pooling": pooling_name(info.pooler) } },
        "max_concurrent_requests": options.max_concurrent_requests,
        "max_input_length": state.tokenizers.max_input_length,
        "max_batch_tokens": options.max_batch_tokens,
        "max_batch_requests": options.max_batch_requests,
        "max_client_batch_size": options.max_client_batch_size,
        "auto_truncate": options.auto_truncate,
        "tokenization_workers": options.tokenization_workers,
        "version": env!("CARGO_PKG_VERSION"),
        "sha": null,
        "docker_label": null,
        "pooler": info.pooler.to_string(),
        "dimensions": info.hidden_size,
        "normalize": info.normalize,
        "backend": state.backend,
        "corpus_size": state.index.as_ref().map(|index| index.len()),
    }))
    .into_response()
}

pub async fn health(State(state): Shared) -> Result<Response, ApiError> {
    state.health().await?;
    Ok(().into_response())
}

pub async fn metrics(State(state): Shared) -> Response {
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    response
}
