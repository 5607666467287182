//! The owner's settings: people, API keys for apps, the household's name, models.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::sse::Event as SseEvent;
use axum::response::Response;
use axum::Json;
use hearth_store::{PersonRole, Secret};
use serde::Deserialize;
use serde_json::{json, Value};

use super::db;
use super::session::{household, Me};
use crate::error::ApiError;
use crate::AppState;

pub async fn people(State(state): State<Arc<AppState>>, me: Me) -> Result<Json<Value>, ApiError> {
    me.require_owner()?;
    let h = household(&state)?;
    let mut people = json!(h.store.people().map_err(db)?);
    // Each child with their limits, so the keeper's page shows them without a request each.
    for p in people.as_array_mut().into_iter().flatten() {
        if p["role"] == "child" {
            if let Some(id) = p["id"].as_i64() {
                p["limits"] = super::family::child_limits_json(&state, h, id)?;
            }
        }
    }
    Ok(Json(people))
}

#[derive(Deserialize)]
pub struct SecretBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    pin: Option<String>,
    /// "member" (the default) or "child", when adding a person.
    #[serde(default)]
    role: Option<String>,
}

impl SecretBody {
    fn secret(self) -> Result<Secret, ApiError> {
        match (self.password, self.pin) {
            (Some(p), None) => Ok(Secret::Password(p)),
            (None, Some(p)) => Ok(Secret::Pin(p)),
            _ => Err(ApiError::invalid(
                "password",
                "give either a password or a PIN (4 to 8 digits)",
            )),
        }
    }
}

pub async fn add_person(
    State(state): State<Arc<AppState>>,
    me: Me,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    me.require_owner()?;
    let h = household(&state)?;
    let mut b: SecretBody = crate::body::parse_body_async(body).await?;
    let name = b
        .name
        .take()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::invalid("name", "give the person a name"))?;
    let role = match b.role.take().as_deref() {
        None | Some("member") => PersonRole::Member,
        Some("child") => PersonRole::Child,
        Some(_) => {
            return Err(ApiError::invalid(
                "role",
                "a person is added as a grown-up (member) or a child",
            ))
        }
    };
    let secret = b.secret()?;
    let store = h.store.clone();
    let p = tokio::task::spawn_blocking(move || store.add_person_as(&name, &secret, role))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(db)?;
    Ok(Json(json!(p)))
}

pub async fn reset_person(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    me.require_owner()?;
    let h = household(&state)?;
    let b: SecretBody = crate::body::parse_body_async(body).await?;
    let secret = b.secret()?;
    let store = h.store.clone();
    tokio::task::spawn_blocking(move || store.reset_secret(id, &secret))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(db)?;
    Ok(Json(json!({})))
}

pub async fn remove_person(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    me.require_owner()?;
    if id == me.user.id {
        return Err(ApiError::bad_request("you cannot remove yourself"));
    }
    let h = household(&state)?;
    h.store.remove_person(id).map_err(db)?;
    // Their conversations are gone: so is any reply still being written in one.
    super::chat::stop_replies_of(h, id);
    Ok(Json(json!({})))
}

pub async fn keys(State(state): State<Arc<AppState>>, me: Me) -> Result<Json<Value>, ApiError> {
    me.require_owner()?;
    let h = household(&state)?;
    Ok(Json(json!(h.store.api_keys().map_err(db)?)))
}

#[derive(Deserialize)]
pub struct KeyBody {
    name: String,
}

pub async fn create_key(
    State(state): State<Arc<AppState>>,
    me: Me,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    me.require_owner()?;
    let h = household(&state)?;
    let b: KeyBody = crate::body::parse_body_async(body).await?;
    let name = b.name.trim();
    if name.is_empty() || name.chars().count() > 60 {
        return Err(ApiError::invalid(
            "name",
            "name the key after the app that uses it (1 to 60 characters)",
        ));
    }
    let (info, key) = h.store.create_api_key(name, me.user.id).map_err(db)?;
    let mut v = json!(info);
    v["key"] = json!(key);
    Ok(Json(v))
}

pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    me.require_owner()?;
    let h = household(&state)?;
    h.store.revoke_api_key(id).map_err(db)?;
    Ok(Json(json!({})))
}

