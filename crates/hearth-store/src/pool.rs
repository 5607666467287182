//! The household's pool of machines: which machines the keeper paired (by node key), what each
//! last reported, and the open pairing codes.
//!
//! The pool's network code (`hearth-pool`) decides who may connect; this is only its memory, so
//! a restarted head still knows its members and a removed member stays removed.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::{secret, Error, Result, Store};

/// Longest machine name, in characters.
pub const MAX_MACHINE_NAME_CHARS: usize = 60;

/// A paired machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolMember {
    /// Its node key: hex of the Ed25519 public key that is its identity on the pool.
    pub key: String,
    /// The name it gave when it paired (its host name, unless the keeper chose another).
    pub name: String,
    /// When it paired (Unix seconds).
    pub paired: i64,
    /// Its last heartbeat (Unix seconds), `None` before it first connected.
    pub last_seen: Option<i64>,
    /// The JSON report it last sent (memory, bandwidth, its link), as the pool wrote it.
    pub report: Option<String>,
}

/// `name` trimmed, if it can name a machine (1 to [`MAX_MACHINE_NAME_CHARS`] characters, no
/// control characters). The joiner and the head check it before a try of a code is spent.
pub fn check_machine_name(name: &str) -> Result<&str> {
    secret::check_text("machine name", name, MAX_MACHINE_NAME_CHARS)
}

/// What one pairing try found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteTry {
    /// The invite exists and one of its tries is now spent: run the exchange with this secret.
    Secret(String),
    /// No such invite: never made, already used, expired or out of tries (one answer for all, so
    /// a guesser learns nothing about which).
    Unknown,
}

impl Store {
    /// Opens a pairing code: `id` is its public half (which invite), `secret` the password for
    /// the exchange, valid for `valid_secs` seconds and `tries` attempts.
    pub fn add_pool_invite(
        &self,
        id: &str,
        secret: &str,
        valid_secs: i64,
        tries: u32,
    ) -> Result<()> {
        let now = self.now();
        let conn = self.conn();
        conn.execute("DELETE FROM pool_invites WHERE expires <= ?1", [now])?;
        conn.execute(
            "INSERT INTO pool_invites (id, secret, expires, tries_left) VALUES (?1, ?2, ?3, ?4)",
            params![id, secret, now + valid_secs, tries],
        )?;
        Ok(())
    }

    /// Spends one try of invite `id` before the exchange runs, so tries are counted even when
    /// the other side hangs up halfway (or the head restarts). A code out of tries stays until
    /// it expires or pairs, so an exchange already running on its last try can still finish.
    pub fn take_pool_invite_try(&self, id: &str) -> Result<InviteTry> {
        let now = self.now();
        let mut conn = self.conn();
        // Immediate: a read then a write, which another process writing in between would make
        // fail with a busy snapshot the busy handler cannot wait out.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM pool_invites WHERE expires <= ?1", [now])?;
        let row: Option<(String, i64)> = tx
            .query_row(
                "SELECT secret, tries_left FROM pool_invites WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let found = match row {
            Some((secret, left)) if left > 0 => {
                tx.execute(
                    "UPDATE pool_invites SET tries_left = tries_left - 1 WHERE id = ?1",
                    [id],
                )?;
                InviteTry::Secret(secret)
            }
            _ => InviteTry::Unknown,
        };
        tx.commit()?;
        Ok(found)
    }

    /// Pairs the machine with node key `key` under `name`, using up invite `invite_id` in the
    /// same transaction (a code pairs one machine, once: of exchanges that ran at the same time,
    /// the first to get here wins, and none pairs after the code expired). Pairing a key again
    /// keeps one row and takes the new name: a machine is its key, never a duplicate.
    pub fn pair_pool_member(&self, invite_id: &str, key: &str, name: &str) -> Result<PoolMember> {
        let name = check_machine_name(name)?;
        check_key(key)?;
        let now = self.now();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let used = tx.execute(
            "DELETE FROM pool_invites WHERE id = ?1 AND expires > ?2",
            params![invite_id, now],
        )?;
        if used != 1 {
            return Err(Error::Invalid {
                field: "pairing code",
                why: "it expired or already paired another machine; make a new one with \
                      `hearth pool invite`"
                    .into(),
            });
        }
        tx.execute(
            "INSERT INTO pool_members (key, name, paired) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET name = excluded.name, paired = excluded.paired",
            params![key, name, now],
        )?;
        tx.commit()?;
        Ok(PoolMember {
            key: key.into(),
            name: name.into(),
            paired: now,
            last_seen: None,
            report: None,
        })
    }

    /// The paired machine with node key `key`, if it is paired.
    pub fn pool_member(&self, key: &str) -> Result<Option<PoolMember>> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                "SELECT key, name, paired, last_seen, report FROM pool_members WHERE key = ?1",
                [key],
                member_row,
            )
            .optional()?)
    }

    /// Every paired machine, in the order they paired.
    pub fn pool_members(&self) -> Result<Vec<PoolMember>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT key, name, paired, last_seen, report FROM pool_members ORDER BY paired, key",
        )?;
        let rows = stmt.query_map([], member_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records a heartbeat of `key` and, when given, its latest report. A key that is no longer
    /// paired is left out (the row is not brought back).
    pub fn pool_member_seen(&self, key: &str, report: Option<&str>) -> Result<bool> {
        let now = self.now();
        let conn = self.conn();
        let n = match report {
            Some(r) => conn.execute(
                "UPDATE pool_members SET last_seen = ?2, report = ?3 WHERE key = ?1",
                params![key, now, r],
            )?,
            None => conn.execute(
                "UPDATE pool_members SET last_seen = ?2 WHERE key = ?1",
                params![key, now],
            )?,
        };
        Ok(n > 0)
    }

    /// Removes the machine whose name (ignoring case) or node key (or a unique start of it, at
    /// least 8 hex digits) is `which`. Returns the removed machine.
    pub fn remove_pool_member(&self, which: &str) -> Result<PoolMember> {
        let which = which.trim();
        let members = self.pool_members()?;
        let by_name: Vec<&PoolMember> = members
            .iter()
            .filter(|m| m.name.eq_ignore_ascii_case(which))
            .collect();
        let chosen: Vec<&PoolMember> = if !by_name.is_empty() {
            by_name
        } else if which.len() >= 8 {
            let lower = which.to_ascii_lowercase();
            members
                .iter()
                .filter(|m| m.key.starts_with(&lower))
                .collect()
        } else {
            Vec::new()
        };
        match chosen.as_slice() {
            [one] => {
                let one = (*one).clone();
                self.conn()
                    .execute("DELETE FROM pool_members WHERE key = ?1", [&one.key])?;
                Ok(one)
            }
            [] => Err(Error::Invalid {
                field: "machine",
                why: format!("no paired machine is named {which:?} or has a key starting so"),
            }),
            many => Err(Error::Invalid {
                field: "machine",
                why: format!(
                    "{} machines match {which:?}; give more of the key",
                    many.len()
                ),
            }),
        }
    }
}

fn check_key(key: &str) -> Result<()> {
    if key.len() == 64
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(Error::Invalid {
            field: "node key",
            why: "expected 64 lowercase hex digits".into(),
        })
    }
}

fn member_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PoolMember> {
    Ok(PoolMember {
        key: r.get(0)?,
        name: r.get(1)?,
        paired: r.get(2)?,
        last_seen: r.get(3)?,
        report: r.get(4)?,
    })
}
