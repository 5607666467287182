//! Errors in Anthropic's shape: `{"type": "error", "error": {"type", "message"}}`, with the
//! status Anthropic uses for each type, so the official clients raise their matching exception
//! (`AuthenticationError`, `NotFoundError`, `OverloadedError`, ...) and retry where they would.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::error::ApiError;

/// Anthropic's status for an overloaded service: its clients retry it.
const OVERLOADED: u16 = 529;

/// Anthropic's error type and status for one of Hearth's errors.
fn kind_and_status(e: &ApiError) -> (&'static str, StatusCode) {
    match e.status.as_u16() {
        400 | 409 | 422 => ("invalid_request_error", e.status),
        401 => ("authentication_error", e.status),
        403 => ("permission_error", e.status),
        404 => ("not_found_error", e.status),
        413 => ("request_too_large", e.status),
        429 => ("rate_limit_error", e.status),
        503 => (
            "overloaded_error",
            StatusCode::from_u16(OVERLOADED).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        ),
        _ => ("api_error", StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// The message, led by the field it is about unless it already names it (Anthropic has no
/// separate `param`; its own messages read `max_tokens: Field required`).
fn message(e: &ApiError) -> String {
    match &e.param {
        Some(p) if !e.message.contains(p.as_str()) => format!("{p}: {}", e.message),
        _ => e.message.clone(),
    }
}

/// The error body (also the data of a streamed `error` event).
pub(crate) fn body(e: &ApiError) -> Value {
    let (kind, _) = kind_and_status(e);
    json!({"type": "error", "error": {"type": kind, "message": message(e)}})
}

/// The whole error response.
pub(crate) fn response(e: &ApiError) -> Response {
    let (_, status) = kind_and_status(e);
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body(e).to_string(),
    )
        .into_response();
    if let Some(secs) = e.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_anthropics_types() {
        let cases = [
            (
                ApiError::invalid("max_tokens", "Field required"),
                "invalid_request_error",
                400,
            ),
            (ApiError::unauthorized("no"), "authentication_error", 401),
            (ApiError::model_not_found("x", &[]), "not_found_error", 404),
            (ApiError::overloaded("busy", 2), "overloaded_error", 529),
            (ApiError::internal("boom"), "api_error", 500),
            (ApiError::too_large(10), "request_too_large", 413),
        ];
        for (e, kind, status) in cases {
            let (k, s) = kind_and_status(&e);
            assert_eq!((k, s.as_u16()), (kind, status), "{e:?}");
            assert_eq!(body(&e)["type"], "error");
            assert_eq!(body(&e)["error"]["type"], kind);
        }
    }

    #[test]
    fn the_message_names_the_field() {
        let e = ApiError::invalid("max_tokens", "Field required");
        assert_eq!(body(&e)["error"]["message"], "max_tokens: Field required");
        let e = ApiError::invalid("stop_sequences", "`stop_sequences` holds 20; at most 16");
        assert_eq!(
            body(&e)["error"]["message"],
            "`stop_sequences` holds 20; at most 16"
        );
    }

    #[test]
    fn overloaded_keeps_retry_after() {
        let r = response(&ApiError::overloaded("busy", 3));
        assert_eq!(r.status().as_u16(), 529);
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
    }
}
