//! The household's data: people, login sessions, conversations, API keys, settings and the
//! API's stored Responses, kept in one SQLite file in Hearth's data directory.
//!
//! # Design
//!
//! * **One connection behind a mutex.** A household is a handful of people; every call here is a
//!   short statement or a small transaction, so one `rusqlite::Connection` in a `Mutex` serves
//!   them all and makes [`Store`] `Send + Sync`. The server calls it from `spawn_blocking` or
//!   briefly inline. Slow work — argon2 hashing and verification — runs *outside* the lock so a
//!   login does not stall everyone's streaming replies.
//! * **Durable as it streams.** The file is in WAL mode with `synchronous = NORMAL`: each append
//!   of a streaming reply is its own small commit, so a crash loses at most the last batch the
//!   server had not yet written and never a conversation; a power cut can lose the last commits
//!   but never corrupts the file. [`Store::mark_streaming_interrupted`] turns replies a crash
//!   left "streaming" into "interrupted" at the next start.
//! * **Versioned migrations.** `PRAGMA user_version` holds the schema version; each version has
//!   one migration in [`schema`], applied in its own transaction together with the version bump,
//!   so a file is always at exactly one known version. A file from a newer Hearth is refused
//!   rather than guessed at.
//! * **Private by construction.** Every conversation and message query takes the owner's user id
//!   and filters on it in SQL, so a wrong owner gets [`Error::NotFound`] — the same answer as a
//!   conversation that does not exist — and never another person's data.
//! * **Deleting is real.** `secure_delete` makes SQLite overwrite freed content with zeros, and
//!   deletions end with a WAL checkpoint that truncates the log, so deleted text is gone from the
//!   files on disk, not only hidden.
//! * **Secrets.** Passwords and PINs are hashed with argon2id (PHC strings, so parameters can
//!   change later without a migration). Session tokens and API keys are 256 random bits, so a fast
//!   hash (SHA-256) is enough; only the hash is stored, and a stolen database file opens nothing.
//!
//! Times are Unix seconds (UTC) everywhere, as in the OpenAI API the server also speaks.
//!
//! ```
//! use hearth_store::{MessageRole, Secret, Status, Store};
//!
//! let store = Store::open_in_memory()?;
//! let ana = store.setup("The Hearths", "Ana", "correct horse")?;
//! let kid = store.add_person("Leo", &Secret::Pin("2468".into()))?;
//! assert_eq!(store.verify_login("leo", "2468")?, Some(kid));
//!
//! let chat = store.create_conversation(ana.id, None)?;
//! store.add_message(ana.id, chat.id, MessageRole::User, "Hello", Status::Complete)?;
//! let reply = store.add_message(ana.id, chat.id, MessageRole::Assistant, "", Status::Streaming)?;
//! store.append_to_message(reply.id, "Hi Ana!")?;
//! store.set_message_status(reply.id, Status::Complete)?;
//! assert_eq!(store.conversation(ana.id, chat.id)?.unwrap().messages[1].content, "Hi Ana!");
//! # Ok::<(), hearth_store::Error>(())
//! ```

mod attempts;
mod branches;
mod chat;
mod export;
mod keys;
mod people;
mod pool;
mod profile;
mod responses;
pub mod schema;
mod secret;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

pub use agent::{
    AuditEntry, Note, NoteKind, Reminder, StepOutcome, ToolStep, MAX_NOTE_CHARS,
    MAX_NOTE_TITLE_CHARS, MAX_REMINDER_CHARS,
};
pub use attempts::{Limit, Reserved};
pub use chat::MAX_TITLE_CHARS;
pub use export::{
    conversation_json, conversation_markdown, format_at_offset, format_utc, CHAT_EXPORT_FORMAT,
    EXPORT_FORMAT, EXPORT_VERSION,
};
pub use keys::{KEY_PREFIX, MAX_KEY_NAME_CHARS};
pub use people::SESSION_IDLE_SECS;
pub use pool::{check_machine_name, InviteTry, PoolMember, MAX_MACHINE_NAME_CHARS};
pub use profile::{
    ChildLimits, Hours, Profile, MAX_INSTRUCTIONS_CHARS, MAX_TOPICS, MAX_TOPIC_CHARS,
};
pub use responses::{api_key_owner, person_owner, StoredResponse, RESPONSE_KEEP_SECS};
pub use secret::{
    name_key, Secret, MAX_NAME_CHARS, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, PIN_DIGITS,
};

