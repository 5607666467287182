//! Accounts and sessions: first-run setup, login with rate limits, the session cookie, CSRF.
//!
//! The cookie is HttpOnly and SameSite=Strict, and `Secure` only when the request came over
//! HTTPS (a TLS proxy in front says so with `X-Forwarded-Proto`): a home network usually serves
//! plain HTTP, where browsers would drop a `Secure` cookie and nobody could log in. Every
//! state-changing request also carries the session's CSRF token in `X-CSRF-Token`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hearth_store::{Secret, User};
use serde::Deserialize;
use serde_json::{json, Value};

use super::limits::{LoginTry, SetupTry};
use super::{db, Household};
use crate::error::ApiError;
use crate::AppState;

pub const COOKIE: &str = "hearth_session";
const CSRF_HEADER: &str = "x-csrf-token";

/// The household, or 404 when the server runs without one (tests of the bare API).
pub(crate) fn household(state: &AppState) -> Result<&Household, ApiError> {
    state
        .household
        .as_ref()
        .ok_or_else(|| ApiError::not_found("this server has no household page"))
}

/// The logged-in person. Extracting it checks the session cookie and, for any method that
/// changes state, the CSRF token.
pub struct Me {
    pub user: User,
    pub csrf: String,
}

impl Me {
    pub fn require_owner(&self) -> Result<(), ApiError> {
        if self.user.role == hearth_store::PersonRole::Owner {
            Ok(())
        } else {
            Err(ApiError {
                status: axum::http::StatusCode::FORBIDDEN,
                ..ApiError::bad_request("only the household's owner can do this")
            })
        }
    }
}

pub(crate) fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Whether the request carries the session's CSRF token, whatever its content type.
pub(crate) fn csrf_matches(headers: &HeaderMap, csrf: &str) -> bool {
    let given = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    crate::auth::constant_time_eq(given.as_bytes(), csrf.as_bytes())
}

/// The session behind a request's cookie, if any.
pub(crate) fn session_of(h: &Household, headers: &HeaderMap) -> Option<(User, String)> {
    let token = cookie_token(headers)?;
    h.store.session(&token).ok().flatten()
}

impl FromRequestParts<Arc<AppState>> for Me {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Me, ApiError> {
        let h = household(state)?;
        let (user, csrf) = session_of(h, &parts.headers)
            .ok_or_else(|| ApiError::unauthorized("please log in").with_code("not_logged_in"))?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe && !csrf_matches(&parts.headers, &csrf) {
            return Err(ApiError {
                status: axum::http::StatusCode::FORBIDDEN,
                ..ApiError::bad_request("missing or wrong CSRF token; reload the page")
                    .with_code("csrf")
            });
        }
        // A child outside their hours may still log out and stop a reply, nothing else.
        let path = parts.uri.path();
        if path != "/api/logout" && !path.ends_with("/stop") {
            if let Some(back_at) = super::family::resting(h, &user) {
                return Err(super::family::rest_error(back_at.as_deref()));
            }
        }
        Ok(Me { user, csrf })
    }
}

