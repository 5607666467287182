//! `GET /v1/models` and `GET /v1/models/{id}`: the chat model in service and the embedding
//! model, if installed.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use crate::error::{ApiError, AppResult};
use crate::generation::unix_time;
use crate::AppState;

fn model_object(id: &str, created: u64) -> Value {
    json!({"id": id, "object": "model", "created": created, "owned_by": "hearth"})
}

pub(crate) async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    let created = unix_time(state.started);
    let mut data = vec![model_object(&state.served().model_id, created)];
    if let Some(e) = &state.embed {
        data.push(model_object(&e.id, created));
    }
    Json(json!({"object": "list", "data": data}))
}

pub(crate) async fn model_info(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    let served = state.served();
    if id == served.model_id || state.embed.as_ref().is_some_and(|e| e.id == id) {
        return Ok(Json(model_object(&id, unix_time(state.started))));
    }
    Err(ApiError::model_not_found(&id, &state.model_ids(&served)))
}
