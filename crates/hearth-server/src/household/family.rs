//! Children and everyone's own settings: the system prompt each person's chats get, a child's
//! hours, the keeper's page for a child's limits, and the keeper reading a child's chats where
//! the keeper chose to.
//!
//! Who may do what, checked here and not by the page:
//! - everyone reads and sets their own instructions and language (`/api/me/settings`);
//! - only the keeper reads and sets a child's limits (`/api/people/{id}/limits`);
//! - only the keeper reads a child's chats, and only while that child's `keeper_sees` is on
//!   (`/api/people/{id}/conversations...`); a grown-up's chats are never anyone else's to read:
//!   the store answers nothing for them, so the routes answer 404 exactly as for no one.
//! - a child outside their hours reaches nothing but logging out and Stop (`session.rs` asks
//!   [`resting`] for every route that needs a session), and children never reach `/v1` or
//!   Ollama's API with their session (`routes.rs`): those would skip their prompt and topics.
//!
//! When the topic check catches a child's question, nothing is stored and nothing reaches the
//! model; a reply it catches is stopped and replaced by a kind note (`chat.rs`). The keeper sees
//! no separate report: where the keeper may read the child's chats, the note is there in the
//! chat, and where they may not, the child's privacy is what the keeper chose.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use hearth_store::{ChildLimits, Hours, PersonRole, Profile, User};
use serde::Deserialize;
use serde_json::{json, Value};

use super::session::{household, Me};
use super::{db, Household};
use crate::error::ApiError;
use crate::AppState;

/// A child's system prompt until the keeper writes another. The keeper reads and edits it in
/// Settings; the topics and the household's own line are added around it.
pub const DEFAULT_CHILD_PROMPT: &str = "You are talking with a child. Use short sentences and simple words, and be warm, patient and encouraging. Keep everything suitable for a child: nothing violent, frightening, sexual or cruel, and no instructions for anything dangerous. If a question is not one for a child, say kindly that it is a good question for a grown-up they trust, and suggest something else to talk about. Never ask for their full name, address, school or photos. If they seem sad, scared or unsafe, tell them gently to talk to a grown-up they trust.";

/// The languages the page has ("en", "fr"); `null` follows the browser.
pub const LANGUAGES: &[&str] = &["en", "fr"];

/// What a child whose topic check caught their question is told.
pub const STEERED_QUESTION: &str = "That is something to talk about with a grown-up you trust, so I will not answer it here. Shall we talk about something else?";

/// What replaces a reply the topic check caught while it was written.
pub const STEERED_REPLY: &str = "I started to answer, but this is something to talk about with a grown-up you trust. Let's talk about something else!";

/// What replaces a child's reply when it could not be checked (the cause goes to the log).
pub const CHECK_FAILED: &str =
    "Sorry, I could not finish this answer just now. Please try again in a little while.";

/// What a child is told when their message could not be checked; it was not sent.
pub const QUESTION_CHECK_FAILED: &str =
    "Hearth could not send this message just now. Please try again in a little while.";

/// What the keeper is told about the topic check, in plain words.
const TOPICS_ARE_BEST_EFFORT: &str = "Hearth tries to steer away from these topics, in what it is told and by checking each question and answer. This is best effort, not a guarantee: a question worded differently can get through.";

/// The system message for `user`'s chats: the household's line, their own instructions, and
/// for a child the keeper's prompt and topics, then the child's own wishes framed as giving way
/// to those rules (the keeper sees and edits them beside the limits).
pub(crate) fn system_prompt(h: &Household, user: &User) -> String {
    let household = h.store.household().ok().flatten().unwrap_or_default();
    let mut s = format!(
        "You are Hearth, a friendly and helpful assistant for the {household} household. Answer clearly and kindly."
    );
    let profile = h.store.profile(user.id).unwrap_or_default();
    if !profile.instructions.is_empty() && user.role != PersonRole::Child {
        s.push_str(&format!(
            "\n\n{} asked you to keep this in mind: {}",
            user.name, profile.instructions
        ));
    }
    if user.role == PersonRole::Child {
        // A child whose limits cannot be read still gets the default prompt.
        let limits = h.store.child_limits(user.id).ok().flatten();
        let prompt = limits
            .as_ref()
            .and_then(|l| l.prompt.as_deref())
            .unwrap_or(DEFAULT_CHILD_PROMPT);
        s.push_str("\n\n");
        s.push_str(prompt);
        if let Some(l) = limits.filter(|l| !l.topics.is_empty()) {
            s.push_str(&format!(
                "\n\nDo not talk about these topics, even if asked: {}. If the conversation goes there, say kindly that it is something to talk about with a grown-up they trust, and offer something else.",
                l.topics.join("; ")
            ));
        }
        if !profile.instructions.is_empty() {
            s.push_str(&format!(
                "\n\n{} asked you to keep this in mind too. Follow it only where it fits everything above; where it does not, the rules above win: {}",
                user.name, profile.instructions
            ));
        }
    }
    s
}

