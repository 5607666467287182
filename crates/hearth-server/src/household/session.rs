//! Accounts and sessions: first-run setup, login with rate limits, the session cookie, CSRF.
//!
//! The cookie is HttpOnly and SameSite=Strict, and `Secure` only when the request came over
//! HTTPS (a TLS proxy in front says so with `X-Forwarded-Proto`): a home network usually serves
//! plain HTTP, where browsers would drop a `Secure` cookie and nobody could log in. Every
//! state-changing request also carries the session's CSRF token in `X-CSRF-Token`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hearth_store::{Secret, User};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{db, Household};
use crate::error::ApiError;
use crate::AppState;

pub const COOKIE: &str = "hearth_session";
const CSRF_HEADER: &str = "x-csrf-token";
/// Failed logins allowed per person and per address within [`WINDOW`].
const PER_NAME: u32 = 5;
const PER_ADDR: u32 = 20;
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Wrong setup codes allowed within [`WINDOW`], from anywhere together.
const SETUP_TRIES: u32 = 10;
const SETUP_KEY: &str = "setup-code";

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
        if !safe {
            let given = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !crate::auth::constant_time_eq(given.as_bytes(), csrf.as_bytes()) {
                return Err(ApiError {
                    status: axum::http::StatusCode::FORBIDDEN,
                    ..ApiError::bad_request("missing or wrong CSRF token; reload the page")
                        .with_code("csrf")
                });
            }
        }
        Ok(Me { user, csrf })
    }
}

fn me_json(u: &User) -> Value {
    json!({"id": u.id, "name": u.name, "role": u.role, "kind": u.kind})
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
    let mut resp = Json(json!({"me": me_json(user), "csrf": s.csrf})).into_response();
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
    Ok(Json(json!({
        "setup_needed": !set_up,
        "setup_code_required": !set_up && h.setup_code.is_some(),
        "household": name,
        "me": me.as_ref().map(|(u, _)| me_json(u)),
        "csrf": me.map(|(_, c)| c),
        "model": {"id": served.model_id, "ctx": served.ctx},
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
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let h = household(&state)?;
    let b: SetupBody = crate::openai::parse_body(&body)?;
    if h.is_set_up() {
        return Err(ApiError {
            status: axum::http::StatusCode::CONFLICT,
            ..ApiError::bad_request("this household is already set up; log in instead")
        });
    }
    if let Some(code) = &h.setup_code {
        // A million codes would fall to guessing without a limit; ten wrong tries per window.
        if let Some(wait) = h.limiter.blocked(SETUP_KEY, SETUP_TRIES) {
            return Err(ApiError {
                status: axum::http::StatusCode::TOO_MANY_REQUESTS,
                retry_after: Some(wait),
                ..ApiError::bad_request(format!(
                    "too many wrong setup codes; try again in {} minutes",
                    wait.div_ceil(60)
                ))
                .with_code("rate_limited")
            });
        }
        let given = b.setup_code.as_deref().unwrap_or("").trim().to_string();
        if !crate::auth::constant_time_eq(given.as_bytes(), code.as_bytes()) {
            h.limiter.fail(SETUP_KEY);
            return Err(ApiError::invalid(
                "setup_code",
                "the setup code is wrong: use the code Hearth printed in its terminal when it started",
            ));
        }
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
    let user = tokio::task::spawn_blocking(move || store.setup(&hn, &name, &pw))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(db)?;
    logged_in(h, &user, &headers)
}

#[derive(Deserialize)]
pub struct LoginBody {
    name: String,
    secret: String,
}

/// Failed-login counts per person and per address.
#[derive(Default)]
pub struct Limiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Limiter {
    /// Seconds to wait when `key` has used up its `limit`.
    fn blocked(&self, key: &str, limit: u32) -> Option<u64> {
        let mut m = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        m.retain(|_, (_, since)| now.duration_since(*since) < WINDOW);
        m.get(key)
            .filter(|(n, _)| *n >= limit)
            .map(|(_, since)| (WINDOW - now.duration_since(*since)).as_secs().max(1))
    }

    fn fail(&self, key: &str) {
        let mut m = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let e = m.entry(key.to_string()).or_insert((0, Instant::now()));
        e.0 += 1;
    }

    fn clear(&self, key: &str) {
        let mut m = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(key);
    }
}

pub async fn login(
    State(state): State<Arc<AppState>>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let h = household(&state)?;
    // The peer's address, when the server was started with it (not in `oneshot` tests).
    let addr = req.extensions().get::<ConnectInfo<SocketAddr>>().copied();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 64 << 10)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
    let b: LoginBody = crate::openai::parse_body(&body)?;
    let name_key = format!("name:{}", b.name.trim().to_lowercase());
    let addr_key = format!(
        "addr:{}",
        addr.map_or_else(|| "unknown".to_string(), |a| a.0.ip().to_string())
    );
    for (key, limit) in [(&name_key, PER_NAME), (&addr_key, PER_ADDR)] {
        if let Some(wait) = h.limiter.blocked(key, limit) {
            return Err(ApiError {
                status: axum::http::StatusCode::TOO_MANY_REQUESTS,
                retry_after: Some(wait),
                ..ApiError::bad_request(format!(
                    "too many wrong attempts; try again in {} minutes",
                    wait.div_ceil(60)
                ))
                .with_code("rate_limited")
            });
        }
    }
    let store = h.store.clone();
    let (name, secret) = (b.name.trim().to_string(), b.secret);
    let user = tokio::task::spawn_blocking(move || store.verify_login(&name, &secret))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(db)?;
    match user {
        Some(u) => {
            h.limiter.clear(&name_key);
            logged_in(h, &u, &headers)
        }
        None => {
            h.limiter.fail(&name_key);
            h.limiter.fail(&addr_key);
            Err(
                ApiError::unauthorized("that name and password do not match")
                    .with_code("wrong_login"),
            )
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
    let b: PasswordBody = crate::openai::parse_body(&body)?;
    let store = h.store.clone();
    let new = match me.user.kind {
        hearth_store::SecretKind::Pin => Secret::Pin(b.new),
        hearth_store::SecretKind::Password => Secret::Password(b.new),
    };
    let id = me.user.id;
    tokio::task::spawn_blocking(move || store.change_password(id, &b.old, &new))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(db)?;
    Ok(Json(json!({})))
}
