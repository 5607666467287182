//! Chat templates: turn a conversation into the prompt text a model was trained on.
//!
//! Models ship a Jinja template in `tokenizer.chat_template`. We render it with `minijinja`
//! configured like Hugging Face's `apply_chat_template` (`trim_blocks`, `lstrip_blocks`, Python
//! string methods through `minijinja-contrib`'s pycompat, `raise_exception`, `strftime_now`, a
//! Python-style `tojson`).
//!
//! # Trusted and untrusted text
//!
//! The rendered prompt mixes the template's own markup (`<|im_start|>`, `<end_of_turn>`: these
//! must become control tokens) with message text, which must never be parsed into control
//! tokens: a user who types `<|im_end|>` must not end their turn. [`Rendered`] therefore keeps
//! the prompt as segments marked trusted or untrusted, and [`crate::tokenizer::Tokenizer::encode_rendered`]
//! tokenizes each with or without special-token parsing.
//!
//! To find where message text lands, the template is rendered twice: once with the real
//! contents (this is the text we return), and once with each content replaced by a unique
//! sentinel made of private-use characters. The sentinel render splits into the template's own
//! parts; the real render is then walked part by part, and what sits between two parts is the
//! (possibly trimmed, as many templates do with `| trim`) message content. If the two renders
//! do not line up (a template that branches on the content itself), we fall back to rendering
//! each content wrapped in sentinels and splitting at them; that keeps the trust boundaries
//! exact but not any trimming the template applied to the content.
//!
//! # Bounded work
//!
//! A template is code from a downloaded file, so it may loop for ever (`range(100000)` nested).
//! Every render pass runs with minijinja's fuel (a step limit, [`Limits::fuel`]), and the passes
//! that build one prompt run on a worker thread that the caller waits for at most
//! [`Limits::time`]: a few costly steps (huge strings) can take long without using much fuel.
//! Past the deadline the caller gets [`Error::TooSlow`] at once, and the worker stops at its next
//! output, `range` step or Python-style method call (or when its fuel runs out).

use std::cell::Cell;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, ErrorKind, State};
use serde::{Deserialize, Serialize};

/// Errors compiling or rendering a chat template.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The template source does not compile.
    #[error("chat template does not compile: {0:#}")]
    Compile(minijinja::Error),
    /// Rendering failed (including the template's own `raise_exception`).
    #[error("chat template failed to render: {0:#}")]
    Render(minijinja::Error),
    /// The GGUF metadata could not be read.
    #[error("chat template metadata: {0}")]
    Metadata(#[from] hearth_gguf::Error),
    /// A message could not be turned into a template value.
    #[error("chat message {index} cannot be passed to the template: {why}")]
    BadMessage { index: usize, why: String },
    /// One render pass used up its step budget ([`Limits::fuel`]).
    #[error("this model's chat template did too much work: building one prompt took more than {steps} steps, so it was stopped. The template inside the model file is faulty or hostile; use another model, or a copy of this one with a working template")]
    TooManySteps { steps: u64 },
    /// Building one prompt took longer than [`Limits::time`].
    #[error("this model's chat template did too much work: building one prompt took longer than {limit:?}, so it was stopped. The template inside the model file is faulty or hostile; use another model, or a copy of this one with a working template")]
    TooSlow { limit: Duration },
}

/// How much work building one prompt may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// minijinja steps (instructions) per render pass; a prompt takes two or three passes.
    pub fuel: u64,
    /// Wall-clock time for all the passes of one prompt.
    pub time: Duration,
}

/// Steps one render pass may take. The templates Hearth's tests know (SmolLM2, Qwen2.5 and
/// Llama 3.1 with 16 tools and a tool call per turn, Gemma 3) take 20 to 50 steps per message:
/// `real_templates_leave_headroom_under_the_fuel_limit` measures a 1,001-message conversation
/// at 23,000 to 50,000 steps, 40 times below this limit. Two million steps take about a tenth of
/// a second.
pub const DEFAULT_FUEL: u64 = 2_000_000;

