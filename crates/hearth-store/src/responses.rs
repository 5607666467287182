//! Stored OpenAI Responses: what `previous_response_id` continues from, and what
//! `GET /v1/responses/{id}` answers.
//!
//! Every row belongs to an *owner*, a name for whoever made it (an app's API key, a person, a
//! configured key), and every query filters on it: another owner's id is simply not found, the
//! same answer as an id that never existed. The JSON columns are opaque here; the server gives
//! them their shape.
//!
//! Like OpenAI, Hearth keeps a response for [`RESPONSE_KEEP_SECS`] (30 days): older ones go
//! when a new one is saved. Removing a person or revoking an API key deletes what they stored,
//! so a later person or key that gets the same row id never inherits it.

use rusqlite::{params, OptionalExtension};

use crate::{Result, Store};

/// How long a stored response is kept, in seconds (OpenAI's 30 days).
pub const RESPONSE_KEEP_SECS: i64 = 30 * 24 * 3600;

/// The owner name of a person's stored data.
pub fn person_owner(id: i64) -> String {
    format!("person:{id}")
}

/// The owner name of the stored data of an app using the household's API key `id`.
pub fn api_key_owner(id: i64) -> String {
    format!("apikey:{id}")
}

/// One stored response. `context`, `input` and `response` are JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The response's id (`resp_...`), unique across owners.
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    /// The conversation before this response's input (the earlier responses it continues).
    pub context: String,
    /// This response's own input items.
    pub input: String,
    /// The response object as it was returned.
    pub response: String,
}

impl Store {
    /// Keeps `r` for `owner`, and forgets responses older than [`RESPONSE_KEEP_SECS`].
    pub fn save_response(&self, owner: &str, r: &StoredResponse) -> Result<()> {
        let now = self.now();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM responses WHERE created < ?1",
            [now - RESPONSE_KEEP_SECS],
        )?;
        tx.execute(
            "INSERT INTO responses (id, owner, created, context, input, response)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![r.id, owner, r.created, r.context, r.input, r.response],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// `owner`'s response `id`; `None` when it does not exist, has expired or is another's.
    pub fn response(&self, owner: &str, id: &str) -> Result<Option<StoredResponse>> {
        let oldest = self.now() - RESPONSE_KEEP_SECS;
        Ok(self
            .conn()
            .query_row(
                "SELECT id, created, context, input, response FROM responses
                 WHERE id = ?1 AND owner = ?2 AND created >= ?3",
                params![id, owner, oldest],
                |r| {
                    Ok(StoredResponse {
                        id: r.get(0)?,
                        created: r.get(1)?,
                        context: r.get(2)?,
                        input: r.get(3)?,
                        response: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// Deletes `owner`'s response `id` for good; `false` when there was none of theirs.
    pub fn delete_response(&self, owner: &str, id: &str) -> Result<bool> {
        let changed = self.conn().execute(
            "DELETE FROM responses WHERE id = ?1 AND owner = ?2",
            params![id, owner],
        )?;
        if changed > 0 {
            self.checkpoint()?;
        }
        Ok(changed > 0)
    }
}

/// Deletes everything `owner` stored (inside the caller's transaction).
pub(crate) fn delete_owned(conn: &rusqlite::Connection, owner: &str) -> Result<()> {
    conn.execute("DELETE FROM responses WHERE owner = ?1", [owner])?;
    Ok(())
}
