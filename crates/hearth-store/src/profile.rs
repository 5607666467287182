//! What each person sets for themselves (their own instructions to Hearth, the page's language)
//! and what the keeper sets for a child (their prompt, hours, topics, whether the keeper may
//! read their chats).
//!
//! Every setter checks the person exists (and, for the child limits, is a child) in the same
//! statement that writes, so a removed person or a grown-up can never be given a child's limits.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::{Conversation, ConversationSummary, Error, Result, Store};

/// Longest personal instructions or child prompt, in characters.
pub const MAX_INSTRUCTIONS_CHARS: usize = 2000;
/// Most topics a keeper can list for one child.
pub const MAX_TOPICS: usize = 20;
/// Longest topic, in characters.
pub const MAX_TOPIC_CHARS: usize = 80;

/// A person's own settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// Added to the household's prompt for this person's chats ("answer in French").
    pub instructions: String,
    /// The page's language ("en", "fr"); `None` follows the browser.
    pub language: Option<String>,
}

/// Hours of the day a child may use Hearth, in the keeper's local time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hours {
    /// Minutes after local midnight when the child may start.
    pub from: u32,
    /// Minutes after local midnight when the child must stop; before `from` spans midnight.
    pub to: u32,
    /// The keeper's offset from UTC in minutes (east positive) when they set the hours: how
    /// hours saved before the time zone was kept are read.
    pub utc_offset: i32,
    /// The keeper's time zone ("Europe/Paris", as their browser names it), so the hours follow
    /// the clocks when they change for daylight saving; `None` for hours saved without one.
    #[serde(rename = "time_zone")]
    pub zone: Option<String>,
}

impl Hours {
    /// Whether `now` (Unix seconds) falls inside the hours.
    pub fn allows(&self, now: i64) -> bool {
        let minute = self.local_minute(now);
        let (from, to) = (self.from, self.to);
        if from == to {
            return true;
        }
        if from < to {
            (from..to).contains(&minute)
        } else {
            minute >= from || minute < to
        }
    }

    /// The minute of the local day at `now` (Unix seconds): in the keeper's time zone, whose
    /// offset at `now` follows daylight saving; with no zone (or one this build does not
    /// know), at the offset saved with the hours.
    pub fn local_minute(&self, now: i64) -> u32 {
        let offset = self
            .zone
            .as_deref()
            .and_then(|zone| zone_offset_minutes(zone, now))
            .unwrap_or(i64::from(self.utc_offset));
        (now.div_euclid(60) + offset).rem_euclid(24 * 60) as u32
    }
}

/// The offset from UTC of IANA time zone `zone` at `now` (Unix seconds), in minutes.
fn zone_offset_minutes(zone: &str, now: i64) -> Option<i64> {
    let tz = jiff::tz::TimeZone::get(zone).ok()?;
    let at = jiff::Timestamp::from_second(now).ok()?;
    Some(i64::from(tz.to_offset(at).seconds()).div_euclid(60))
}

/// The `settings` key of child `user`'s time zone for their hours.
pub(crate) fn zone_key(user: i64) -> String {
    format!("hours_zone.{user}")
}

/// The keeper's limits for a child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChildLimits {
    /// The child's system prompt; `None` uses Hearth's default for children.
    pub prompt: Option<String>,
    /// When the child may use Hearth; `None`: any time.
    pub hours: Option<Hours>,
    /// Topics Hearth steers away from.
    pub topics: Vec<String>,
    /// Whether the keeper may read the child's chats.
    pub keeper_sees: bool,
}

/// Multi-line text from a person: trimmed, at most `max` characters, no control characters but
/// line breaks and tabs.
fn check_long_text<'a>(field: &'static str, text: &'a str, max: usize) -> Result<&'a str> {
    let text = text.trim();
    let chars = text.chars().count();
    if chars > max {
        return Err(Error::Invalid {
            field,
            why: format!("can be at most {max} characters, this one has {chars}"),
        });
    }
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(Error::Invalid {
            field,
            why: format!("must not contain control characters, found {c:?}"),
        });
    }
    Ok(text)
}

fn not_found(id: i64) -> Error {
    Error::NotFound { what: "person", id }
}

impl Store {
    /// `user`'s own settings.
    pub fn profile(&self, user: i64) -> Result<Profile> {
        self.conn()
            .query_row(
                "SELECT instructions, language FROM users WHERE id = ?1",
                [user],
                |r| {
                    Ok(Profile {
                        instructions: r.get(0)?,
                        language: r.get(1)?,
                    })
                },
            )
            .optional()?
            .ok_or_else(|| not_found(user))
    }

