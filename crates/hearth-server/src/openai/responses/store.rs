//! Where stored responses live: with a household, in its database (hearth-store's `responses`
//! table, kept 30 days); without one (`hearth serve --no-household`), in this process's memory,
//! the newest [`MEMORY_LIMIT`] across all callers, gone when the server stops. Either way a
//! response is found only by the caller that made it.

use std::collections::VecDeque;
use std::sync::Mutex;

use hearth_store::StoredResponse;
use serde_json::Value;

use crate::error::{ApiError, AppResult};
use crate::AppState;

/// Responses kept in memory without a household; the oldest goes first.
pub const MEMORY_LIMIT: usize = 1000;

/// One stored response, as the handlers use it.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub id: String,
    pub created: i64,
    /// The conversation before this response's input.
    pub context: Vec<Value>,
    pub input: Vec<Value>,
    pub response: Value,
}

impl Record {
    /// The whole conversation a response continuing this one starts from.
    pub fn conversation(&self) -> Vec<Value> {
        let mut items = self.context.clone();
        items.extend(self.input.iter().cloned());
        items.extend(
            self.response["output"]
                .as_array()
                .into_iter()
                .flatten()
                .cloned(),
        );
        items
    }
}

/// The in-memory store of a server without a household.
#[derive(Default)]
pub struct MemoryResponses {
    /// (owner, record), oldest first.
    kept: Mutex<VecDeque<(String, Record)>>,
}

impl MemoryResponses {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, Record)>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, owner: &str, r: Record) {
        let mut kept = self.lock();
        while kept.len() >= MEMORY_LIMIT {
            kept.pop_front();
        }
        kept.push_back((owner.to_string(), r));
    }

    fn load(&self, owner: &str, id: &str) -> Option<Record> {
        self.lock()
            .iter()
            .find(|(o, r)| o == owner && r.id == id)
            .map(|(_, r)| r.clone())
    }

    fn delete(&self, owner: &str, id: &str) -> bool {
        let mut kept = self.lock();
        let before = kept.len();
        kept.retain(|(o, r)| !(o == owner && r.id == id));
        kept.len() < before
    }
}

fn db(e: hearth_store::Error) -> ApiError {
    crate::household::db(e)
}

fn parse(text: &str) -> AppResult<Value> {
    serde_json::from_str(text)
        .map_err(|e| ApiError::internal(format!("a stored response is not valid JSON: {e}")))
}

fn list(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        _ => Vec::new(),
    }
}

pub(crate) fn save(state: &AppState, owner: &str, r: Record) -> AppResult<()> {
    let Some(h) = state.household.as_ref() else {
        state.responses.save(owner, r);
        return Ok(());
    };
    let stored = StoredResponse {
        id: r.id,
        created: r.created,
        context: Value::Array(r.context).to_string(),
        input: Value::Array(r.input).to_string(),
        response: r.response.to_string(),
    };
    h.store.save_response(owner, &stored).map_err(db)
}

pub(crate) fn load(state: &AppState, owner: &str, id: &str) -> AppResult<Option<Record>> {
    let Some(h) = state.household.as_ref() else {
        return Ok(state.responses.load(owner, id));
    };
    let Some(s) = h.store.response(owner, id).map_err(db)? else {
        return Ok(None);
    };
    Ok(Some(Record {
        id: s.id,
        created: s.created,
        context: list(parse(&s.context)?),
        input: list(parse(&s.input)?),
        response: parse(&s.response)?,
    }))
}

/// `false`: the caller has no response `id`.
pub(crate) fn delete(state: &AppState, owner: &str, id: &str) -> AppResult<bool> {
    let Some(h) = state.household.as_ref() else {
        return Ok(state.responses.delete(owner, id));
    };
    h.store.delete_response(owner, id).map_err(db)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> Record {
        Record {
            id: id.into(),
            created: 0,
            context: Vec::new(),
            input: Vec::new(),
            response: serde_json::json!({"id": id, "output": []}),
        }
    }

    #[test]
    fn memory_responses_are_their_owners_only() {
        let m = MemoryResponses::default();
        m.save("key:a", record("resp_1"));
        assert!(m.load("key:a", "resp_1").is_some());
        assert!(m.load("key:b", "resp_1").is_none());
        assert!(!m.delete("key:b", "resp_1"));
        assert!(m.delete("key:a", "resp_1"));
        assert!(m.load("key:a", "resp_1").is_none());
    }

    #[test]
    fn memory_keeps_the_newest_thousand() {
        let m = MemoryResponses::default();
        for i in 0..=MEMORY_LIMIT {
            m.save("open", record(&format!("resp_{i}")));
        }
        assert!(m.load("open", "resp_0").is_none());
        assert!(m.load("open", "resp_1").is_some());
        assert!(m.load("open", &format!("resp_{MEMORY_LIMIT}")).is_some());
        assert_eq!(m.lock().len(), MEMORY_LIMIT);
    }
}