/// Time for all the passes of one prompt. Real templates take milliseconds even for long
/// conversations; the limit only has to catch the few steps that fuel cannot (a loop over huge
/// strings), and must not trip on a busy machine.
pub const DEFAULT_TIME: Duration = Duration::from_secs(5);

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            fuel: DEFAULT_FUEL,
            time: DEFAULT_TIME,
        }
    }
}

/// One message of a conversation, in OpenAI's shape.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ChatMessage {
    /// A message with a role and text.
    pub fn new(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.to_owned(),
            content: Some(content.to_owned()),
            ..ChatMessage::default()
        }
    }
}

/// A run of prompt text and whether special tokens in it may be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub text: String,
    /// True for the template's own markup; false for text that came from a message.
    pub trusted: bool,
}

/// A rendered prompt.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    pub segments: Vec<Segment>,
}

impl Rendered {
    /// The whole prompt text.
    pub fn text(&self) -> String {
        self.segments.iter().map(|s| s.text.as_str()).collect()
    }

    fn push(&mut self, text: &str, trusted: bool) {
        if text.is_empty() {
            return;
        }
        match self.segments.last_mut() {
            Some(last) if last.trusted == trusted => last.text.push_str(text),
            _ => self.segments.push(Segment {
                text: text.to_owned(),
                trusted,
            }),
        }
    }
}

/// A compiled chat template.
pub struct ChatTemplate {
    /// Shared with the worker thread a render runs on.
    env: Arc<Environment<'static>>,
    source: String,
    bos_token: String,
    eos_token: String,
    limits: Limits,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source_len", &self.source.len())
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .field("limits", &self.limits)
            .finish()
    }
}

const TEMPLATE_NAME: &str = "chat";
/// Sentinel marks (Unicode private use area): `OPEN index CLOSE` stands for one content.
const OPEN: char = '\u{F0000}';
const CLOSE: char = '\u{F0001}';
/// Fallback marks wrapping real content: `WRAP_OPEN index WRAP_MID content WRAP_CLOSE`.
const WRAP_OPEN: char = '\u{F0002}';
const WRAP_MID: char = '\u{F0003}';
const WRAP_CLOSE: char = '\u{F0004}';

