//! Counted tries of something guessable (a password, a PIN, the setup code), kept in the
//! database so a restart does not lift a lockout.
//!
//! A try is *reserved* before the slow check runs, not counted after it: fifty guesses sent at
//! once each take a try in turn under the connection's lock, so no more than the limit ever
//! reach the check. A check that then succeeds gives its try back ([`Store::release_try`]);
//! one that fails, or never finishes (the client left), keeps it.

use rusqlite::{params, OptionalExtension};

use crate::{Result, Store};

/// How many tries `key` may take within a window of `window_secs` that starts at its first try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    pub key: String,
    pub max: u32,
    pub window_secs: i64,
}

/// The answer to [`Store::reserve_tries`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reserved {
    /// Every limit had a try left; each has now used one.
    Granted,
    /// `key` has used all its tries; its window ends in `wait_secs` (at least 1). No limit
    /// was charged.
    Blocked { key: String, wait_secs: u64 },
}

impl Store {
    /// Takes one try from every limit, or from none if any has none left.
    pub fn reserve_tries(&self, limits: &[Limit]) -> Result<Reserved> {
        let now = self.now();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM attempts WHERE until <= ?1", [now])?;
        let mut next = Vec::with_capacity(limits.len());
        for l in limits {
            let row: Option<(u32, i64)> = tx
                .query_row(
                    "SELECT tries, until FROM attempts WHERE key = ?1",
                    [&l.key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let (tries, until) = row.unwrap_or((0, now + l.window_secs.max(1)));
            if tries >= l.max {
                // Dropping the transaction rolls the pruning back too, which is harmless.
                return Ok(Reserved::Blocked {
                    key: l.key.clone(),
                    wait_secs: (until - now).max(1) as u64,
                });
            }
            next.push((&l.key, tries + 1, until));
        }
        for (key, tries, until) in next {
            tx.execute(
                "INSERT INTO attempts (key, tries, until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET tries = excluded.tries",
                params![key, tries, until],
            )?;
        }
        tx.commit()?;
        Ok(Reserved::Granted)
    }

    /// Gives back one reserved try of `key` (the check it was reserved for succeeded).
    pub fn release_try(&self, key: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE attempts SET tries = tries - 1 WHERE key = ?1 AND tries > 0",
            [key],
        )?;
        Ok(())
    }

    /// How many tries `l.key` has left in its current window (`l.max` when none are counted),
    /// so a login form can warn before the last one.
    pub fn tries_left(&self, l: &Limit) -> Result<u32> {
        let used: Option<u32> = self
            .conn()
            .query_row(
                "SELECT tries FROM attempts WHERE key = ?1 AND until > ?2",
                params![l.key, self.now()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(l.max.saturating_sub(used.unwrap_or(0)))
    }

    /// Forgets every try of `key` (a person who logged in correctly starts afresh).
    pub fn clear_tries(&self, key: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM attempts WHERE key = ?1", [key])?;
        Ok(())
    }
}
