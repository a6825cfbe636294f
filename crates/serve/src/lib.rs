//! `simcse serve`: an exported encoder behind HTTP. Text-embeddings-inference's routes and
//! shapes (so its clients work unchanged), OpenAI's `/v1/embeddings`, and SimCSE's `/search`.
//!
//! The flow of a request: the routes parse and check it (`routes`, `request`), `infer` takes
//! a permit per input (429 past `--max-concurrent-requests`) and tokenizes on a worker pool,
//! `batcher` queues the tokens for the one thread that owns the model, which batches what
//! waits by a token budget. The server is stateless: replicas go behind any load balancer.

mod batcher;
mod error;
mod infer;
mod log;
mod metrics;
mod options;
mod request;
mod routes;

pub use options::ServeOptions;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use error::{ApiError, ErrorKind, OpenAiError};
use infer::{AppState, Tokenizers};
use simcse_runtime::search::SearchIndex;
use simcse_runtime::Encoder;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Options(String),
    #[error("{0}")]
    Model(String),
    #[error("cannot listen on {address}: {error}")]
    Bind { address: String, error: std::io::Error },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Serves `encoder` (and `index`, for `/search`) until SIGTERM or SIGINT, then finishes what is
/// in flight (up to `--shutdown-timeout`) and returns.
pub fn serve(mut encoder: Encoder, index: Option<SearchIndex>, options: ServeOptions) -> Result<(), ServeError> {
    log::set_debug(options.log_requests);
    let max_input_length = encoder.tokenizer.max_length;
    options.check(max_input_length)?;
    let tokenizers = Tokenizers::new(&encoder.tokenizer).map_err(|e| ServeError::Model(e.to_string()))?;
    warm_up(&mut encoder)?;
    let metrics = Arc::new(metrics::Metrics::new(max_input_length));
    let healthy = Arc::new(AtomicBool::new(true));
    let limits = batcher::Limits {
        max_batch_tokens: options.max_batch_tokens,
        max_batch_requests: options.max_batch_requests.unwrap_or(usize::MAX),
    };
    let (info, backend) = (encoder.info.clone(), encoder.describe());
    let (queue, model_thread) = batcher::Queue::start(encoder, limits, metrics.clone(), healthy.clone());
    let state = Arc::new(AppState::new(options.clone(), info, backend, tokenizers, queue, metrics, healthy, index));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("simcse-serve").build()?;
    let served = runtime.block_on(run(state, &options));
    // The routes' state held the queue; with it gone the model's thread ends.
    runtime.shutdown_timeout(Duration::from_secs(1));
    let _ = model_thread.join();
    served
}

/// One forward pass before the port opens: an open port means a ready server.
fn warm_up(encoder: &mut Encoder) -> Result<(), ServeError> {
    let started = Instant::now();
    encoder.encode(&["warm-up"]).map_err(|e| ServeError::Model(format!("the warm-up forward pass failed: {e}")))?;
    log::info(&format!("warmed up in {:.0} ms", started.elapsed().as_secs_f64() * 1e3));
    Ok(())
}

async fn run(state: Arc<AppState>, options: &ServeOptions) -> Result<(), ServeError> {
    let address = format!("{}:{}", options.host, options.port);
    let listener = tokio::net::TcpListener::bind(&address).await.map_err(|error| ServeError::Bind { address: address.clone(), error })?;
    let bound = listener.local_addr()?;
    log::info(&format!(
        "listening on http://{bound} ({}, {} on {}, {} dims, max input {} tokens, batches of {} tokens)",
        options.model_id,
        state.info.pooler,
        state.backend,
        state.info.hidden_size,
        state.tokenizers.max_input_length,
        options.max_batch_tokens
    ));
    simcse_core::signals::stop_gracefully(
        "stopping: no new connections; finishing the requests in flight (interrupt again to stop at once)",
        "stopped at once on a second interrupt; requests in flight were dropped",
    );
    let in_flight = Arc::new(AtomicUsize::new(0));
    let app = router(state.clone(), in_flight.clone());
    let stopping = Arc::new(tokio::sync::Notify::new());
    let served = axum::serve(listener, app).with_graceful_shutdown(stop_signal(stopping.clone()));
    let timeout = options.shutdown_timeout;
    tokio::select! {
        served = served => served?,
        _ = async { stopping.notified().await; tokio::time::sleep(timeout).await } => {
            log::error(&format!(
                "stopped after --shutdown-timeout {} s with {} requests unfinished",
                timeout.as_secs(),
                in_flight.load(Ordering::SeqCst)
            ));
        }
    }
    log::info(&format!("stopped: {}", state.metrics.summary()));
    Ok(())
}

