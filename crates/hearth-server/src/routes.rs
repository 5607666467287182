//! Every route in one place: `/v1` (each API family's handlers), Ollama's `/api` routes,
//! `/health`, `/metrics`, and with a household its page and its own `/api` routes (the two
//! `/api` lists never share a path: a test below keeps it so); and the layers around them,
//! outermost first: the request log, the browser access guard (`access.rs`), the body limit,
//! and on `/v1`, Ollama's routes and `/metrics` the key check. Also the few answers that belong to no family (`/health`,
//! `/metrics`, the 404).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request as HttpRequest, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, MethodRouter};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::anthropic;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;
use crate::{ollama, openai};

/// The full router over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.body_limit;
    let v1 = Router::new()
        .route("/v1/models", get(openai::models::models))
        .route("/v1/models/{id}", get(openai::models::model_info))
        .route("/v1/chat/completions", post(openai::chat::chat_completions))
        .route("/v1/completions", post(openai::completions::completions))
        .route("/v1/embeddings", post(openai::embeddings::embeddings))
        .route("/v1/responses", post(openai::responses::create))
        .route(
            "/v1/responses/{id}",
            get(openai::responses::retrieve).delete(openai::responses::delete),
        )
        .route(
            "/v1/responses/{id}/input_items",
            get(openai::responses::input_items),
        )
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .merge(openai_aliases())
        // Metrics show what the household asks and how often: the same rule as the API.
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    // Ollama's API under the same key rule, its errors in Ollama's shape (the 401 included).
    let ollama = ollama::routes()
        .into_iter()
        .fold(Router::new(), |r, (path, method)| r.route(path, method))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key))
        .layer(middleware::from_fn(ollama::error_shape));
    let mut app = Router::new()
        .merge(v1)
        .merge(ollama)
        .route("/health", get(health));
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

/// OpenAI's endpoints under the paths clients reach when their base URL lacks `/v1` or ends in
/// a slash: the same handlers, and (merged before the key layer) the same key rule.
fn openai_aliases() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/models/", get(openai::models::models))
        .route("/models", get(openai::models::models))
        .route("/models/", get(openai::models::models))
        .route("/models/{id}", get(openai::models::model_info))
        .route("/chat/completions", post(openai::chat::chat_completions))
        .route("/completions", post(openai::completions::completions))
        .route("/embeddings", post(openai::embeddings::embeddings))
}

/// The page and its API. Routes other than setup, login, state and the static assets need a
/// session (checked in each handler through [`Me`](crate::household::Me)).
fn household() -> Router<Arc<AppState>> {
    household_routes()
        .into_iter()
        .fold(Router::new(), |r, (path, method)| r.route(path, method))
        .fallback(|| async { ApiError::not_found("no such page") })
        .route_layer(middleware::from_fn(crate::household::no_store))
}

/// The household page's routes, as a list so that a test can hold them against Ollama's.
fn household_routes() -> Vec<(&'static str, MethodRouter<Arc<AppState>>)> {
    use crate::household::assets::{app_css, app_js, icon, index, index_at, manifest, page_module};
    use crate::household::{admin, assistant, chat, family, session};

    vec![
        ("/", get(index)),
        ("/app.js", get(app_js)),
        ("/app.css", get(app_css)),
        ("/page/{name}", get(page_module)),
        ("/manifest.webmanifest", get(manifest)),
        ("/icons/{name}", get(icon)),
        ("/c/{id}", get(index_at)),
        ("/settings", get(index_at)),
        ("/settings/{tab}", get(index_at)),
        ("/notes", get(index_at)),
        ("/api/state", get(session::state)),
        ("/api/setup", post(session::setup)),
        ("/api/login", post(session::login)),
        ("/api/logout", post(session::logout)),
        ("/api/me/password", post(session::change_password)),
        ("/api/people", get(admin::people).post(admin::add_person)),
        ("/api/people/{id}/reset", post(admin::reset_person)),
        ("/api/people/{id}", delete(admin::remove_person)),
        (
            "/api/people/{id}/limits",
            get(family::child_limits).put(family::put_child_limits),
        ),
        (
            "/api/people/{id}/conversations",
            get(family::child_conversations),
        ),
        (
            "/api/people/{id}/conversations/{conv}",
            get(family::child_conversation),
        ),
        (
            "/api/me/settings",
            get(family::my_settings).put(family::put_my_settings),
        ),
        ("/api/keys", get(admin::keys).post(admin::create_key)),
        ("/api/keys/{id}", delete(admin::revoke_key)),
        (
            "/api/settings",
            get(admin::settings).put(admin::put_settings),
        ),
        ("/api/models/pull", post(admin::pull_model)),
        ("/api/models/use", post(admin::use_model)),
        ("/api/lock", get(admin::lock_pending)),
        ("/api/lock/accept", post(admin::lock_accept)),
        (
            "/api/conversations",
            get(chat::list).post(chat::create).delete(chat::delete_all),
        ),
        (
            "/api/conversations/{id}",
            get(chat::get_one)
                .patch(chat::rename)
                .delete(chat::delete_one),
        ),
        ("/api/conversations/{id}/messages", post(chat::send)),
        ("/api/conversations/{id}/regenerate", post(chat::regenerate)),
        ("/api/conversations/{id}/edit", post(chat::edit)),
        ("/api/conversations/{id}/branch", post(chat::switch_branch)),
        ("/api/conversations/{id}/stop", post(chat::stop)),
        (
            "/api/conversations/{id}/continue",
            post(chat::continue_reply),
        ),
        ("/api/conversations/{id}/events", get(chat::events)),
        ("/api/conversations/{id}/tool", post(chat::use_tool)),
        ("/api/conversations/{id}/steps/{step}", post(chat::decide)),
        ("/api/tools", get(assistant::my_tools)),
        (
            "/api/people/{id}/tools",
            get(assistant::person_tools).put(assistant::set_person_tools),
        ),
        ("/api/audit", get(assistant::audit)),
        (
            "/api/notes",
            get(assistant::notes).post(assistant::create_note),
        ),
        (
            "/api/notes/{id}",
            patch(assistant::update_note).delete(assistant::delete_note),
        ),
        ("/api/reminders", get(assistant::reminders)),
        (
            "/api/reminders/{id}/dismiss",
            post(assistant::dismiss_reminder),
        ),
        (
            "/api/conversations/{id}/export",
            get(chat::export::export_chat),
        ),
        (
            "/api/people/{id}/conversations/{conv}/export",
            get(chat::export::export_child_chat),
        ),
        ("/api/export", get(chat::export)),
    ]
}