fn secure(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn set_cookie(resp: &mut Response, token: &str, secure: bool, max_age: u64) {
    let mut c = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}");
    if secure {
        c.push_str("; Secure");
    }
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Logs `user` in: a new session, its cookie, and the CSRF token in the body.
fn logged_in(h: &Household, user: &User, headers: &HeaderMap) -> Result<Response, ApiError> {
    let s = h.store.create_session(user.id).map_err(db)?;
    let me = super::family::me_json(h, user);
    let mut resp = Json(json!({"me": me, "csrf": s.csrf})).into_response();
    set_cookie(&mut resp, &s.token, secure(headers), 30 * 24 * 3600);
    Ok(resp)
}

pub async fn state(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    let name = h.store.household().map_err(db)?;
    let set_up = h.store.is_set_up().map_err(db)?;
    let me = session_of(h, &headers);
    let served = state.served();
    // The limit depends on the person's own system message; before login, the household's.
    let limit = match &me {
        Some((u, _)) => Some(super::chat::message_limit(served.clone(), h, u).await?),
        None => None,
    };
    Ok(Json(json!({
        "setup_needed": !set_up,
        "setup_code_required": !set_up && h.setup_code.is_some(),
        "household": name,
        "me": me.as_ref().map(|(u, _)| super::family::me_json(h, u)),
        "csrf": me.map(|(_, c)| c),
        "model": {
            "id": served.model_id,
            "ctx": served.ctx,
            "message_limit": limit,
        },
    })))
}

#[derive(Deserialize)]
pub struct SetupBody {
    household: String,
    name: String,
    password: String,
    #[serde(default)]
    setup_code: Option<String>,
}

pub async fn setup(
    State(state): State<Arc<AppState>>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let h = household(&state)?;
    let (addr, headers, body) = read_form(req).await?;
    let b: SetupBody = crate::body::parse_body_async(body).await?;
    if h.is_set_up() {
        return Err(ApiError {
            status: axum::http::StatusCode::CONFLICT,
            ..ApiError::bad_request("this household is already set up; log in instead")
        });
    }
    if let Some(code) = &h.setup_code {
        // A million codes would fall to guessing without a limit: ten tries per address and a
        // hundred from the network together, per window.
        let attempt = SetupTry::reserve(&h.store, addr)?;
        let given = b.setup_code.as_deref().unwrap_or("").trim().to_string();
        if !crate::auth::constant_time_eq(given.as_bytes(), code.as_bytes()) {
            return Err(ApiError::invalid(
                "setup_code",
                "the setup code is wrong: use the code Hearth printed in its terminal when it started",
            ));
        }
        attempt.succeeded(&h.store);
    }
    let household_name = b.household.trim();
    if household_name.is_empty() || household_name.chars().count() > 60 {
        return Err(ApiError::invalid(
            "household",
            "give the household a name (1 to 60 characters)",
        ));
    }
    let store = h.store.clone();
    let (hn, name, pw) = (
        household_name.to_string(),
        b.name.trim().to_string(),
        b.password,
    );
    let slot = h.checks.slot().await?;
    let user = tokio::task::spawn_blocking(move || {
        let _permit = slot.permit;
        store.setup(&hn, &name, &pw)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(db)?;
    logged_in(h, &user, &headers)
}

/// The peer's address (when the server was started with it; not in `oneshot` tests), the
/// headers and the body of a setup or login request, which must be JSON: a form or text/plain
/// body is what a foreign page can send without asking the browser first.
async fn read_form(
    req: axum::extract::Request,
) -> Result<(Option<SocketAddr>, HeaderMap, axum::body::Bytes), ApiError> {
    let addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError {
            status: axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ..ApiError::bad_request("send this as JSON (Content-Type: application/json)")
        });
    }
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 64 << 10)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
    Ok((addr, headers, body))
}

#[derive(Deserialize)]
pub struct LoginBody {
    name: String,
    secret: String,
}

pub async fn login(
    State(state): State<Arc<AppState>>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let h = household(&state)?;
    let (addr, headers, body) = read_form(req).await?;
    let b: LoginBody = crate::body::parse_body_async(body).await?;
    // The try is taken before the password is checked, so guesses sent together cannot pass
    // the limit while the first ones are still being checked.
    let attempt = LoginTry::reserve(&h.store, &b.name, addr)?;
    let slot = h.checks.slot().await?;
    let store = h.store.clone();
    let (name, secret) = (b.name.trim().to_string(), b.secret);
    let user = tokio::task::spawn_blocking(move || {
        let _permit = slot.permit;
        store.verify_login(&name, &secret)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(db)?;
    match user {
        Some(u) => {
            attempt.succeeded(&h.store);
            logged_in(h, &u, &headers)
        }
        None => {
            // The page warns before the last try and says when this one locked the name.
            let code = match attempt.left(&h.store) {
                0 => "locked_now",
                1 => "last_try",
                _ => "wrong_login",
            };
            Err(ApiError::unauthorized("that name and password do not match").with_code(code))
        }
    }
}

pub async fn logout(
    State(state): State<Arc<AppState>>,
    me: Me,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let h = household(&state)?;
    let _ = me;
    if let Some(t) = cookie_token(&headers) {
        h.store.end_session(&t).map_err(db)?;
    }
    let mut resp = Json(json!({})).into_response();
    set_cookie(&mut resp, "", secure(&headers), 0);
    Ok(resp)
}

#[derive(Deserialize)]
pub struct PasswordBody {
    old: String,
    new: String,
}

pub async fn change_password(
    State(state): State<Arc<AppState>>,
    me: Me,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    let b: PasswordBody = crate::body::parse_body_async(body).await?;
    let store = h.store.clone();
    let new = match me.user.kind {
        hearth_store::SecretKind::Pin => Secret::Pin(b.new),
        hearth_store::SecretKind::Password => Secret::Password(b.new),
    };
    let id = me.user.id;
    let slot = h.checks.slot().await?;
    tokio::task::spawn_blocking(move || {
        let _permit = slot.permit;
        store.change_password(id, &b.old, &new)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(db)?;
    Ok(Json(json!({})))
}