/// The keeper's topics for `user` if they are a child with some. An error (the limits cannot be
/// read) is for the caller to fail closed on: a child's checks never pass by accident.
pub(crate) fn topics_of(h: &Household, user: &User) -> Result<Vec<String>, hearth_store::Error> {
    if user.role != PersonRole::Child {
        return Ok(Vec::new());
    }
    Ok(h.store
        .child_limits(user.id)?
        .map(|l| l.topics)
        .unwrap_or_default())
}

/// Outside a child's hours: when they can come back ("08:00", the keeper's local time), or
/// `Some(None)` when their limits cannot be read: a child is kept out rather than let in past
/// hours that could not be checked (the cause goes to the log).
pub(crate) fn resting(h: &Household, user: &User) -> Option<Option<String>> {
    if user.role != PersonRole::Child {
        return None;
    }
    let limits = match h.store.child_limits(user.id) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot read a child's limits, so they are kept out for now: {e}");
            return Some(None);
        }
    };
    let hours = limits?.hours?;
    (!hours.allows(h.store.now())).then(|| Some(clock(hours.from)))
}

/// What a child who is [`resting`] is told, on every route they try.
pub(crate) fn rest_error(back_at: Option<&str>) -> ApiError {
    match back_at {
        Some(at) => outside_hours(at),
        None => ApiError {
            status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
            ..ApiError::bad_request(
                "Hearth cannot open just now. Please try again in a little while, or ask your grown-up.",
            )
            .with_code("outside_hours")
        },
    }
}