pub async fn settings(State(state): State<Arc<AppState>>, me: Me) -> Result<Json<Value>, ApiError> {
    me.require_owner()?;
    let h = household(&state)?;
    let admin = h.admin.clone();
    let served = state.served();
    let in_use = served.model_id.clone();
    let idle = state.metrics.idle();
    let (installed, catalog, plan, advice) = match admin {
        Some(a) => tokio::task::spawn_blocking(move || {
            (
                a.installed(),
                a.catalog(),
                a.plan(),
                a.advice(&in_use, idle),
            )
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?,
        None => (json!([]), json!([]), None, None),
    };
    Ok(Json(json!({
        "household": h.store.household().map_err(db)?,
        "model": {"id": served.model_id, "ctx": served.ctx},
        "installed": installed,
        "catalog": catalog,
        "plan": plan,
        "advice": advice,
    })))
}

#[derive(Deserialize)]
pub struct SettingsBody {
    household: String,
}

pub async fn put_settings(
    State(state): State<Arc<AppState>>,
    me: Me,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    me.require_owner()?;
    let h = household(&state)?;
    let b: SettingsBody = crate::body::parse_body_async(body).await?;
    let name = b.household.trim();
    if name.is_empty() || name.chars().count() > 60 {
        return Err(ApiError::invalid(
            "household",
            "the household's name has 1 to 60 characters",
        ));
    }
    h.store.set_household_name(name).map_err(db)?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct PullBody {
    name: String,
}

/// Pulls a catalog model, streaming progress as SSE (`progress`, then `done` or `error`).
pub async fn pull_model(
    State(state): State<Arc<AppState>>,
    me: Me,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    me.require_owner()?;
    let h = household(&state)?;
    let b: PullBody = crate::body::parse_body_async(body).await?;
    let admin = h
        .admin
        .clone()
        .ok_or_else(|| ApiError::not_found("this server cannot download models"))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<SseEvent>(64);
    tokio::task::spawn_blocking(move || {
        let progress = |done: u64, total: Option<u64>| {
            let _ = tx.try_send(
                SseEvent::default()
                    .event("progress")
                    .data(json!({"done": done, "total": total}).to_string()),
            );
        };
        let end = match admin.pull(&b.name, &progress) {
            Ok(()) => SseEvent::default().event("done").data("{}"),
            Err(message) => SseEvent::default()
                .event("error")
                .data(json!({"message": message}).to_string()),
        };
        let _ = tx.blocking_send(end);
    });
    Ok(crate::generation::sse(rx))
}

#[derive(Deserialize)]
pub struct UseBody {
    name: String,
}

/// Switches the model Hearth serves, at once: new chats and API requests go to it, replies
/// already being written finish on the old one. The choice is kept for the next start too.
pub async fn use_model(
    State(state): State<Arc<AppState>>,
    me: Me,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    me.require_owner()?;
    let h = household(&state)?;
    let b: UseBody = crate::body::parse_body_async(body).await?;
    let admin = h
        .admin
        .clone()
        .ok_or_else(|| ApiError::not_found("this server cannot switch models"))?;
    let installed = admin.installed();
    let Some(entry) = installed
        .as_array()
        .and_then(|v| v.iter().find(|m| m["name"] == b.name.as_str()))
    else {
        return Err(ApiError::invalid(
            "name",
            format!("{} is not a model installed on this machine", b.name),
        ));
    };
    if entry["chat"] == false {
        return Err(ApiError::invalid(
            "name",
            format!(
                "{} is a base model: it continues text but cannot hold a conversation, so this page could not use it. Apps can: start `hearth serve --model {}` and use /v1/completions.",
                b.name, b.name
            ),
        ));
    }
    if b.name == state.model_id() {
        h.store.set_setting("model", &b.name).map_err(db)?;
        return Ok(Json(json!({"model": b.name, "switched": false})));
    }
    switch_to(&state, admin, &b.name).await?;
    h.store.set_setting("model", &b.name).map_err(db)?;
    Ok(Json(json!({"model": b.name, "switched": true})))
}

/// Loads `name` through the binary and serves it from now on (replies being written finish on
/// the model they started with).
async fn switch_to(
    state: &AppState,
    admin: Arc<dyn super::Admin>,
    name: &str,
) -> Result<(), ApiError> {
    // One switch at a time: loading a model takes a while and memory is planned for one.
    if state
        .switching
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Err(ApiError::conflict(
            "another model is being loaded; try again when it is ready",
        ));
    }
    struct Unlock<'a>(&'a AtomicBool);
    impl Drop for Unlock<'_> {
        fn drop(&mut self) {
            self.0.store(false, Ordering::Release);
        }
    }
    let _unlock = Unlock(&state.switching);
    let name = name.to_string();
    let loaded = tokio::task::spawn_blocking(move || admin.load(&name))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let (model, engine) = loaded.map_err(|message| ApiError::invalid("name", message))?;
    state.switch_model(model, engine);
    Ok(())
}

/// What this Hearth would serve differently from `hearth.lock`, waiting for the keeper.
pub async fn lock_pending(
    State(state): State<Arc<AppState>>,
    me: Me,
) -> Result<Json<Value>, ApiError> {
    me.require_owner()?;
    let h = household(&state)?;
    let pending = match h.admin.clone() {
        Some(a) => tokio::task::spawn_blocking(move || a.lock_pending())
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?,
        None => json!([]),
    };
    Ok(Json(json!({"pending": pending})))
}

#[derive(Deserialize)]
pub struct AcceptBody {
    model: String,
}

/// The keeper accepts this Hearth's template and defaults for a locked model; the served model
/// is reloaded with them at once.
pub async fn lock_accept(
    State(state): State<Arc<AppState>>,
    me: Me,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    me.require_owner()?;
    let h = household(&state)?;
    let b: AcceptBody = crate::body::parse_body_async(body).await?;
    let admin = h
        .admin
        .clone()
        .ok_or_else(|| ApiError::not_found("this server cannot change the lock"))?;
    let (a, model) = (admin.clone(), b.model.clone());
    let mut accepted = tokio::task::spawn_blocking(move || a.lock_accept(&model))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|message| ApiError::invalid("model", message))?;
    let served = b.model == state.model_id();
    if served {
        switch_to(&state, admin, &b.model).await?;
    }
    accepted["reloaded"] = json!(served);
    Ok(Json(accepted))
}