impl ChatTemplate {
    /// Compiles a template. `bos_token` / `eos_token` are the texts the template may insert.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate, Error> {
        ChatTemplate::with_limits(source, bos_token, eos_token, Limits::default())
    }

    /// [`new`](Self::new) with other work limits than [`Limits::default`].
    pub fn with_limits(
        source: &str,
        bos_token: &str,
        eos_token: &str,
        limits: Limits,
    ) -> Result<ChatTemplate, Error> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_fuel(Some(limits.fuel));
        // Outputs, `range` steps and Python-style methods are where a long render passes
        // through our code, so that is where it notices the deadline.
        env.set_formatter(|out, state, value| {
            check_deadline()?;
            minijinja::escape_formatter(out, state, value)
        });
        env.set_unknown_method_callback(
            |state: &State, value: &Value, method: &str, args: &[Value]| {
                check_deadline()?;
                minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
            },
        );
        env.add_function("range", range);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(TEMPLATE_NAME, source.to_owned())
            .map_err(Error::Compile)?;
        Ok(ChatTemplate {
            env: Arc::new(env),
            source: source.to_owned(),
            bos_token: bos_token.to_owned(),
            eos_token: eos_token.to_owned(),
            limits,
        })
    }

    /// The work limits renders run under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The template stored in `tokenizer.chat_template`, or `None` when the file has none.
    pub fn from_gguf(
        md: &hearth_gguf::Metadata,
        tok: &crate::tokenizer::Tokenizer,
    ) -> Result<Option<ChatTemplate>, Error> {
        let Some(source) = md.opt_str("tokenizer.chat_template")? else {
            return Ok(None);
        };
        let bos = tok.bos().map_or("", |id| tok.token_text(id));
        let eos = tok.eos().map_or("", |id| tok.token_text(id));
        ChatTemplate::new(source, bos, eos).map(Some)
    }

    /// The template source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the template refers to `tools` (so it can describe tools to the model).
    pub fn uses_tools(&self) -> bool {
        self.source.contains("tools")
    }

    /// Renders a conversation. Message contents become untrusted segments.
    ///
    /// Blocks for up to [`Limits::time`]; async callers run it on a blocking thread.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        tools: Option<&serde_json::Value>,
    ) -> Result<Rendered, Error> {
        let job = Arc::new(self.job(messages, add_generation_prompt, tools));
        let limit = self.limits.time;
        let deadline = Instant::now() + limit;
        let (tx, rx) = mpsc::sync_channel(1);
        let worker_job = job.clone();
        let worker = std::thread::Builder::new()
            .name("chat-template".into())
            .spawn(move || {
                // The receiver is gone when the caller stopped waiting; nobody needs the answer.
                let _ = tx.send(worker_job.run(deadline));
            });
        if let Err(e) = worker {
            // Without a thread to spare, render here: fuel still bounds the work.
            tracing::warn!("no thread for the chat template ({e}); rendering in place");
            return job.run(deadline).map_err(|e| self.explain(e));
        }
        match rx.recv_timeout(limit) {
            Ok(result) => result.map_err(|e| self.explain(e)),
            // The worker keeps going until its next deadline check or the end of its fuel; the
            // prompt is refused now.
            Err(mpsc::RecvTimeoutError::Timeout) => Err(Error::TooSlow { limit }),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(Error::Render(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                "the template stopped without an answer",
            ))),
        }
    }

    fn job(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        tools: Option<&serde_json::Value>,
    ) -> Job {
        Job {
            env: self.env.clone(),
            messages: messages.to_vec(),
            tools: tools.cloned(),
            add_generation_prompt,
            bos_token: self.bos_token.clone(),
            eos_token: self.eos_token.clone(),
        }
    }

    /// Fills in the limits an error from the worker refers to.
    fn explain(&self, e: Error) -> Error {
        match e {
            Error::TooManySteps { .. } => Error::TooManySteps {
                steps: self.limits.fuel,
            },
            Error::TooSlow { .. } => Error::TooSlow {
                limit: self.limits.time,
            },
            other => other,
        }
    }

    /// Steps (of [`Limits::fuel`]) one render pass of this conversation takes, to check that
    /// the limit leaves real templates room.
    pub fn fuel_used(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        tools: Option<&serde_json::Value>,
    ) -> Result<u64, Error> {
        let contents: Vec<String> = messages
            .iter()
            .map(|m| m.content.clone().unwrap_or_default())
            .collect();
        let job = self.job(messages, add_generation_prompt, tools);
        let tmpl = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(Error::Compile)?;
        let captured = tmpl
            .render_captured(job.context(&contents)?)
            .map_err(Error::Render)?;
        Ok(captured.state().fuel_levels().map_or(0, |(used, _)| used))
    }
}

/// Everything one prompt's render passes need, owned, so they can run on a worker thread.
struct Job {
    env: Arc<Environment<'static>>,
    messages: Vec<ChatMessage>,
    tools: Option<serde_json::Value>,
    add_generation_prompt: bool,
    bos_token: String,
    eos_token: String,
}

thread_local! {
    /// The deadline of the render running on this thread, and whether it has passed.
    static DEADLINE: Cell<Option<(Instant, bool)>> = const { Cell::new(None) };
}

/// Fails once the render on this thread is past its deadline.
fn check_deadline() -> Result<(), minijinja::Error> {
    if past_deadline() {
        Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            "the chat template ran out of time",
        ))
    } else {
        Ok(())
    }
}

/// Whether the render on this thread is past its deadline (and remembers that it was).
fn past_deadline() -> bool {
    DEADLINE.with(|d| match d.get() {
        Some((_, true)) => true,
        Some((at, false)) if Instant::now() >= at => {
            d.set(Some((at, true)));
            true
        }
        _ => false,
    })
}

/// Sets this thread's deadline for the life of the guard.
struct DeadlineGuard;

impl DeadlineGuard {
    fn set(at: Instant) -> DeadlineGuard {
        DEADLINE.with(|d| d.set(Some((at, false))));
        DeadlineGuard
    }
}

impl Drop for DeadlineGuard {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(None));
    }
}