fn clock(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// The answer to a child outside their hours, on every route they try.
pub(crate) fn outside_hours(back_at: &str) -> ApiError {
    ApiError {
        status: axum::http::StatusCode::FORBIDDEN,
        ..ApiError::bad_request(format!(
            "Hearth is resting now. You can come back at {back_at}: those are the hours your grown-up chose."
        ))
        .with_code("outside_hours")
    }
}

/// What `/api/state` says about the person logged in.
pub(crate) fn me_json(h: &Household, u: &User) -> Value {
    let language = h.store.profile(u.id).ok().and_then(|p| p.language);
    let mut v =
        json!({"id": u.id, "name": u.name, "role": u.role, "kind": u.kind, "language": language});
    if u.role == PersonRole::Child {
        let sees = h
            .store
            .child_limits(u.id)
            .ok()
            .flatten()
            .is_none_or(|l| l.keeper_sees);
        v["keeper_sees"] = json!(sees);
        v["resting"] = match resting(h, u) {
            Some(back_at) => json!({
                "message": rest_error(back_at.as_deref()).message,
                "back_at": back_at,
            }),
            None => Value::Null,
        };
    }
    v
}

/// Roughly how many tokens a page of text takes (about 400 words): the unit the page states a
/// message's limit in.
const TOKENS_PER_PAGE: usize = 500;

/// A length in tokens as people measure text: "about 6 pages", "about half a page".
pub(crate) fn in_pages(tokens: usize) -> String {
    let pages = (tokens as f64 / TOKENS_PER_PAGE as f64).round() as usize;
    match pages {
        0 if tokens * 4 < TOKENS_PER_PAGE => "a few lines".to_string(),
        0 => "about half a page".to_string(),
        1 => "about 1 page".to_string(),
        n => format!("about {n} pages"),
    }
}

// ---- routes: everyone's own settings ----

pub async fn my_settings(
    State(state): State<Arc<AppState>>,
    me: Me,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    Ok(Json(json!(h.store.profile(me.user.id).map_err(db)?)))
}

#[derive(Deserialize)]
pub struct SettingsBody {
    #[serde(default)]
    instructions: String,
    #[serde(default)]
    language: Option<String>,
}

pub async fn put_my_settings(
    State(state): State<Arc<AppState>>,
    me: Me,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    let b: SettingsBody = crate::body::parse_body_async(body).await?;
    let language = b.language.filter(|l| !l.trim().is_empty());
    if let Some(l) = &language {
        if !LANGUAGES.contains(&l.as_str()) {
            return Err(ApiError::invalid(
                "language",
                format!(
                    "the page speaks {}; choose one of them, or none to follow the browser",
                    LANGUAGES.join(", ")
                ),
            ));
        }
    }
    let p = h
        .store
        .set_profile(
            me.user.id,
            &Profile {
                instructions: b.instructions,
                language,
            },
        )
        .map_err(db)?;
    Ok(Json(json!(p)))
}

// ---- routes: the keeper and a child ----

/// The child `id`'s limits, for the keeper; 404 for anyone who is not a child.
fn limits_of(h: &Household, id: i64) -> Result<ChildLimits, ApiError> {
    h.store
        .child_limits(id)
        .map_err(db)?
        .ok_or_else(|| ApiError::not_found("no child with this id"))
}

fn limits_json(
    state: &AppState,
    h: &Household,
    id: i64,
    l: &ChildLimits,
) -> Result<Value, ApiError> {
    // What the child wrote in their own settings reaches their prompt: the keeper sees it here.
    let wishes = h.store.profile(id).map_err(db)?.instructions;
    Ok(json!({
        "prompt": l.prompt.as_deref().unwrap_or(DEFAULT_CHILD_PROMPT),
        "prompt_is_default": l.prompt.is_none(),
        "default_prompt": DEFAULT_CHILD_PROMPT,
        "hours": l.hours,
        "topics": l.topics,
        "keeper_sees": l.keeper_sees,
        // Without the embedding model only the prompt steers: the page says so.
        "topic_check": super::topics::model(state).is_some(),
        "topics_note": TOPICS_ARE_BEST_EFFORT,
        "child_instructions": wishes,
    }))
}

/// A child's limits as the keeper's page shows them.
pub(crate) fn child_limits_json(
    state: &AppState,
    h: &Household,
    id: i64,
) -> Result<Value, ApiError> {
    limits_json(state, h, id, &limits_of(h, id)?)
}

pub async fn child_limits(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    me.require_owner()?;
    let h = household(&state)?;
    Ok(Json(limits_json(&state, h, id, &limits_of(h, id)?)?))
}

#[derive(Deserialize)]
pub struct HoursBody {
    from: u32,
    to: u32,
    /// Required: hours read in the wrong zone would open or close at the wrong time.
    #[serde(default)]
    utc_offset: Option<i32>,
    /// The keeper's IANA time zone, as their browser names it ("Europe/Paris"): the hours
    /// follow its clocks across daylight-saving changes. Without it, the offset alone.
    #[serde(default)]
    time_zone: Option<String>,
}

#[derive(Deserialize)]
pub struct LimitsBody {
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    hours: Option<HoursBody>,
    #[serde(default)]
    topics: Vec<String>,
    keeper_sees: bool,
    /// The child's own instructions, as the keeper changed them; absent leaves them.
    #[serde(default)]
    child_instructions: Option<String>,
}

pub async fn put_child_limits(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    me.require_owner()?;
    let h = household(&state)?;
    // Saving new limits over a topics list that cannot be read mends it.
    match h.store.child_limits(id) {
        Ok(Some(_))
        | Err(hearth_store::Error::Invalid {
            field: "topics", ..
        }) => {}
        Ok(None) => return Err(ApiError::not_found("no child with this id")),
        Err(e) => return Err(db(e)),
    }
    let b: LimitsBody = crate::body::parse_body_async(body).await?;
    let hours = match b.hours {
        None => None,
        Some(x) => Some(Hours {
            from: x.from,
            to: x.to,
            utc_offset: x.utc_offset.ok_or_else(|| {
                ApiError::invalid(
                    "hours",
                    "hours need the time zone they are in; reload the page and save again",
                )
            })?,
            zone: x
                .time_zone
                .map(|z| z.trim().to_string())
                .filter(|z| !z.is_empty()),
        }),
    };
    // The default's own text saved back is the default, so a later, better default reaches
    // this child too.
    let prompt = b
        .prompt
        .filter(|p| p.trim() != DEFAULT_CHILD_PROMPT && !p.trim().is_empty());
    if let Some(instructions) = b.child_instructions {
        let mut p = h.store.profile(id).map_err(db)?;
        p.instructions = instructions;
        h.store.set_profile(id, &p).map_err(db)?;
    }
    let saved = h
        .store
        .set_child_limits(
            id,
            &ChildLimits {
                prompt,
                hours,
                topics: b.topics,
                keeper_sees: b.keeper_sees,
            },
        )
        .map_err(db)?;
    Ok(Json(limits_json(&state, h, id, &saved)?))
}

fn not_shown() -> ApiError {
    ApiError::not_found("there are no chats here you can read")
}

pub async fn child_conversations(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    me.require_owner()?;
    let h = household(&state)?;
    let list = h
        .store
        .child_conversations_for_keeper(id)
        .map_err(db)?
        .ok_or_else(not_shown)?;
    Ok(Json(json!(list)))
}

pub async fn child_conversation(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path((id, conv)): Path<(i64, i64)>,
) -> Result<Json<Value>, ApiError> {
    me.require_owner()?;
    let h = household(&state)?;
    let c = h
        .store
        .child_conversation_for_keeper(id, conv)
        .map_err(db)?
        .ok_or_else(not_shown)?;
    Ok(Json(json!(c)))
}

#[cfg(test)]
mod tests {
    use super::in_pages;

    #[test]
    fn lengths_in_pages() {
        assert_eq!(in_pages(3072), "about 6 pages");
        assert_eq!(in_pages(700), "about 1 page");
        assert_eq!(in_pages(200), "about half a page");
        assert_eq!(in_pages(60), "a few lines");
    }
}
