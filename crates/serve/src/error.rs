//! Errors a request can get, in the two envelopes clients expect: text-embeddings-inference's
//! `{"error", "error_type"}` and OpenAI's `{"error": {"message", "type", "param", "code"}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// TEI's error types, each with its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A well-formed request the server cannot take as it is (too many inputs, too long, ...).
    Validation,
    /// No inputs at all.
    Empty,
    /// The tokenizer refused an input.
    Tokenizer,
    /// Too much in flight: come back later.
    Overloaded,
    /// The model failed to run.
    Backend,
    /// `/health` found the model failing.
    Unhealthy,
    /// The body is not JSON.
    Syntax,
    PayloadTooLarge,
    Unauthorized,
    NotFound,
    MethodNotAllowed,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::Validation | ErrorKind::Tokenizer => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Empty | ErrorKind::Syntax => StatusCode::BAD_REQUEST,
            ErrorKind::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Backend => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// TEI's `error_type`, and the `err` label of `te_request_failure`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Validation => "validation",
            ErrorKind::Empty => "empty",
            ErrorKind::Tokenizer => "tokenizer",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Backend => "backend",
            ErrorKind::Unhealthy => "unhealthy",
            ErrorKind::Syntax => "syntax",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
        }
    }

    /// OpenAI's error `type`.
    fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::Overloaded => "rate_limit_error",
            ErrorKind::Backend | ErrorKind::Unhealthy => "server_error",
            ErrorKind::Unauthorized => "authentication_error",
            ErrorKind::NotFound => "not_found_error",
            _ => "invalid_request_error",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    /// The request field at fault, where one is (OpenAI's `param`).
    pub param: Option<&'static str>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError { kind, message: message.into(), param: None }
    }

    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Validation, message)
    }

    pub fn on(mut self, param: &'static str) -> ApiError {
        self.param = Some(param);
        self
    }

    fn with_headers(self, body: serde_json::Value) -> Response {
        let mut response = (self.kind.status(), axum::Json(body)).into_response();
        // For the metrics' `err` label.
        response.extensions_mut().insert(self.kind);
        if self.kind == ErrorKind::Overloaded {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.kind == ErrorKind::Unauthorized {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// TEI's envelope (every route but OpenAI's).
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.message, "error_type": tei_type(self.kind) });
        self.with_headers(body)
    }
}

/// TEI's `ErrorType` names as it serializes them.
fn tei_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Validation | ErrorKind::Syntax | ErrorKind::PayloadTooLarge => "Validation",
        ErrorKind::Empty => "Empty",
        ErrorKind::Tokenizer => "Tokenizer",
        ErrorKind::Overloaded => "Overloaded",
        ErrorKind::Backend => "Backend",
        ErrorKind::Unhealthy => "Unhealthy",
        ErrorKind::Unauthorized => "Unauthorized",
        ErrorKind::NotFound | ErrorKind::MethodNotAllowed => "NotFound",
    }
}

/// An error of `/v1/embeddings`, in OpenAI's envelope.
pub struct OpenAiError(pub ApiError);

impl From<ApiError> for OpenAiError {
    fn from(error: ApiError) -> Self {
        OpenAiError(error)
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let error = self.0;
        let body = json!({ "error": {
            "message": error.message,
            "type": error.kind.openai_type(),
            "param": error.param,
            "code": error.kind.name(),
        }});
        error.with_headers(body)
    }
}

/// A JSON body as `T`, or the error that says what is wrong with it: 400 where it is not JSON,
/// 422 where a field is missing or of the wrong type (serde's message names it and where).
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(ErrorKind::Syntax, "the request has no body: send a JSON object"));
    }
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::validation(format!("invalid request: {e}")),
        _ => ApiError::new(ErrorKind::Syntax, format!("the body is not valid JSON: {e}")),
    })
}

/// What axum says when it could not read the body (past `--payload-limit`, most often).
pub fn body_rejection(rejection: axum::extract::rejection::BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(ErrorKind::PayloadTooLarge, format!("the request body is larger than the server's limit of {limit} bytes (--payload-limit)"))
    } else {
        ApiError::new(ErrorKind::Syntax, format!("cannot read the request body: {}", rejection.body_text()))
    }
}