    /// Replaces `user`'s own settings. `language` is a short language tag ("en", "fr"); which
    /// ones the page has is the server's business.
    pub fn set_profile(&self, user: i64, p: &Profile) -> Result<Profile> {
        let instructions =
            check_long_text("instructions", &p.instructions, MAX_INSTRUCTIONS_CHARS)?;
        let language = match p.language.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(l) if l.len() <= 8 && l.chars().all(|c| c.is_ascii_alphabetic() || c == '-') => {
                Some(l.to_ascii_lowercase())
            }
            Some(_) => {
                return Err(Error::Invalid {
                    field: "language",
                    why: "is a language code such as en or fr".into(),
                })
            }
        };
        let changed = self.conn().execute(
            "UPDATE users SET instructions = ?1, language = ?2 WHERE id = ?3",
            params![instructions, language, user],
        )?;
        if changed == 0 {
            return Err(not_found(user));
        }
        Ok(Profile {
            instructions: instructions.into(),
            language,
        })
    }

    /// The keeper's limits for `user`; `None` if `user` is not a child (or does not exist).
    pub fn child_limits(&self, user: i64) -> Result<Option<ChildLimits>> {
        let row = self
            .conn()
            .query_row(
                "SELECT child_prompt, hours_from, hours_to, utc_offset, topics, keeper_sees
                 FROM users WHERE id = ?1 AND child = 1",
                [user],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<u32>>(1)?,
                        r.get::<_, Option<u32>>(2)?,
                        r.get::<_, Option<i32>>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, bool>(5)?,
                    ))
                },
            )
            .optional()?;
        let Some((prompt, from, to, offset, topics, keeper_sees)) = row else {
            return Ok(None);
        };
        let hours = match (from, to, offset) {
            (Some(from), Some(to), Some(utc_offset)) => Some(Hours {
                from,
                to,
                utc_offset,
                zone: self.setting(&zone_key(user))?,
            }),
            _ => None,
        };
        // Written only by `set_child_limits`, as a JSON array of strings. Anything else is an
        // error, never "no topics": the child's checks fail closed on it.
        let topics = serde_json::from_str(&topics).map_err(|e| Error::Invalid {
            field: "topics",
            why: format!("the saved list cannot be read ({e})"),
        })?;
        Ok(Some(ChildLimits {
            prompt,
            hours,
            topics,
            keeper_sees,
        }))
    }

    /// Replaces the keeper's limits for child `user`. [`Error::NotFound`] if `user` is not a
    /// child. An empty prompt goes back to the default.
    pub fn set_child_limits(&self, user: i64, limits: &ChildLimits) -> Result<ChildLimits> {
        let prompt = match &limits.prompt {
            Some(p) => Some(check_long_text("prompt", p, MAX_INSTRUCTIONS_CHARS)?)
                .filter(|p| !p.is_empty()),
            None => None,
        };
        if let Some(h) = &limits.hours {
            // Time zones run from UTC-12 to UTC+14; a range, so no value can overflow.
            if h.from >= 24 * 60 || h.to >= 24 * 60 || !(-14 * 60..=14 * 60).contains(&h.utc_offset)
            {
                return Err(Error::Invalid {
                    field: "hours",
                    why: "are times of day, from 00:00 to 23:59".into(),
                });
            }
            if let Some(zone) = &h.zone {
                if jiff::tz::TimeZone::get(zone).is_err() {
                    return Err(Error::Invalid {
                        field: "hours",
                        why: format!("are in a time zone Hearth does not know ({zone:?})"),
                    });
                }
            }
            if h.from == h.to {
                return Err(Error::Invalid {
                    field: "hours",
                    why: "they start and end at the same time; choose when they end, or turn hours off to allow any time".into(),
                });
            }
        }
        let mut topics: Vec<String> = Vec::new();
        for t in &limits.topics {
            let t = t.trim();
            if t.is_empty() {
                continue;
            }
            let t = crate::secret::check_text("topics", t, MAX_TOPIC_CHARS)?;
            if !topics.iter().any(|have| have.eq_ignore_ascii_case(t)) {
                topics.push(t.to_string());
            }
        }
        if topics.len() > MAX_TOPICS {
            return Err(Error::Invalid {
                field: "topics",
                why: format!("can be at most {MAX_TOPICS}"),
            });
        }
        let topics_json = serde_json::to_string(&topics).map_err(|e| Error::Invalid {
            field: "topics",
            why: e.to_string(),
        })?;
        let hours = limits.hours.as_ref();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let changed = tx.execute(
            "UPDATE users SET child_prompt = ?1, hours_from = ?2, hours_to = ?3, utc_offset = ?4,
                 topics = ?5, keeper_sees = ?6
             WHERE id = ?7 AND child = 1",
            params![
                prompt,
                hours.map(|h| h.from),
                hours.map(|h| h.to),
                hours.map(|h| h.utc_offset),
                topics_json,
                limits.keeper_sees,
                user
            ],
        )?;
        if changed == 0 {
            return Err(not_found(user));
        }
        // The zone is kept in `settings`, so limits saved before it existed read as they were
        // without a change to the `users` table.
        match hours.and_then(|h| h.zone.as_deref()) {
            Some(zone) => tx.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![zone_key(user), zone],
            )?,
            None => tx.execute("DELETE FROM settings WHERE key = ?1", [zone_key(user)])?,
        };
        tx.commit()?;
        drop(conn);
        Ok(ChildLimits {
            prompt: prompt.map(String::from),
            hours: limits.hours.clone(),
            topics,
            keeper_sees: limits.keeper_sees,
        })
    }

    /// A child's conversations for the keeper to read, only while the keeper may: `None` for a
    /// grown-up, a child whose chats are private, or nobody. This is the only way the store
    /// reads one person's chats for another.
    pub fn child_conversations_for_keeper(
        &self,
        child: i64,
    ) -> Result<Option<Vec<ConversationSummary>>> {
        if !self.keeper_may_read(child)? {
            return Ok(None);
        }
        self.conversations(child, None).map(Some)
    }

    /// One of a child's conversations for the keeper, under the same rule as
    /// [`Store::child_conversations_for_keeper`].
    pub fn child_conversation_for_keeper(
        &self,
        child: i64,
        id: i64,
    ) -> Result<Option<Conversation>> {
        if !self.keeper_may_read(child)? {
            return Ok(None);
        }
        self.conversation(child, id)
    }

    fn keeper_may_read(&self, user: i64) -> Result<bool> {
        Ok(self.conn().query_row(
            "SELECT EXISTS (SELECT 1 FROM users
                            WHERE id = ?1 AND child = 1 AND role = 'member' AND keeper_sees = 1)",
            [user],
            |r| r.get(0),
        )?)
    }
}
