//! API keys for apps. A key is `hk-` and 64 hex digits (256 random bits); only its SHA-256 is
//! stored, so the owner sees it once, at creation.

use rusqlite::{params, OptionalExtension};

use crate::secret;
use crate::{ApiKeyInfo, Error, Result, Store};

/// What every key starts with, so people (and secret scanners) can tell a Hearth key.
pub const KEY_PREFIX: &str = "hk-";

/// Longest key name, in characters.
pub const MAX_KEY_NAME_CHARS: usize = 60;

/// `last_used` is rewritten at most this often (seconds): an app streaming many requests
/// should not turn each into a write.
const TOUCH_EVERY_SECS: i64 = 60;

impl Store {
    /// Creates a key named `name` (what app it is for). Returns its listing and the key itself,
    /// which is not kept and cannot be shown again.
    pub fn create_api_key(&self, name: &str, created_by: i64) -> Result<(ApiKeyInfo, String)> {
        let name = secret::check_text("key name", name, MAX_KEY_NAME_CHARS)?;
        let key = format!("{KEY_PREFIX}{}", secret::random_hex(32));
        let now = self.now();
        let conn = self.conn();
        let creator: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1)",
            [created_by],
            |r| r.get(0),
        )?;
        if !creator {
            return Err(Error::NotFound {
                what: "person",
                id: created_by,
            });
        }
        conn.execute(
            "INSERT INTO api_keys (name, key_hash, created_by, created) VALUES (?1, ?2, ?3, ?4)",
            params![name, secret::token_hash(&key), created_by, now],
        )?;
        let info = ApiKeyInfo {
            id: conn.last_insert_rowid(),
            name: name.into(),
            created: now,
            last_used: None,
            created_by: Some(created_by),
        };
        Ok((info, key))
    }

    /// All keys, oldest first.
    pub fn api_keys(&self) -> Result<Vec<ApiKeyInfo>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT id, name, created, last_used, created_by FROM api_keys ORDER BY id")?;
        let keys = stmt
            .query_map([], |r| {
                Ok(ApiKeyInfo {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    created: r.get(2)?,
                    last_used: r.get(3)?,
                    created_by: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(keys)
    }

    /// Deletes a key; apps using it get 401 from then on. What the key's apps stored (their
    /// Responses) goes with it.
    pub fn revoke_api_key(&self, id: i64) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let changed = tx.execute("DELETE FROM api_keys WHERE id = ?1", [id])?;
        if changed == 0 {
            return Err(Error::NotFound {
                what: "API key",
                id,
            });
        }
        crate::responses::delete_owned(&tx, &crate::responses::api_key_owner(id))?;
        tx.commit()?;
        Ok(())
    }

    /// Whether `key` is a live key, noting when it was last used. The lookup is by the key's
    /// hash, so its timing says nothing about how much of a guess was right.
    pub fn verify_api_key(&self, key: &str) -> Result<bool> {
        Ok(self.api_key_id(key)?.is_some())
    }

    /// The id of the live key `key` (what the API scopes an app's stored data by), noting when
    /// it was last used; `None` for a key that is not (or no longer) valid.
    pub fn api_key_id(&self, key: &str) -> Result<Option<i64>> {
        if !key.starts_with(KEY_PREFIX) {
            return Ok(None);
        }
        let now = self.now();
        let conn = self.conn();
        let found: Option<(i64, Option<i64>)> = conn
            .query_row(
                "SELECT id, last_used FROM api_keys WHERE key_hash = ?1",
                [secret::token_hash(key)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((id, last_used)) = found else {
            return Ok(None);
        };
        if last_used.is_none_or(|t| now - t >= TOUCH_EVERY_SECS) {
            conn.execute(
                "UPDATE api_keys SET last_used = ?1 WHERE id = ?2",
                [now, id],
            )?;
        }
        Ok(Some(id))
    }
}
