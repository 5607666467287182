//! People, logins and sessions.
//!
//! argon2 work (hashing a new secret, verifying a login) always runs with the connection lock
//! released: it takes tens of milliseconds, and the other people's streaming replies write
//! through the same lock meanwhile.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::secret::{self, Secret};
use crate::{Error, NewSession, PersonRole, Result, Store, User};

/// A session not used for this long (seconds) has ended: 30 days.
pub const SESSION_IDLE_SECS: i64 = 30 * 24 * 60 * 60;

/// `last_seen` is rewritten at most this often (seconds), so a page polling every second does
/// not turn every read into a write.
const TOUCH_EVERY_SECS: i64 = 60;

/// A child is stored as a member with `child = 1`; everyone else reads as their role.
pub(crate) const USER_COLUMNS: &str =
    "id, name, CASE WHEN child = 1 THEN 'child' ELSE role END, kind, created";

pub(crate) fn user_from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
        kind: r.get(3)?,
        created: r.get(4)?,
    })
}

fn user_by_id(conn: &Connection, id: i64) -> Result<Option<User>> {
    Ok(conn
        .query_row(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
            [id],
            user_from_row,
        )
        .optional()?)
}

/// Inserts a person after checking the name is free; the caller holds a transaction or the
/// lock, so the check and the insert see the same state.
fn insert_user(
    conn: &Connection,
    name: &str,
    role: PersonRole,
    secret: &Secret,
    hash: &str,
    now: i64,
) -> Result<User> {
    let key = secret::name_key(name);
    let taken: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM users WHERE name_key = ?1)",
        [&key],
        |r| r.get(0),
    )?;
    if taken {
        return Err(Error::NameTaken { name: name.into() });
    }
    // A child is a member with the child flag. The keeper may read a new child's chats until
    // they turn it off (a young child's safety first; the child's page says so plainly).
    let (stored_role, child) = match role {
        PersonRole::Child => (PersonRole::Member, true),
        other => (other, false),
    };
    conn.execute(
        "INSERT INTO users (name, name_key, role, kind, secret_hash, created, child, keeper_sees)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![name, key, stored_role, secret.kind(), hash, now, child],
    )?;
    Ok(User {
        id: conn.last_insert_rowid(),
        name: name.into(),
        role,
        kind: secret.kind(),
        created: now,
    })
}

impl Store {
    /// First-run setup: names the household and creates its owner, in one transaction.
    /// [`Error::AlreadySetUp`] if the household has an owner already.
    pub fn setup(&self, household: &str, owner: &str, password: &str) -> Result<User> {
        let household = secret::check_text("household name", household, 60)?;
        let owner = secret::check_name(owner)?;
        let password = Secret::Password(password.into());
        let hash = secret::hash(password.check()?)?;
        let now = self.now();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let owners: i64 =
            tx.query_row("SELECT COUNT(*) FROM users WHERE role = 'owner'", [], |r| {
                r.get(0)
            })?;
        if owners > 0 {
            return Err(Error::AlreadySetUp);
        }
        tx.execute(
            "INSERT INTO household (id, name) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name",
            [household],
        )?;
        let user = insert_user(&tx, owner, PersonRole::Owner, &password, &hash, now)?;
        tx.commit()?;
        Ok(user)
    }

    /// Whether first-run setup is done: the household has an owner. (The household's name alone
    /// does not say so.)
    pub fn is_set_up(&self) -> Result<bool> {
        Ok(self.conn().query_row(
            "SELECT EXISTS (SELECT 1 FROM users WHERE role = 'owner')",
            [],
            |r| r.get(0),
        )?)
    }

    /// Adds a member with a password or PIN. Names are unique ignoring case.
    pub fn add_person(&self, name: &str, secret: &Secret) -> Result<User> {
        self.add_person_as(name, secret, PersonRole::Member)
    }

    /// Adds a member or a child (a household has one way to get an owner: setup).
    pub fn add_person_as(&self, name: &str, secret: &Secret, role: PersonRole) -> Result<User> {
        if role == PersonRole::Owner {
            return Err(Error::Invalid {
                field: "role",
                why: "a person is added as a member or a child".into(),
            });
        }
        let name = secret::check_name(name)?;
        let hash = secret::hash(secret.check()?)?;
        let now = self.now();
        let conn = self.conn();
        insert_user(&conn, name, role, secret, &hash, now)
    }

    /// Everyone in the household, in the order they were added.
    pub fn people(&self) -> Result<Vec<User>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"))?;
        let people = stmt
            .query_map([], user_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(people)
    }

    /// One person, if they exist.
    pub fn user(&self, id: i64) -> Result<Option<User>> {
        user_by_id(&self.conn(), id)
    }