impl Job {
    /// All the passes of one prompt (see the module docs).
    fn run(&self, deadline: Instant) -> Result<Rendered, Error> {
        let _guard = DeadlineGuard::set(deadline);
        let contents: Vec<String> = self
            .messages
            .iter()
            .map(|m| strip_marks(m.content.as_deref().unwrap_or("")))
            .collect();
        let real = self.pass(&contents)?;
        // Empty contents stay empty: there is nothing to protect, and templates test them
        // (`{% if message.content %}`), which a sentinel would turn true.
        let sentinels = replace_nonempty(&contents, |i, _| format!("{OPEN}{i}{CLOSE}"));
        let skeleton = self.pass(&sentinels)?;
        if let Some(r) = align(&real, &skeleton, &contents) {
            return Ok(r);
        }
        let wrapped = replace_nonempty(&contents, |i, c| {
            format!("{WRAP_OPEN}{i}{WRAP_MID}{c}{WRAP_CLOSE}")
        });
        let text = self.pass(&wrapped)?;
        Ok(split_wrapped(&text))
    }

    /// One render with `contents` in place of the messages' contents.
    fn pass(&self, contents: &[String]) -> Result<String, Error> {
        let tmpl = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(Error::Compile)?;
        let result = tmpl.render(self.context(contents)?);
        // A `range` that stopped at the deadline ends the loop quietly, so the deadline is
        // checked whatever the render returned.
        if past_deadline() {
            return Err(Error::TooSlow {
                limit: Duration::ZERO,
            });
        }
        result.map_err(|e| {
            if e.kind() == ErrorKind::OutOfFuel {
                Error::TooManySteps { steps: 0 }
            } else {
                Error::Render(e)
            }
        })
    }

    fn context(&self, contents: &[String]) -> Result<Value, Error> {
        let msgs: Vec<serde_json::Value> = self
            .messages
            .iter()
            .zip(contents)
            .enumerate()
            .map(|(i, (m, c))| message_value(i, m, c))
            .collect::<Result<_, _>>()?;
        let tools_value = self.tools.as_ref().map(Value::from_serialize);
        Ok(minijinja::context! {
            messages => Value::from_serialize(&msgs),
            add_generation_prompt => self.add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
            tools => tools_value,
        })
    }
}

/// The template's view of a message: `content` always a string (null becomes ""), tool-call
/// arguments given as JSON text parsed into objects (templates `tojson` them).
fn message_value(index: usize, m: &ChatMessage, content: &str) -> Result<serde_json::Value, Error> {
    let mut v = serde_json::to_value(m).map_err(|e| Error::BadMessage {
        index,
        why: e.to_string(),
    })?;
    let Some(obj) = v.as_object_mut() else {
        return Err(Error::BadMessage {
            index,
            why: "not an object".into(),
        });
    };
    obj.insert(
        "content".into(),
        serde_json::Value::String(content.to_owned()),
    );
    if let Some(serde_json::Value::Array(calls)) = obj.get_mut("tool_calls") {
        for call in calls {
            if let Some(args) = call.pointer_mut("/function/arguments") {
                if let Some(parsed) = args
                    .as_str()
                    .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                    .filter(serde_json::Value::is_object)
                {
                    *args = parsed;
                }
            }
        }
    }
    Ok(v)
}

/// Removes our sentinel characters from message text so a message cannot forge a boundary.
fn strip_marks(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(*c, OPEN | CLOSE | WRAP_OPEN | WRAP_MID | WRAP_CLOSE))
        .collect()
}

/// Splits a sentinel render into template parts and content indexes, in order.
fn skeleton_parts(skeleton: &str) -> (Vec<&str>, Vec<usize>) {
    let mut parts = Vec::new();
    let mut indexes = Vec::new();
    let mut rest = skeleton;
    while let Some(open) = rest.find(OPEN) {
        let after = &rest[open + OPEN.len_utf8()..];
        let Some(close) = after.find(CLOSE) else {
            break;
        };
        let Ok(i) = after[..close].parse::<usize>() else {
            break;
        };
        parts.push(&rest[..open]);
        indexes.push(i);
        rest = &after[close + CLOSE.len_utf8()..];
    }
    parts.push(rest);
    (parts, indexes)
}

