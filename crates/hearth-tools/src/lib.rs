//! The household assistant's built-in tools: what each one is (name, description, JSON schema
//! of its arguments, whether it changes anything) and running one. No HTTP and no model here:
//! the server's tool loop decides who may call what and asks the person before a tool that
//! changes something runs.
//!
//! Tools read and write only the calling person's things: every store call takes
//! [`Context::user`], and the store filters on it.

use hearth_store::{NoteKind, Store};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde_json::{json, Value};

pub mod calc;
mod time;
pub mod units;

/// One built-in tool.
#[derive(Debug, Clone)]
pub struct Tool {
    pub name: &'static str,
    pub description: &'static str,
    /// JSON schema of the arguments object.
    pub parameters: Value,
    /// Whether it only reads. A tool that changes something waits for the person's approval.
    pub read_only: bool,
}

/// Why a tool call gave no answer; the text goes back to the model (and into the chat's step).
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("no tool is named {0:?}")]
    Unknown(String),
    #[error("{0}")]
    BadArguments(String),
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Store(String),
}

impl From<hearth_store::Error> for ToolError {
    fn from(e: hearth_store::Error) -> ToolError {
        use hearth_store::Error as E;
        match e {
            E::NotFound { .. } | E::Invalid { .. } => ToolError::Store(e.to_string()),
            // The cause goes to the server's log through the caller, not to the model.
            _ => ToolError::Failed("Hearth could not read or write its data".into()),
        }
    }
}

/// Who is calling and where they are.
pub struct Context<'a> {
    pub store: &'a Store,
    /// The person whose notes and reminders the tools see.
    pub user: i64,
    /// The person's time zone (UTC when the page has not said).
    pub zone: TimeZone,
    pub now: Timestamp,
}

/// The tools every grown-up has by default.
pub fn builtin() -> Vec<Tool> {
    vec![
        Tool {
            name: "calculator",
            description: "Exact arithmetic: + - * / ^ (whole powers), % (remainder, or percent after a number), parentheses.",
            parameters: json!({"type": "object", "properties": {
                "expression": {"type": "string", "description": "for example (12.5 + 3) * 4"}},
                "required": ["expression"], "additionalProperties": false}),
            read_only: true,
        },
        Tool {
            name: "current_time",
            description: "The current date, time and weekday in a time zone (the person's own if none is given).",
            parameters: json!({"type": "object", "properties": {
                "time_zone": {"type": "string", "description": "IANA name, like Europe/Paris"}},
                "additionalProperties": false}),
            read_only: true,
        },
        Tool {
            name: "convert_time",
            description: "Converts a local date and time from one time zone to another.",
            parameters: json!({"type": "object", "properties": {
                "time": {"type": "string", "description": "like 2026-12-08 15:30"},
                "from_zone": {"type": "string"}, "to_zone": {"type": "string"}},
                "required": ["time", "from_zone", "to_zone"], "additionalProperties": false}),
            read_only: true,
        },
        Tool {
            name: "days_between",
            description: "The number of days from one date to another.",
            parameters: json!({"type": "object", "properties": {
                "from": {"type": "string", "description": "like 2026-12-08"},
                "to": {"type": "string", "description": "like 2026-12-25"}},
                "required": ["from", "to"], "additionalProperties": false}),
            read_only: true,
        },
        Tool {
            name: "convert_units",
            description: "Converts length, mass, volume, temperature, speed, area and data sizes.",
            parameters: json!({"type": "object", "properties": {
                "value": {"type": "number"},
                "from": {"type": "string", "description": "like km, lb, °F, mph, m2, GiB"},
                "to": {"type": "string"}},
                "required": ["value", "from", "to"], "additionalProperties": false}),
            read_only: true,
        },
        Tool {
            name: "list_notes",
            description: "The person's notes and lists: id, kind and title of each.",
            parameters: json!({"type": "object", "properties": {}, "additionalProperties": false}),
            read_only: true,
        },
        Tool {
            name: "read_note",
            description: "One of the person's notes or lists, with its content.",
            parameters: json!({"type": "object", "properties": {"id": {"type": "integer"}},
                "required": ["id"], "additionalProperties": false}),
            read_only: true,
        },
        Tool {
            name: "create_note",
            description: "Saves a new note, or a list (one item per line).",
            parameters: json!({"type": "object", "properties": {
                "title": {"type": "string", "minLength": 1, "maxLength": 80},
                "content": {"type": "string"},
                "kind": {"enum": ["note", "list"]}},
                "required": ["title", "content"], "additionalProperties": false}),
            read_only: false,
        },
        Tool {
            name: "update_note",
            description: "Changes the title or content of one of the person's notes or lists.",
            parameters: json!({"type": "object", "properties": {
                "id": {"type": "integer"}, "title": {"type": "string"}, "content": {"type": "string"}},
                "required": ["id"], "additionalProperties": false}),
            read_only: false,
        },
        Tool {
            name: "delete_note",
            description: "Deletes one of the person's notes or lists.",
            parameters: json!({"type": "object", "properties": {"id": {"type": "integer"}},
                "required": ["id"], "additionalProperties": false}),
            read_only: false,
        },
        Tool {
            name: "create_reminder",
            description: "A reminder shown in the page at its time: give either `at` (local date and time) or `in_minutes`.",
            parameters: json!({"type": "object", "properties": {
                "text": {"type": "string", "minLength": 1},
                "at": {"type": "string", "description": "like 2026-12-08 18:00, in the person's time zone"},
                "in_minutes": {"type": "integer", "minimum": 1}},
                "required": ["text"], "additionalProperties": false}),
            read_only: false,
        },
        Tool {
            name: "list_reminders",
            description: "The person's reminders still to come.",
            parameters: json!({"type": "object", "properties": {}, "additionalProperties": false}),
            read_only: true,
        },
    ]
}