/// Everything that can go wrong in the store. The messages are meant to be shown to the person
/// at the page (except [`Error::Db`], [`Error::Hash`] and [`Error::Io`], which the server logs and
/// reports as an internal error).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another person already has this name (names are unique ignoring case).
    #[error("the name {name:?} is already taken by someone in this household")]
    NameTaken { name: String },
    /// A password or PIN that does not meet the rules.
    #[error("{why}")]
    BadSecret { why: String },
    /// A name, title or other text field that does not meet the rules.
    #[error("{field}: {why}")]
    Invalid { field: &'static str, why: String },
    /// The old password (or PIN) given to change it is not the current one.
    #[error("the current password is not right")]
    WrongPassword,
    /// The thing does not exist, or belongs to someone else (deliberately the same answer).
    #[error("{what} {id} was not found")]
    NotFound { what: &'static str, id: i64 },
    /// First-run setup was asked for but the household already has an owner.
    #[error("this household is already set up")]
    AlreadySetUp,
    /// Removing this person would leave the household without an owner.
    #[error("{name} is the household's last owner and cannot be removed")]
    LastOwner { name: String },
    /// The file's schema version is not one this Hearth knows (it was written by a newer one).
    #[error(
        "the database is at schema version {found}, but this Hearth knows versions 0 to {known}; \
         use a newer Hearth or another data directory"
    )]
    SchemaVersion { found: i64, known: i64 },
    /// SQLite would not put the file in WAL mode (e.g. a file system without shared memory).
    #[error("expected SQLite's WAL journal mode for the database, it kept {found:?}")]
    JournalMode { found: String },
    /// SQLite failed.
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    /// argon2 failed to hash (bad parameters; not a wrong password).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// Creating the data directory or setting file permissions failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// What a person may do in the household.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PersonRole {
    /// Set up the household; manages people, models, keys and settings.
    Owner,
    /// Talks to Hearth and manages their own conversations.
    Member,
    /// A member whose chats follow the limits the keeper set ([`ChildLimits`]).
    Child,
}

/// How a person logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretKind {
    Password,
    /// 4–8 digits, for children.
    Pin,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    User,
    Assistant,
}

/// Where a message stands. Only assistant replies are ever anything but `Complete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Written in full.
    Complete,
    /// Being generated now.
    Streaming,
    /// Hearth stopped (crash, power cut) while writing it; what was written is kept.
    Interrupted,
    /// Generation failed with an error.
    Failed,
    /// The person pressed stop.
    Stopped,
    /// The reply reached the longest a reply may be before it ended; it can be continued.
    CutShort,
    /// The model's context was full before the reply ended: the model cannot read more of this
    /// chat at once, so it cannot be continued in place.
    OutOfRoom,
}

/// Lowercase names stored in the database and sent over the wire, and their parsing.
macro_rules! text_enum {
    ($ty:ident, $what:literal, $($variant:ident => $text:literal),+ $(,)?) => {
        impl $ty {
            /// The lowercase name stored in the database and used in JSON.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }
            /// The inverse of [`Self::as_str`].
            pub fn parse(text: &str) -> Option<$ty> {
                match text { $($text => Some($ty::$variant),)+ _ => None }
            }
        }
        impl rusqlite::types::FromSql for $ty {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                let text = value.as_str()?;
                $ty::parse(text).ok_or_else(|| {
                    rusqlite::types::FromSqlError::Other(
                        format!(concat!("expected a ", $what, ", found {:?}"), text).into(),
                    )
                })
            }
        }
        impl rusqlite::types::ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }
    };
}

text_enum!(
    PersonRole, "person role",
    Owner => "owner", Member => "member", Child => "child",
);
text_enum!(SecretKind, "secret kind", Password => "password", Pin => "pin");
text_enum!(MessageRole, "message role", User => "user", Assistant => "assistant");
text_enum!(
    Status, "message status",
    Complete => "complete", Streaming => "streaming", Interrupted => "interrupted",
    Failed => "failed", Stopped => "stopped", CutShort => "cut_short",
    OutOfRoom => "out_of_room",
);

// After `text_enum!`, which it uses.
mod agent;

/// A person in the household.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: PersonRole,
    pub kind: SecretKind,
    pub created: i64,
}

/// A fresh login session. The token goes into the cookie and only its hash is stored. The CSRF
/// token is stored as is: the page fetches it again from `/api/state`, and it is useless without
/// the cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub token: String,
    pub csrf: String,
}

/// A conversation in a list: enough to show it, not its messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConversationSummary {
    pub id: i64,
    pub title: Option<String>,
    pub created: i64,
    pub updated: i64,
    /// The start of the last message (up to [`PREVIEW_CHARS`] characters), empty when there are
    /// no messages yet.
    pub preview: String,
}

/// How many characters of the last message a [`ConversationSummary`] previews.
pub const PREVIEW_CHARS: usize = 120;

/// A conversation with the messages of its branch in view, in the order they were written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conversation {
    pub id: i64,
    pub title: Option<String>,
    pub created: i64,
    pub updated: i64,
    pub messages: Vec<Message>,
    /// The messages in view that have other versions (edits, other answers), with all of them.
    pub versions: Vec<Versions>,
    /// Every message not on the branch in view (earlier wordings, other answers and what
    /// followed them), oldest first, each with its parent: out of view is not gone, so exports
    /// and the keeper's view of a child's chat hold them too.
    pub other_versions: Vec<Message>,
}