/// Lines the real render up with the sentinel render; `None` when they do not match.
fn align(real: &str, skeleton: &str, contents: &[String]) -> Option<Rendered> {
    let (parts, indexes) = skeleton_parts(skeleton);
    let mut out = Rendered::default();
    let mut pos = 0;
    for (k, part) in parts.iter().enumerate() {
        if !real[pos..].starts_with(part) {
            return None;
        }
        out.push(part, true);
        pos += part.len();
        let Some(&i) = indexes.get(k) else {
            break;
        };
        let content = contents.get(i)?;
        let next = parts[k + 1];
        let candidates = [
            content.as_str(),
            content.trim(),
            content.trim_start(),
            content.trim_end(),
        ];
        let found = candidates.iter().find(|c| {
            let rest = &real[pos..];
            rest.starts_with(**c) && rest[c.len()..].starts_with(next)
        })?;
        out.push(found, false);
        pos += found.len();
    }
    (pos == real.len()).then_some(out)
}

/// Splits a render whose contents are wrapped in marks.
fn split_wrapped(text: &str) -> Rendered {
    let mut out = Rendered::default();
    let mut rest = text;
    while let Some(open) = rest.find(WRAP_OPEN) {
        out.push(&rest[..open], true);
        let after = &rest[open + WRAP_OPEN.len_utf8()..];
        let (Some(mid), Some(close)) = (after.find(WRAP_MID), after.find(WRAP_CLOSE)) else {
            rest = after;
            continue;
        };
        if mid < close {
            out.push(&after[mid + WRAP_MID.len_utf8()..close], false);
        }
        rest = &after[close + WRAP_CLOSE.len_utf8()..];
    }
    out.push(rest, true);
    // Marks the template moved around (e.g. by slicing) must not reach the model.
    for s in &mut out.segments {
        s.text = strip_marks(&s.text);
    }
    out
}

/// minijinja's `range` (at most 100,000 items), ending early once the render is past its
/// deadline: nested ranges are how a template spins.
fn range(
    lower: isize,
    upper: Option<isize>,
    step: Option<isize>,
) -> Result<Value, minijinja::Error> {
    let inner = minijinja::functions::range(lower, upper, step)?;
    Ok(Value::make_object_iterable(inner, |v| {
        Box::new(
            v.try_iter()
                .into_iter()
                .flatten()
                .take_while(|_| !past_deadline()),
        )
    }))
}

fn raise_exception(msg: String) -> Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(
        ErrorKind::InvalidOperation,
        format!("template raised: {msg}"),
    ))
}

/// `strftime_now(format)`: the current UTC time with the common `strftime` fields.
fn strftime_now(format: String) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    strftime(secs, &format)
}

fn strftime(secs: u64, format: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    let days = secs / 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    let tod = secs % 86_400;
    let (hh, mm, ss) = (tod / 3600, tod % 3600 / 60, tod % 60);
    let month = MONTHS[(m - 1) as usize];
    let weekday = DAYS[(days % 7) as usize];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('Y') => out.push_str(&y.to_string()),
            Some('y') => out.push_str(&format!("{:02}", y % 100)),
            Some('b') => out.push_str(&month[..3]),
            Some('B') => out.push_str(month),
            Some('a') => out.push_str(&weekday[..3]),
            Some('A') => out.push_str(weekday),
            Some('H') => out.push_str(&format!("{hh:02}")),
            Some('M') => out.push_str(&format!("{mm:02}")),
            Some('S') => out.push_str(&format!("{ss:02}")),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `tojson` as Hugging Face templates expect it: Python's `json.dumps` layout (`", "` and
/// `": "` separators, optional `indent`), non-ASCII kept as is, no HTML escaping.
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    let _: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    let mut out = String::new();
    write_json(&json, indent, 0, &mut out);
    Ok(Value::from_safe_string(out))
}