/// The built-in tool named `name`.
pub fn find(name: &str) -> Option<Tool> {
    builtin().into_iter().find(|t| t.name == name)
}

fn string<'v>(args: &'v Value, key: &str) -> Result<&'v str, ToolError> {
    args.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| ToolError::BadArguments(format!("`{key}` (a string) is missing")))
}

fn opt_string<'v>(args: &'v Value, key: &str) -> Result<Option<&'v str>, ToolError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ToolError::BadArguments(format!("`{key}` must be a string"))),
    }
}

fn integer(args: &Value, key: &str) -> Result<i64, ToolError> {
    args.get(key)
        .and_then(Value::as_i64)
        .ok_or_else(|| ToolError::BadArguments(format!("`{key}` (a whole number) is missing")))
}

/// Runs tool `name` with `args` (a JSON object) for the person in `ctx`.
pub fn run(ctx: &Context<'_>, name: &str, args: &Value) -> Result<Value, ToolError> {
    if !args.is_object() {
        return Err(ToolError::BadArguments(
            "the arguments must be a JSON object".into(),
        ));
    }
    if find(name).is_none() {
        return Err(ToolError::Unknown(name.to_string()));
    }
    match name {
        "calculator" => {
            let a = calc::evaluate(string(args, "expression")?)
                .map_err(|e| ToolError::Failed(e.to_string()))?;
            let mut v = json!({"result": a.decimal, "exact": a.exact});
            if let Some(f) = a.fraction {
                v["fraction"] = json!(f);
            }
            Ok(v)
        }
        "current_time" => {
            let z = match opt_string(args, "time_zone")? {
                Some(n) => time::zone(n)?,
                None => ctx.zone.clone(),
            };
            Ok(time::current_time(ctx.now, z))
        }
        "convert_time" => time::convert_time(
            string(args, "time")?,
            time::zone(string(args, "from_zone")?)?,
            time::zone(string(args, "to_zone")?)?,
        ),
        "days_between" => time::days_between(string(args, "from")?, string(args, "to")?),
        "convert_units" => {
            let value = match args.get("value") {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(s)) => s.clone(),
                _ => {
                    return Err(ToolError::BadArguments(
                        "`value` (a number) is missing".into(),
                    ))
                }
            };
            let (from, to) = (string(args, "from")?, string(args, "to")?);
            let c =
                units::convert(&value, from, to).map_err(|e| ToolError::Failed(e.to_string()))?;
            Ok(
                json!({"value": value, "from": from, "to": to, "result": c.decimal,
                "exact": c.exact, "quantity": c.quantity}),
            )
        }
        "list_notes" => {
            let notes = ctx.store.notes(ctx.user)?;
            Ok(json!(notes
                .iter()
                .map(|n| json!({"id": n.id, "kind": n.kind, "title": n.title}))
                .collect::<Vec<_>>()))
        }
        "read_note" => Ok(json!(ctx.store.note(ctx.user, integer(args, "id")?)?)),
        "create_note" => {
            let kind = match opt_string(args, "kind")? {
                None | Some("note") => NoteKind::Note,
                Some("list") => NoteKind::List,
                Some(other) => {
                    return Err(ToolError::BadArguments(format!(
                        "`kind` is \"note\" or \"list\", not {other:?}"
                    )))
                }
            };
            let n = ctx.store.create_note(
                ctx.user,
                kind,
                string(args, "title")?,
                string(args, "content")?,
            )?;
            Ok(json!({"saved": true, "id": n.id, "kind": n.kind, "title": n.title}))
        }
        "update_note" => {
            let n = ctx.store.update_note(
                ctx.user,
                integer(args, "id")?,
                opt_string(args, "title")?,
                opt_string(args, "content")?,
            )?;
            Ok(json!({"saved": true, "id": n.id, "title": n.title}))
        }
        "delete_note" => {
            let id = integer(args, "id")?;
            ctx.store.delete_note(ctx.user, id)?;
            Ok(json!({"deleted": true, "id": id}))
        }
        "create_reminder" => {
            let text = string(args, "text")?;
            let due = match (opt_string(args, "at")?, args.get("in_minutes")) {
                (Some(at), None) => time::parse_local(at)?
                    .to_zoned_datetime(ctx.zone.clone())
                    .map_err(|e| ToolError::BadArguments(e.to_string()))?
                    .timestamp(),
                (None, Some(m)) => {
                    let m = m
                        .as_i64()
                        .filter(|m| (1..=60 * 24 * 366 * 10).contains(m))
                        .ok_or_else(|| {
                            ToolError::BadArguments(
                                "`in_minutes` is a whole number from 1 to ten years".into(),
                            )
                        })?;
                    ctx.now + jiff::SignedDuration::from_secs(m * 60)
                }
                _ => {
                    return Err(ToolError::BadArguments(
                        "give either `at` or `in_minutes`, not both or neither".into(),
                    ))
                }
            };
            if due <= ctx.now {
                return Err(ToolError::BadArguments(
                    "that time has already passed".into(),
                ));
            }
            let r = ctx.store.add_reminder(ctx.user, text, due.as_second())?;
            let local = due.to_zoned_datetime(ctx.zone.clone());
            Ok(json!({"saved": true, "id": r.id, "text": r.text,
                "at": local.strftime("%Y-%m-%d %H:%M").to_string()}))
        }
        "list_reminders" => {
            let list = ctx.store.reminders(ctx.user)?;
            Ok(json!(list
                .iter()
                .map(|r| {
                    let at = Timestamp::from_second(r.due)
                        .map(|t| {
                            t.to_zoned_datetime(ctx.zone.clone())
                                .strftime("%Y-%m-%d %H:%M")
                                .to_string()
                        })
                        .unwrap_or_default();
                    json!({"id": r.id, "text": r.text, "at": at})
                })
                .collect::<Vec<_>>()))
        }
        other => Err(ToolError::Unknown(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use hearth_store::Secret;

    use super::*;

    #[test]
    fn tools_run_for_their_person_only() {
        let store = Store::open_in_memory().unwrap();
        let ana = store.setup("H", "Ana", "correct horse").unwrap();
        let leo = store
            .add_person("Leo", &Secret::Pin("2468".into()))
            .unwrap();
        let now: Timestamp = "2026-12-08T10:00:00Z".parse().unwrap();
        let ctx = |user| Context {
            store: &store,
            user,
            zone: TimeZone::get("Europe/Paris").unwrap(),
            now,
        };
        let v = run(
            &ctx(ana.id),
            "create_note",
            &json!({"title": "Shopping", "content": "milk", "kind": "list"}),
        )
        .unwrap();
        let id = v["id"].as_i64().unwrap();
        assert_eq!(
            run(&ctx(ana.id), "read_note", &json!({"id": id})).unwrap()["content"],
            "milk"
        );
        let err = run(&ctx(leo.id), "read_note", &json!({"id": id})).unwrap_err();
        assert_eq!(err.to_string(), format!("note {id} was not found"));
        assert_eq!(
            run(&ctx(leo.id), "list_notes", &json!({})).unwrap(),
            json!([])
        );

        let v = run(
            &ctx(ana.id),
            "create_reminder",
            &json!({"text": "Oven", "at": "2026-12-08 18:00"}),
        )
        .unwrap();
        assert_eq!(v["at"], "2026-12-08 18:00");
        let r = &store.reminders(ana.id).unwrap()[0];
        assert_eq!(
            r.due,
            "2026-12-08T17:00:00Z"
                .parse::<Timestamp>()
                .unwrap()
                .as_second()
        );
        assert!(run(
            &ctx(ana.id),
            "create_reminder",
            &json!({"text": "Past", "at": "2026-12-01 18:00"})
        )
        .is_err());
        let v = run(
            &ctx(ana.id),
            "create_reminder",
            &json!({"text": "Tea", "in_minutes": 5}),
        )
        .unwrap();
        assert_eq!(v["at"], "2026-12-08 11:05");

        assert_eq!(
            run(&ctx(ana.id), "calculator", &json!({"expression": "12*7"})).unwrap()["result"],
            "84"
        );
        assert_eq!(
            run(&ctx(ana.id), "calculator", &json!({"expression": "1/0"}))
                .unwrap_err()
                .to_string(),
            "division by zero"
        );
        assert_eq!(
            run(
                &ctx(ana.id),
                "convert_units",
                &json!({"value": 5, "from": "km", "to": "mi"})
            )
            .unwrap()["result"],
            "3.1068559612…"
        );
        assert_eq!(
            run(&ctx(ana.id), "current_time", &json!({})).unwrap()["time"],
            "11:00:00"
        );
        assert!(matches!(
            run(&ctx(ana.id), "rm_rf", &json!({})),
            Err(ToolError::Unknown(_))
        ));
        assert!(run(&ctx(ana.id), "calculator", &json!({})).is_err());
    }

    #[test]
    fn every_tool_has_an_object_schema_and_a_unique_name() {
        let tools = builtin();
        let mut names: Vec<_> = tools.iter().map(|t| t.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), tools.len());
        for t in &tools {
            assert_eq!(t.parameters["type"], "object", "{}", t.name);
        }
        assert!(!find("create_note").unwrap().read_only);
        assert!(find("calculator").unwrap().read_only);
    }
}