/// One log line and one metrics count per request.
async fn log_request(State(state): State<Arc<AppState>>, req: HttpRequest, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status();
    // Known paths only, so a scanner cannot grow the metrics without bound.
    // The paths without `/v1` count as their `/v1` twins.
    let endpoint = match path.as_str() {
        "/v1/chat/completions"
        | "/v1/completions"
        | "/v1/embeddings"
        | "/v1/models"
        | "/v1/responses"
        | "/v1/messages"
        | "/v1/messages/count_tokens"
        | "/health"
        | "/metrics" => path.as_str(),
        "/chat/completions" => "/v1/chat/completions",
        "/completions" => "/v1/completions",
        "/embeddings" => "/v1/embeddings",
        "/models" | "/models/" | "/v1/models/" => "/v1/models",
        p if p.starts_with("/v1/models/") || p.starts_with("/models/") => "/v1/models/{id}",
        p if p.starts_with("/v1/responses/") && p.ends_with("/input_items") => {
            "/v1/responses/{id}/input_items"
        }
        p if p.starts_with("/v1/responses/") => "/v1/responses/{id}",
        p if ollama::PATHS.contains(&p) => p,
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
    if child_session(&state, req.headers()) {
        let e = ApiError {
            status: axum::http::StatusCode::FORBIDDEN,
            ..ApiError::bad_request(
                "Apps and the API are for the grown-ups of this household; chat on Hearth's page instead.",
            )
            .with_code("child")
        };
        if req.uri().path().starts_with("/v1/messages") {
            return anthropic::error_response(&e);
        }
        return e.into_response();
    }
    let message = match (crate::auth::api_key(req.headers()).is_some(), state.household.is_some()) {
        (true, _) => "Incorrect API key provided.",
        (false, false) => "This server requires an API key: send it as `Authorization: Bearer KEY`.",
        (false, true) => "This server requires an API key: the household's owner creates one in Settings → Apps; send it as `Authorization: Bearer KEY`.",
    };
    // Anthropic's clients read only Anthropic's error shape.
    if req.uri().path().starts_with("/v1/messages") {
        let message = message.replace("`Authorization: Bearer KEY`", "`x-api-key: KEY`");
        return anthropic::error_response(&ApiError::unauthorized(message));
    }
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
    // A child's session is not a caller: see `child_session`.
    if let Some(user) = crate::household::session_with_csrf(h, headers)
        .filter(|u| u.role != hearth_store::PersonRole::Child)
    {
        return Some(Caller::Person {
            id: user.id,
            keeper: user.role == hearth_store::PersonRole::Owner,
        });
    }
    (!h.is_set_up() && state.auth.open()).then_some(Caller::Open)
}

/// Whether the request comes from a child's page session (with its CSRF token): the API would
/// skip a child's prompt, hours and topics, so a child's session never reaches it.
fn child_session(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    state.household.as_ref().is_some_and(|h| {
        crate::household::session_with_csrf(h, headers)
            .is_some_and(|u| u.role == hearth_store::PersonRole::Child)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether one route pattern can match a path the other can (`{id}` matches any segment).
    fn overlap(a: &str, b: &str) -> bool {
        let (a, b): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
        let param = |s: &str| s.starts_with('{');
        a.len() == b.len()
            && a.iter()
                .zip(&b)
                .all(|(x, y)| x == y || param(x) || param(y))
    }

    #[test]
    fn ollama_and_household_api_paths_never_clash() {
        let household: Vec<&str> = household_routes().iter().map(|r| r.0).collect();
        let ollama: Vec<&str> = ollama::routes().iter().map(|r| r.0).collect();
        assert!(!ollama.is_empty() && household.iter().any(|p| p.starts_with("/api/")));
        for o in &ollama {
            for h in &household {
                assert!(
                    !overlap(o, h),
                    "Ollama's {o} and the household page's {h} would answer the same requests"
                );
            }
        }
        // The check itself sees a clash where there is one.
        assert!(overlap("/api/people/{id}", "/api/people/tags"));
        assert!(!overlap("/api/people/{id}", "/api/tags"));
    }
}