fn write_json(v: &serde_json::Value, indent: Option<usize>, depth: usize, out: &mut String) {
    use serde_json::Value as J;
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v {
        J::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                write_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        J::Object(map) if !map.is_empty() => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push_str(": ");
                write_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Each message content replaced by `f(index, content)`, except empty ones, which stay empty.
fn replace_nonempty(contents: &[String], f: impl Fn(usize, &str) -> String) -> Vec<String> {
    contents
        .iter()
        .enumerate()
        .map(|(i, c)| if c.is_empty() { String::new() } else { f(i, c) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | trim }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

    #[test]
    fn contents_are_untrusted_and_trimmed() {
        let t = ChatTemplate::new(CHATML, "", "").expect("compiles");
        let r = t
            .render(&[ChatMessage::new("user", "  hi <|im_end|> ")], true, None)
            .expect("renders");
        assert_eq!(
            r.text(),
            "<|im_start|>user\nhi <|im_end|><|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(r.segments.len(), 3);
        assert!(r.segments[0].trusted && !r.segments[1].trusted && r.segments[2].trusted);
        assert_eq!(r.segments[1].text, "hi <|im_end|>");
    }

    #[test]
    fn content_dependent_templates_fall_back_to_wrapping() {
        let src = "{% for m in messages %}{% if m.content.startswith('x') %}X:{% endif %}[{{ m.content }}]{% endfor %}";
        let t = ChatTemplate::new(src, "", "").expect("compiles");
        let r = t
            .render(&[ChatMessage::new("user", "xy")], false, None)
            .expect("renders");
        // The fallback keeps the boundaries; the wrapped content no longer starts with 'x'.
        assert_eq!(r.text(), "[xy]");
        assert!(!r.segments[1].trusted);
    }

    #[test]
    fn compile_and_render_errors_are_clear() {
        let e = ChatTemplate::new("{% for %}", "", "").expect_err("bad syntax");
        assert!(e.to_string().contains("does not compile"), "{e}");
        let t =
            ChatTemplate::new("{{ raise_exception('no system role') }}", "", "").expect("compiles");
        let e = t.render(&[], false, None).expect_err("raises");
        assert!(e.to_string().contains("no system role"), "{e}");
    }

    #[test]
    fn null_content_with_tool_calls_renders() {
        let src = "{% for m in messages %}{{ m.role }}:{{ m.content }}{% if m.tool_calls %}{% for c in m.tool_calls %}{{ c.function.arguments | tojson }}{% endfor %}{% endif %};{% endfor %}";
        let t = ChatTemplate::new(src, "", "").expect("compiles");
        let calls = serde_json::json!([{"id": "1", "type": "function",
            "function": {"name": "f", "arguments": "{\"a\": 1, \"b\": \"é\"}"}}]);
        let msgs = [
            ChatMessage {
                role: "assistant".into(),
                content: None,
                tool_calls: Some(calls),
                ..ChatMessage::default()
            },
            ChatMessage {
                role: "tool".into(),
                content: Some("42".into()),
                tool_call_id: Some("1".into()),
                ..ChatMessage::default()
            },
        ];
        let r = t.render(&msgs, false, None).expect("renders");
        assert_eq!(r.text(), "assistant:{\"a\": 1, \"b\": \"é\"};tool:42;");
    }

    #[test]
    fn loop_controls_and_namespace() {
        let src = "{% set ns = namespace(n=0) %}{% for m in messages %}{% if m.role == 'system' %}{% continue %}{% endif %}{% set ns.n = ns.n + 1 %}{% if ns.n > 1 %}{% break %}{% endif %}{{ m.content }}{% endfor %}|{{ ns.n }}";
        let t = ChatTemplate::new(src, "", "").expect("compiles");
        let msgs = [
            ChatMessage::new("system", "s"),
            ChatMessage::new("user", "a"),
            ChatMessage::new("user", "b"),
        ];
        assert_eq!(t.render(&msgs, false, None).expect("renders").text(), "a|2");
    }

    #[test]
    fn strftime_fields() {
        // 2024-02-29 13:05:09 UTC
        assert_eq!(
            strftime(1_709_211_909, "%d %b %Y %H:%M:%S %A"),
            "29 Feb 2024 13:05:09 Thursday"
        );
    }
}
