//! Reading request bodies: the bytes within the size limit, then JSON whose type errors name
//! their field. Every API family and the household page read bodies this way.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;

use crate::error::{ApiError, AppResult};
use crate::AppState;

/// The body, or the error OpenAI would give for it.
pub(crate) fn body(state: &AppState, body: Result<Bytes, BytesRejection>) -> AppResult<Bytes> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(state.body_limit)
        } else {
            ApiError::bad_request(format!("cannot read the request body: {e}"))
        }
    })
}

/// Bodies larger than this are parsed on a blocking thread: a few megabytes of JSON take tens
/// of milliseconds, and six such requests at once stalled `/health` for seconds on the two
/// async workers. Smaller ones (nearly all) are parsed in place, where a thread hop would cost
/// more than the parse.
pub const BLOCKING_PARSE_BYTES: usize = 64 << 10;

/// [`parse_body`] for handlers: large bodies are parsed off the async workers (see
/// [`BLOCKING_PARSE_BYTES`]).
pub async fn parse_body_async<T>(body: bytes::Bytes) -> Result<T, ApiError>
where
    T: serde::de::DeserializeOwned + Send + 'static,
{
    if body.len() <= BLOCKING_PARSE_BYTES {
        return parse_body(&body);
    }
    tokio::task::spawn_blocking(move || parse_body(&body))
        .await
        .map_err(|e| ApiError::internal(format!("reading the request failed: {e}")))?
}

/// Parses a JSON body into `T`, naming the offending field on a type error.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if let Err(e) = std::str::from_utf8(body) {
        return Err(ApiError::bad_request(format!(
            "the request body is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        )));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let text = inner.to_string();
        let missing = text
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next());
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request(format!("the request body is not valid JSON: {inner}"))
        } else if let Some(field) = missing {
            let param = if path == "." || path.is_empty() {
                field.to_string()
            } else {
                format!("{path}.{field}")
            };
            ApiError::invalid(param.clone(), format!("`{param}` is required"))
        } else if path == "." || path.is_empty() {
            ApiError::bad_request(format!("invalid request body: {inner}"))
        } else {
            ApiError::invalid(path.clone(), format!("invalid value for `{path}`: {inner}"))
        }
    })
}
