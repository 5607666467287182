//! Errors in OpenAI's wire shape: `{"error": {"message", "type", "param", "code"}}` with the
//! status OpenAI would use, so clients' own error handling (retries on 429/503, messages shown
//! to the user) works unchanged.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// What handlers return: a value, or the error response.
pub(crate) type AppResult<T> = Result<T, ApiError>;

/// An error answered to an API client.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
    /// Seconds a client should wait before retrying (429 and 503).
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// 400 about one request field.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            param: Some(param.into()),
            ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
        }
    }

    /// 400 not tied to one field.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    pub fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "invalid_request_error", message)
            .with_code("invalid_api_key")
    }

    pub fn model_not_found(model: &str, available: &[String]) -> ApiError {
        ApiError {
            param: Some("model".into()),
            ..ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!(
                    "The model `{model}` does not exist here. Available: {}.",
                    available.join(", ")
                ),
            )
            .with_code("model_not_found")
        }
    }

    /// 409: the request clashes with work in progress.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "invalid_request_error", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "invalid_request_error", message)
    }

    /// 400 for a prompt that leaves no room in the context, in OpenAI's own words (clients
    /// such as litellm recognise "maximum context length" and raise their context-window
    /// error), naming `messages` and stating both numbers.
    pub fn context_overflow(prompt: usize, ctx: usize) -> ApiError {
        ApiError::context_overflow_in("messages", prompt, ctx)
    }

    /// [`ApiError::context_overflow`] for the request field `param` holds the prompt
    /// (`messages`, `prompt`, `input`). A prompt that fits exactly leaves no room for even one
    /// token of reply: that is worded as OpenAI words a completion budget that does not fit.
    pub fn context_overflow_in(param: &str, prompt: usize, ctx: usize) -> ApiError {
        let what = if param == "messages" {
            "messages"
        } else {
            "prompt"
        };
        let message = if prompt > ctx {
            format!(
                "This model's maximum context length is {ctx} tokens. However, your {what} resulted in {prompt} tokens. Please reduce the length of the {what}. (Hearth's context is set with `hearth serve --ctx`.)"
            )
        } else {
            format!(
                "This model's maximum context length is {ctx} tokens. However, you requested {} tokens ({prompt} in the {what}, 1 in the completion). Please reduce the length of the {what} or completion. (Hearth's context is set with `hearth serve --ctx`.)",
                prompt + 1
            )
        };
        ApiError {
            param: Some(param.into()),
            ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
                .with_code("context_length_exceeded")
        }
    }

    /// 503 with Retry-After: the queue is full or the server is shutting down.
    pub fn overloaded(message: impl Into<String>, retry_after: u64) -> ApiError {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message)
        }
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("request body is larger than the {limit}-byte limit"),
        )
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// The JSON body alone (also sent as an SSE event when a stream fails midway).
    pub fn body_json(&self) -> String {
        let body = Body {
            error: Inner {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        };
        serde_json::to_string(&body).unwrap_or_else(|_| "{}".into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body_json(),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