/// The versions of one message in view ("2 of 3"): its siblings of the same role, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Versions {
    /// The version in view.
    pub message: i64,
    /// Every version, `message` among them.
    pub ids: Vec<i64>,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub id: i64,
    pub conversation_id: i64,
    /// The message it follows (`None`: one of the first); see [`Store::switch_branch`].
    pub parent_id: Option<i64>,
    pub role: MessageRole,
    pub content: String,
    pub status: Status,
    pub created: i64,
    /// The model that wrote a reply; `None` for the person's own messages and for replies
    /// stored before Hearth kept it.
    pub model: Option<String>,
}

/// An API key as listed to the owner (never the key itself, which only its hash remembers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyInfo {
    pub id: i64,
    pub name: String,
    pub created: i64,
    pub last_used: Option<i64>,
    /// The person who created it; `None` once they have been removed.
    pub created_by: Option<i64>,
}

/// The source of "now" in Unix seconds; replaceable so tests can move time (session expiry).
type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

fn system_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        // A clock before 1970 is a broken machine; 0 keeps ordering sane rather than failing
        // every write.
        .unwrap_or(0)
}

/// The household's database. Cheap to share: put it in an `Arc`.
pub struct Store {
    conn: Mutex<Connection>,
    clock: Clock,
    /// An argon2 hash of a random secret, verified against when a login names nobody, so a
    /// login costs the same whether or not the name exists.
    dummy_hash: String,
}

impl Store {
    /// Opens (creating if needed) the database file at `path` and brings its schema up to date.
    /// A new file is made readable by its owner only.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let existed = path.exists();
        let conn = Connection::open(path)?;
        if !existed {
            restrict_permissions(path)?;
        }
        // WAL: readers never block the streaming writer, and appends are cheap commits.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::JournalMode { found: mode });
        }
        // NORMAL is durable against crashes in WAL mode; a power cut can lose the last commits
        // but never corrupts the file. FULL would fsync every streamed batch.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Store::init(conn)
    }

    /// A database in memory, gone when the `Store` is dropped. For tests.
    pub fn open_in_memory() -> Result<Store> {
        Store::init(Connection::open_in_memory()?)
    }

    /// Replaces the clock (Unix seconds). For tests and simulations that need time to pass,
    /// e.g. for session expiry.
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Store {
        self.clock = Arc::new(clock);
        self
    }

    fn init(mut conn: Connection) -> Result<Store> {
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::migrate(&mut conn)?;
        chat::register_functions(&conn)?;
        let dummy_hash = secret::hash(&secret::random_hex(16))?;
        Ok(Store {
            conn: Mutex::new(conn),
            clock: Arc::new(system_clock),
            dummy_hash,
        })
    }

    /// The connection. A panic in another thread while it held the lock cannot have left the
    /// database half-written (every multi-statement change is a transaction, rolled back when
    /// dropped during unwinding), so a poisoned lock is taken over rather than propagated.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Now, in Unix seconds, by the store's clock (which tests can move: see
    /// [`Store::with_clock`]); the server judges a child's hours by it.
    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Writes the WAL back into the database file and truncates it. Deletions call this so
    /// deleted text leaves the disk; the server may also call it at shutdown.
    pub fn checkpoint(&self) -> Result<()> {
        let conn = self.conn();
        // In memory there is no WAL; the pragma answers and does nothing.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    // ---- household ----

    /// The household's name, once first-run setup has named it.
    pub fn household(&self) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT name FROM household WHERE id = 1", [], |r| r.get(0))
            .optional()?)
    }

    /// Renames the household.
    pub fn set_household_name(&self, name: &str) -> Result<()> {
        let name = secret::check_text("household name", name, 60)?;
        self.conn().execute(
            "INSERT INTO household (id, name) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name",
            [name],
        )?;
        Ok(())
    }

    // ---- settings ----

    /// A setting's value, if set.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Sets (or replaces) a setting.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // SQLite gives the -wal and -shm files the database file's permissions, so this covers them.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Store>();
    }

    #[test]
    fn text_enums_round_trip() {
        for s in [
            Status::Complete,
            Status::Streaming,
            Status::Interrupted,
            Status::Failed,
            Status::Stopped,
            Status::CutShort,
        ] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("Complete"), None);
        assert_eq!(PersonRole::parse("owner"), Some(PersonRole::Owner));
        assert_eq!(PersonRole::parse("child"), Some(PersonRole::Child));
        assert_eq!(
            serde_json::to_string(&Status::CutShort).unwrap(),
            "\"cut_short\""
        );
        assert_eq!(
            serde_json::to_string(&MessageRole::Assistant).unwrap(),
            "\"assistant\""
        );
    }
}
