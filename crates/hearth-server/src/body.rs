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
    // serde reads a struct from an array too (field by position), which turns `[1, 2]` into
    // an error about its first element; every body Hearth takes is an object, so say that.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v) => {
                let found = match v {
                    serde_json::Value::Array(_) => "an array",
                    serde_json::Value::String(_) => "a string",
                    serde_json::Value::Number(_) => "a number",
                    serde_json::Value::Bool(_) => "a boolean",
                    serde_json::Value::Null => "null",
                    serde_json::Value::Object(_) => "an object",
                };
                ApiError::bad_request(format!(
                    "the request body must be a JSON object (expected an object with the request's fields); got {found}"
                ))
            }
            Err(e) => ApiError::bad_request(format!("the request body is not valid JSON: {e}")),
        });
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
            ApiError::bad_request(format!("invalid request body: {}", plain(&text)))
        } else {
            ApiError::invalid(
                path.clone(),
                format!("invalid value for `{path}`: {}", plain(&text)),
            )
        }
    })
}

/// serde's wording of a type error in words a client's author reads without knowing Rust:
/// "expected u64" becomes "expected a whole number of 0 or more", and an untagged enum's
/// "did not match any variant" lists the shapes the field takes.
fn plain(text: &str) -> String {
    const UNTAGGED: &str = "data did not match any variant of untagged enum ";
    if let Some(name) = text.strip_prefix(UNTAGGED) {
        // serde_json adds " at line L column C" after the name.
        let shapes = match name.split_whitespace().next().unwrap_or("") {
            "Prompt" => "a string, a list of strings, a list of token ids, or a list of lists of token ids",
            "StopSpec" => "a string or a list of strings",
            "Content" => "a string or a list of content parts",
            "ToolChoice" => "\"auto\", \"none\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}",
            "FunctionCallChoice" => "\"auto\", \"none\" or {\"name\": ...}",
            "EmbeddingInput" => "a string, a list of strings, a list of token ids (whole numbers of 0 or more), or a list of such lists",
            _ => "another shape",
        };
        return format!("expected {shapes}");
    }
    const WORDS: [(&str, &str); 9] = [
        ("expected f32", "expected a number"),
        ("expected f64", "expected a number"),
        ("expected u64", "expected a whole number of 0 or more"),
        ("expected u32", "expected a whole number of 0 or more"),
        ("expected usize", "expected a whole number of 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected a sequence", "expected a list"),
        ("expected a map", "expected an object"),
        ("expected struct ", "expected an object ("),
    ];
    let mut out = text.to_string();
    for (from, to) in WORDS {
        if let Some(i) = out.find(from) {
            let rest = &out[i + from.len()..];
            out = if from == "expected struct " {
                format!("{}{to}{rest})", &out[..i])
            } else {
                format!("{}{to}{rest}", &out[..i])
            };
        }
    }
    out
}
