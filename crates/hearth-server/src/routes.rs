//! Every route in one place: `/v1` (each API family's handlers), `/health`, `/metrics`, and
//! with a household its page and `/api` routes; and the layers around them, outermost first:
//! the request log, the browser access guard (`access.rs`), the body limit, and on `/v1` and
//! `/metrics` the key check. Also the few answers that belong to no family (`/health`,
//! `/metrics`, the 404).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request as HttpRequest, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::openai;
use crate::AppState;

/// The full router over `state`.
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
        app.merge(household())
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

/// The page and its API. Routes other than setup, login, state and the static assets need a
/// session (checked in each handler through [`Me`](crate::household::Me)).
fn household() -> Router<Arc<AppState>> {
    use crate::household::{admin, app_css, app_js, chat, index, no_store, session};

    Router::new()
        .route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/app.css", get(app_css))
        .route("/api/state", get(session::state))
        .route("/api/setup", post(session::setup))
        .route("/api/login", post(session::login))
        .route("/api/logout", post(session::logout))
        .route("/api/me/password", post(session::change_password))
        .route("/api/people", get(admin::people).post(admin::add_person))
        .route("/api/people/{id}/reset", post(admin::reset_person))
        .route("/api/people/{id}", delete(admin::remove_person))
        .route("/api/keys", get(admin::keys).post(admin::create_key))
        .route("/api/keys/{id}", delete(admin::revoke_key))
        .route(
            "/api/settings",
            get(admin::settings).put(admin::put_settings),
        )
        .route("/api/models/pull", post(admin::pull_model))
        .route("/api/models/use", post(admin::use_model))
        .route("/api/lock", get(admin::lock_pending))
        .route("/api/lock/accept", post(admin::lock_accept))
        .route(
            "/api/conversations",
            get(chat::list).post(chat::create).delete(chat::delete_all),
        )
        .route(
            "/api/conversations/{id}",
            get(chat::get_one)
                .patch(chat::rename)
                .delete(chat::delete_one),
        )
        .route("/api/conversations/{id}/messages", post(chat::send))
        .route("/api/conversations/{id}/regenerate", post(chat::regenerate))
        .route("/api/conversations/{id}/edit", post(chat::edit))
        .route("/api/conversations/{id}/stop", post(chat::stop))
        .route("/api/conversations/{id}/events", get(chat::events))
        .route("/api/export", get(chat::export))
        .fallback(|| async { ApiError::not_found("no such page") })
        .route_layer(middleware::from_fn(no_store))
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

async fn require_key(
    State(state): State<Arc<AppState>>,
    mut req: HttpRequest,
    next: Next,
) -> Response {
    if let Some(caller) = v1_caller(&state, req.headers()) {
        req.extensions_mut().insert(caller);
        return next.run(req).await;
    }
    let message = match (crate::auth::api_key(req.headers()).is_some(), state.household.is_some()) {
        (true, _) => "Incorrect API key provided.",
        (false, false) => "This server requires an API key: send it as `Authorization: Bearer KEY`.",
        (false, true) => "This server requires an API key: the household's owner creates one in Settings → Apps; send it as `Authorization: Bearer KEY`.",
    };
    ApiError::unauthorized(message).into_response()
}

/// The `/v1` rule (also `/metrics`), and who the caller is: a configured key always works;
/// with a household, so do its API keys and a logged-in session that sends its CSRF token, and
/// once the household is set up nothing else does (not even on loopback); without a household,
/// [`crate::Auth`] decides alone. `None`: refused.
fn v1_caller(state: &AppState, headers: &axum::http::HeaderMap) -> Option<Caller> {
    if let Some(caller) = state.auth.configured_caller(headers) {
        return Some(caller);
    }
    let Some(h) = state.household.as_ref() else {
        return state.auth.open().then_some(Caller::Open);
    };
    if let Some(key) = crate::auth::api_key(headers) {
        if let Ok(Some(id)) = h.store.api_key_id(key) {
            return Some(Caller::HouseholdKey(id));
        }
    }
    // The page's session works too, with its CSRF token: a cookie alone would let any page
    // the person visits use the API in their name.
    if let Some(user) = crate::household::session_with_csrf(h, headers) {
        return Some(Caller::Person {
            id: user.id,
            keeper: user.role == hearth_store::PersonRole::Owner,
        });
    }
    (!h.is_set_up() && state.auth.open()).then_some(Caller::Open)
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