/// Resolves at the first SIGTERM or SIGINT (a second one ends the process at once).
async fn stop_signal(stopping: Arc<tokio::sync::Notify>) {
    while simcse_core::signals::interrupted().is_none() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stopping.notify_one();
}

fn router(state: Arc<AppState>, in_flight: Arc<AtomicUsize>) -> Router {
    let payload_limit = state.options.payload_limit;
    let guarded = Router::new()
        .route("/", post(routes::embed))
        .route("/embed", post(routes::embed))
        .route("/similarity", post(routes::similarity))
        .route("/tokenize", post(routes::tokenize))
        .route("/search", post(routes::search))
        .route("/v1/embeddings", post(routes::openai_embeddings))
        .route("/embeddings", post(routes::openai_embeddings))
        .route("/info", get(routes::info))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .route("/health", get(routes::health))
        .route("/metrics", get(routes::metrics))
        .merge(guarded)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(payload_limit))
        .layer(axum::middleware::from_fn_with_state((state.clone(), in_flight), observe))
        .with_state(state)
}

async fn not_found(request: Request) -> Response {
    let message = format!("no route {} {}: see GET /info, POST /embed, /similarity, /tokenize, /search, /v1/embeddings", request.method(), request.uri().path());
    respond_in_kind(request.uri().path(), ApiError::new(ErrorKind::NotFound, message))
}

async fn method_not_allowed(request: Request) -> Response {
    let message = format!("{} is not allowed on {}", request.method(), request.uri().path());
    respond_in_kind(request.uri().path(), ApiError::new(ErrorKind::MethodNotAllowed, message))
}

fn is_openai(path: &str) -> bool {
    path == "/v1/embeddings" || path == "/embeddings"
}

/// OpenAI's envelope on OpenAI's routes, TEI's elsewhere.
fn respond_in_kind(path: &str, error: ApiError) -> Response {
    if is_openai(path) {
        OpenAiError(error).into_response()
    } else {
        error.into_response()
    }
}

/// `--api-key`: a Bearer token on every route but `/health` and `/metrics`.
async fn authorize(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(key) = &state.options.api_key else { return next.run(request).await };
    let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|given| constant_time_eq(given.trim().as_bytes(), key.as_bytes())) {
        return next.run(request).await;
    }
    let why = if given.is_some() { "the API key is wrong" } else { "this server wants an API key: `Authorization: Bearer KEY`" };
    respond_in_kind(request.uri().path(), ApiError::new(ErrorKind::Unauthorized, why))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Counts requests in flight (for a graceful stop), the failures by TEI's `err` label, and logs
/// a line per request at debug (a line per server error at info).
async fn observe(State((state, in_flight)): State<(Arc<AppState>, Arc<AtomicUsize>)>, request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let started = Instant::now();
    in_flight.fetch_add(1, Ordering::SeqCst);
    let _done = Decrement(in_flight);
    let response = next.run(request).await;
    let status = response.status();
    if let Some(kind) = response.extensions().get::<ErrorKind>() {
        if method == Method::POST {
            state.metrics.failure(kind.name());
        }
    }
    let line = format!("{method} {path} {} in {:.1} ms", status.as_u16(), started.elapsed().as_secs_f64() * 1e3);
    if status.is_server_error() {
        log::error(&line);
    } else {
        log::debug(&line);
    }
    response
}

struct Decrement(Arc<AtomicUsize>);

impl Drop for Decrement {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