    /// Gives a person a new password or PIN (the owner's reset) and ends all their sessions.
    pub fn reset_secret(&self, id: i64, secret: &Secret) -> Result<()> {
        let hash = secret::hash(secret.check()?)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let changed = tx.execute(
            "UPDATE users SET kind = ?1, secret_hash = ?2 WHERE id = ?3",
            params![secret.kind(), hash, id],
        )?;
        if changed == 0 {
            return Err(Error::NotFound { what: "person", id });
        }
        tx.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    /// Removes a person with their conversations and sessions. API keys they created stay (apps
    /// keep working) with no creator. [`Error::LastOwner`] rather than leave no owner.
    pub fn remove_person(&self, id: i64) -> Result<()> {
        {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let user = user_by_id(&tx, id)?.ok_or(Error::NotFound { what: "person", id })?;
            if user.role == PersonRole::Owner {
                let owners: i64 =
                    tx.query_row("SELECT COUNT(*) FROM users WHERE role = 'owner'", [], |r| {
                        r.get(0)
                    })?;
                if owners <= 1 {
                    return Err(Error::LastOwner { name: user.name });
                }
            }
            // Conversations, their messages and sessions go by ON DELETE CASCADE.
            tx.execute("DELETE FROM users WHERE id = ?1", [id])?;
            // Their stored Responses are keyed by a name, not a foreign key.
            crate::responses::delete_owned(&tx, &crate::responses::person_owner(id))?;
            // A child's time zone for their hours is a setting, not a column of `users`.
            tx.execute(
                "DELETE FROM settings WHERE key = ?1",
                [crate::profile::zone_key(id)],
            )?;
            tx.commit()?;
        }
        self.checkpoint()
    }

    /// A person changes their own secret, proving the current one (`old`). The new one may be
    /// of the other kind. Sessions stay: the person is using one of them.
    pub fn change_password(&self, id: i64, old: &str, new: &Secret) -> Result<()> {
        let new_text = new.check()?;
        let current: String = self
            .conn()
            .query_row("SELECT secret_hash FROM users WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or(Error::NotFound { what: "person", id })?;
        if !secret::verify(old, &current)? {
            return Err(Error::WrongPassword);
        }
        let hash = secret::hash(new_text)?;
        // Only replace the hash that was verified: if the owner reset it in the meantime, the
        // old secret is no longer the current one.
        let changed = self.conn().execute(
            "UPDATE users SET kind = ?1, secret_hash = ?2 WHERE id = ?3 AND secret_hash = ?4",
            params![new.kind(), hash, id, current],
        )?;
        if changed == 0 {
            return Err(Error::WrongPassword);
        }
        Ok(())
    }

    /// The person if `secret` is their password or PIN. Costs one argon2 verification whether
    /// or not the name exists, so timing does not tell who lives here.
    pub fn verify_login(&self, name: &str, secret: &str) -> Result<Option<User>> {
        let key = secret::name_key(name);
        let found = self
            .conn()
            .query_row(
                &format!("SELECT {USER_COLUMNS}, secret_hash FROM users WHERE name_key = ?1"),
                [key],
                |r| Ok((user_from_row(r)?, r.get::<_, String>(5)?)),
            )
            .optional()?;
        // An oversized secret cannot be right; verify it against the dummy hash capped, so it
        // costs the same as any other attempt.
        let oversized = secret.len() > secret::MAX_PASSWORD_BYTES;
        let attempt = if oversized { "" } else { secret };
        match found {
            Some((user, hash)) => {
                let ok = secret::verify(attempt, &hash)?;
                Ok((ok && !oversized).then_some(user))
            }
            None => {
                secret::verify(attempt, &self.dummy_hash)?;
                Ok(None)
            }
        }
    }

    // ---- sessions ----

    /// Starts a session for `user`: a random token for the cookie and a CSRF token. Also clears
    /// out sessions that have expired, so they do not pile up.
    pub fn create_session(&self, user: i64) -> Result<NewSession> {
        let token = secret::random_hex(32);
        let csrf = secret::random_hex(32);
        let now = self.now();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if user_by_id(&tx, user)?.is_none() {
            return Err(Error::NotFound {
                what: "person",
                id: user,
            });
        }
        tx.execute(
            "DELETE FROM sessions WHERE last_seen < ?1",
            [now - SESSION_IDLE_SECS],
        )?;
        tx.execute(
            "INSERT INTO sessions (token_hash, user_id, csrf, created, last_seen)
             VALUES (?1, ?2, ?3, ?4, ?4)",
            params![secret::token_hash(&token), user, csrf, now],
        )?;
        tx.commit()?;
        Ok(NewSession { token, csrf })
    }

    /// The person and CSRF token of a live session, marking it as just used. `None` for an
    /// unknown token or one idle for longer than [`SESSION_IDLE_SECS`] (which is then deleted).
    pub fn session(&self, token: &str) -> Result<Option<(User, String)>> {
        let hash = secret::token_hash(token);
        let now = self.now();
        let conn = self.conn();
        let found = conn
            .query_row(
                "SELECT u.id, u.name, CASE WHEN u.child = 1 THEN 'child' ELSE u.role END, u.kind,
                        u.created, s.id, s.csrf, s.last_seen
                 FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = ?1",
                [hash],
                |r| {
                    Ok((
                        user_from_row(r)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, i64>(7)?,
                    ))
                },
            )
            .optional()?;
        let Some((user, session_id, csrf, last_seen)) = found else {
            return Ok(None);
        };
        if now - last_seen > SESSION_IDLE_SECS {
            conn.execute("DELETE FROM sessions WHERE id = ?1", [session_id])?;
            return Ok(None);
        }
        if now - last_seen >= TOUCH_EVERY_SECS {
            conn.execute(
                "UPDATE sessions SET last_seen = ?1 WHERE id = ?2",
                [now, session_id],
            )?;
        }
        Ok(Some((user, csrf)))
    }

    /// Ends a session (logout). Unknown tokens are fine: the result is the same.
    pub fn end_session(&self, token: &str) -> Result<()> {
        self.conn().execute(
            "DELETE FROM sessions WHERE token_hash = ?1",
            [secret::token_hash(token)],
        )?;
        Ok(())
    }
}
