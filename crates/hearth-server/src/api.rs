//! The router: every route, the middleware around them, and the few answers that belong to no
//! API family (`/health`, `/metrics`, the 404).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request as HttpRequest, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::openai;
use crate::AppState;

pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.body_limit;
    let v1 = Router::new()
        .route("/v1/models", get(openai::models::models))
        .route("/v1/models/{id}", get(openai::models::model_info))
        .route("/v1/chat/completions", post(openai::chat::chat_completions))
        .route("/v1/completions", post(openai::completions::completions))
        .route("/v1/embeddings", post(openai::embeddings::embeddings))
        // Metrics show what the household asks and how often: the same rule as the API.
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    let mut app = Router::new().merge(v1).route("/health", get(health));
    app = if state.household.is_some() {
        app.merge(crate::household::router())
    } else {
        app.fallback(not_found)
    };
    app.layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::access::guard,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), log_request))
        .with_state(state)
}

/// One log line and one metrics count per request.
async fn log_request(State(state): State<Arc<AppState>>, req: HttpRequest, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status();
    // Known paths only, so a scanner cannot grow the metrics without bound.
    let endpoint = match path.as_str() {
        "/v1/chat/completions"
        | "/v1/completions"
        | "/v1/embeddings"
        | "/v1/models"
        | "/health"
        | "/metrics" => path.as_str(),
        p if p.starts_with("/v1/models/") => "/v1/models/{id}",
        _ => "other",
    };
    state.metrics.request(endpoint, status.as_u16());
    tracing::info!(
        "{method} {path} {} {:.1}ms",
        status.as_u16(),
        started.elapsed().as_secs_f64() * 1e3
    );
    resp
}

async fn require_key(State(state): State<Arc<AppState>>, req: HttpRequest, next: Next) -> Response {
    if v1_allowed(&state, req.headers()) {
        return next.run(req).await;
    }
    let message = match (crate::auth::bearer(req.headers()).is_some(), state.household.is_some()) {
        (true, _) => "Incorrect API key provided.",
        (false, false) => "This server requires an API key: send it as `Authorization: Bearer KEY`.",
        (false, true) => "This server requires an API key: the household's owner creates one in Settings → Apps; send it as `Authorization: Bearer KEY`.",
    };
    ApiError::unauthorized(message).into_response()
}

/// The `/v1` rule (also `/metrics`): a configured key always works; with a household, so do its
/// API keys and a logged-in session that sends its CSRF token, and once the household is set up nothing else does (not even on
/// loopback); without a household, [`crate::Auth`] decides alone.
fn v1_allowed(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    if state.auth.required() && state.auth.allows(headers) {
        return true;
    }
    let Some(h) = state.household.as_ref() else {
        return state.auth.allows(headers);
    };
    if let Some(key) = crate::auth::bearer(headers) {
        if h.store.verify_api_key(key).unwrap_or(false) {
            return true;
        }
    }
    // The page's session works too, with its CSRF token: a cookie alone would let any page
    // the person visits use the API in their name.
    if crate::household::session_with_csrf(h, headers).is_some() {
        return true;
    }
    !h.is_set_up() && state.auth.open()
}

async fn not_found(req: HttpRequest) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    ))
}

async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    let served = state.served();
    Json(json!({
        "status": if state.shutting_down.load(Ordering::Relaxed) { "stopping" } else { "ok" },
        "model": served.model_id,
        "ctx": served.ctx,
        "queue_depth": served.scheduler.queue_depth(),
    }))
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
