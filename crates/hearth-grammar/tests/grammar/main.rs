//! Constraints on the two starter models' real tokenizers.
//!
//! Most tests walk a grammar without running a model: each step draws random logits, applies
//! the mask, takes the arg-max and accepts it. A seeded coin sometimes boosts the tokens that
//! close something (`"`, `}`, `]`, `,`, the end tokens) so walks finish instead of writing
//! random strings for ever; whether a boosted token is allowed is still the grammar's call.
//! Every finished walk must parse and validate against the schema the client sent (checked
//! with the `jsonschema` crate, not by this crate's code).
//!
//! The models come through `hearth_fetch::test_model` (set `HEARTH_TEST_HOME` to share a
//! cache); a model that cannot be had fails the test with the reason.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hearth_grammar::{tools, Constraint, Error, GrammarEnv, ToolMode, ToolSpec};
use hearth_model::tokenizer::Tokenizer;
use hearth_model::TokenConstraint;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

mod tool_refs;

struct Model {
    tok: Tokenizer,
    env: Arc<GrammarEnv>,
    /// Tokens boosted by the closing coin.
    closers: Vec<bool>,
    /// How long `GrammarEnv::new` took.
    build: Duration,
}

fn load(name: &str) -> Model {
    let path = hearth_fetch::test_model(name)
        .unwrap_or_else(|e| panic!("cannot get the test model {name}: {e}"));
    let gguf = hearth_gguf::Gguf::open(path).expect("open GGUF");
    let tok = Tokenizer::from_gguf(gguf.metadata()).expect("tokenizer from GGUF");
    let t0 = Instant::now();
    let env = Arc::new(GrammarEnv::new(&tok).expect("grammar env"));
    let build = t0.elapsed();
    // Tokens made only of closing brackets, quotes and spaces, with at least one closer: they
    // end strings and containers without opening new ones.
    let closers = (0..tok.n_vocab() as u32)
        .map(|id| {
            let piece = tok.token_to_piece(id);
            tok.is_eog(id)
                || (!tok.is_control(id)
                    && piece.iter().any(|b| matches!(b, b'"' | b'}' | b']'))
                    && piece.iter().all(|b| matches!(b, b'"' | b'}' | b']' | b' ')))
        })
        .collect();
    Model {
        tok,
        env,
        closers,
        build,
    }
}

fn smollm2() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| load("smollm2-135m"))
}

fn gemma3() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| load("gemma3-270m"))
}

/// The result of one walk.
struct Walk {
    text: String,
    /// The walk ended on an end token or with `is_finished`, not by running out of steps.
    finished: bool,
    /// Time spent in `mask`, and how many masks.
    mask_time: Duration,
    masks: usize,
}

/// Rows of logits past the tokenizer's vocabulary, as a model's output matrix may have.
const EXTRA_ROWS: usize = 5;

fn walk(m: &Model, mut c: Constraint, seed: u64, max_steps: usize) -> Walk {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = m.tok.n_vocab() + EXTRA_ROWS;
    let mut logits = vec![0f32; n];
    let mut ids = Vec::new();
    let mut mask_time = Duration::ZERO;
    let mut masks = 0;
    let mut finished = false;
    for _ in 0..max_steps {
        let close = rng.gen_bool(0.35);
        for (i, l) in logits.iter_mut().enumerate() {
            *l = rng.gen::<f32>();
            if close && m.closers.get(i).copied().unwrap_or(false) {
                *l += 10.0;
            }
        }
        let t0 = Instant::now();
        c.mask(&mut logits);
        mask_time += t0.elapsed();
        masks += 1;
        assert!(
            logits[m.tok.n_vocab()..]
                .iter()
                .all(|l| *l == f32::NEG_INFINITY),
            "rows past the vocabulary must be masked"
        );
        let (best, score) =
            logits
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |acc, (i, &l)| {
                        if l > acc.1 {
                            (i, l)
                        } else {
                            acc
                        }
                    },
                );
        assert!(score.is_finite(), "the mask allowed no token after {ids:?}");
        let id = best as u32;
        c.accept(id).expect("a token the mask allowed is accepted");
        if m.tok.is_eog(id) {
            finished = true;
            break;
        }
        ids.push(id);
        if c.is_finished() {
            finished = true;
            break;
        }
    }
    let bytes: Vec<u8> = ids
        .iter()
        .flat_map(|&id| m.tok.token_to_piece(id).to_vec())
        .collect();
    let text = String::from_utf8(bytes).expect("constrained output is UTF-8");
    Walk {
        text,
        finished,
        mask_time,
        masks,
    }
}

fn validate(schema: &Value, text: &str) {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    let validator = jsonschema::validator_for(schema).expect("test schema compiles");
    let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{text}\n does not validate: {errors:?}");
}

fn schemas() -> Vec<(&'static str, Value)> {
    vec![
        (
            "required properties",
            json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "age": {"type": "integer"},
                    "nickname": {"type": "string"}
                },
                "required": ["name", "age"]
            }),
        ),
        (
            "enum",
            json!({
                "type": "object",
                "properties": {"color": {"enum": ["red", "green", "light blue"]}},
                "required": ["color"]
            }),
        ),
        (
            "integer and number bounds",
            json!({
                "type": "object",
                "properties": {
                    "n": {"type": "integer", "minimum": -5, "maximum": 1234},
                    "x": {"type": "number", "exclusiveMinimum": 0, "maximum": 2.5}
                },
                "required": ["n", "x"]
            }),
        ),
        (
            "array maxItems",
            json!({
                "type": "array",
                "items": {"type": "integer", "minimum": 0, "maximum": 99},
                "minItems": 1,
                "maxItems": 3
            }),
        ),
        (
            "string length",
            json!({
                "type": "object",
                "properties": {"s": {"type": "string", "minLength": 2, "maxLength": 5}},
                "required": ["s"]
            }),
        ),
        (
            "nested with $defs",
            json!({
                "type": "object",
                "$defs": {
                    "item": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "integer", "minimum": 1, "maximum": 9},
                            "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
                            "done": {"type": "boolean"},
                            "note": {"type": ["string", "null"], "maxLength": 8}
                        },
                        "required": ["id", "done", "note"]
                    }
                },
                "properties": {
                    "title": {"type": "string", "maxLength": 12},
                    "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "maxItems": 2}
                },
                "required": ["title", "items"]
            }),
        ),
    ]
}

fn check_schema_walks(m: &Model, label: &str) {
    let mut total = Duration::ZERO;
    let mut masks = 0;
    let mut compile = Duration::ZERO;
    let mut compiled = 0;
    for (name, schema) in schemas() {
        for seed in 0..50 {
            let t0 = Instant::now();
            let c = Constraint::json_schema(&m.env, &schema).expect(name);
            compile += t0.elapsed();
            compiled += 1;
            let w = walk(m, c, seed, 600);
            assert!(
                w.finished,
                "{label} {name} seed {seed}: unfinished: {}",
                w.text
            );
            validate(&schema, &w.text);
            total += w.mask_time;
            masks += w.masks;
        }
    }
    eprintln!(
        "{label}: {} tokens, env built in {:?}, {:?} per schema compiled, {masks} schema \
         masks, {:?} per mask",
        m.tok.n_vocab(),
        m.build,
        compile / compiled,
        total / masks as u32
    );
}

#[test]
fn schema_walks_smollm2() {
    check_schema_walks(smollm2(), "smollm2");
}

#[test]
fn schema_walks_gemma3() {
    check_schema_walks(gemma3(), "gemma3");
}

#[test]
fn strict_objects_take_no_extra_keys() {
    let m = smollm2();
    let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
    let closed = json!({
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "additionalProperties": false
    });
    for seed in 0..20 {
        let c = Constraint::json_schema(&m.env, &schema).expect("schema");
        let w = walk(m, c, seed, 400);
        assert!(w.finished, "seed {seed}: {}", w.text);
        validate(&closed, &w.text);
    }
}

#[test]
fn json_object_walks_give_objects() {
    for (label, m) in [("smollm2", smollm2()), ("gemma3", gemma3())] {
        for seed in 0..20 {
            let c = Constraint::json_object(&m.env).expect("json_object");
            let w = walk(m, c, seed, 600);
            assert!(w.finished, "{label} seed {seed}: {}", w.text);
            let v: Value = serde_json::from_str(&w.text)
                .unwrap_or_else(|e| panic!("{label} seed {seed}: {e}: {}", w.text));
            assert!(v.is_object(), "{label} seed {seed}: {}", w.text);
        }
    }
}

/// The mask never lets a control token spell JSON; a complete value finishes the constraint with
/// only end tokens left; whitespace between tokens is bounded.
#[test]
fn control_tokens_are_masked_and_only_end_tokens_close() {
    let m = smollm2();
    let mut c = Constraint::json_schema(&m.env, &json!({"type": "boolean"})).expect("schema");
    let mut logits = vec![0f32; m.tok.n_vocab()];
    c.mask(&mut logits);
    let allowed: Vec<u32> = (0..logits.len() as u32)
        .filter(|&i| logits[i as usize].is_finite())
        .collect();
    assert!(!allowed.is_empty());
    for &id in &allowed {
        assert!(
            !m.tok.is_control(id) && !m.tok.is_eog(id),
            "control token {id} allowed at the start"
        );
    }
    for id in m.tok.encode("true", false, false) {
        assert!(!c.is_finished());
        c.accept(id).expect("true");
    }
    assert!(c.is_finished(), "nothing can follow `true`");
    let mut logits = vec![0f32; m.tok.n_vocab()];
    c.mask(&mut logits);
    let allowed: Vec<u32> = (0..logits.len() as u32)
        .filter(|&i| logits[i as usize].is_finite())
        .collect();
    assert!(!allowed.is_empty());
    assert!(
        allowed.iter().all(|&id| m.tok.is_eog(id)),
        "after `true` only end tokens: {allowed:?}"
    );

    // Whitespace is bounded: one space between tokens, not two.
    let mut c = Constraint::json_object(&m.env).expect("json_object");
    let space = m.tok.encode(" ", false, false);
    let two = m.tok.encode("  ", false, false);
    assert_eq!((space.len(), two.len()), (1, 1));
    feed(m, &mut c, "{");
    let mut logits = vec![0f32; m.tok.n_vocab()];
    c.mask(&mut logits);
    assert!(logits[space[0] as usize].is_finite(), "one space");
    assert_eq!(logits[two[0] as usize], f32::NEG_INFINITY, "two spaces");
    c.accept(space[0]).expect("space");
    let mut logits = vec![0f32; m.tok.n_vocab()];
    c.mask(&mut logits);
    assert_eq!(logits[space[0] as usize], f32::NEG_INFINITY, "second space");
}

#[test]
fn rejected_schemas_say_why() {
    let env = &smollm2().env;
    let e = Constraint::json_schema(env, &json!("object"))
        .err()
        .expect("string schema");
    assert!(matches!(e, Error::InvalidSchema { .. }), "{e}");
    assert!(e.to_string().contains("found a string"), "{e}");
    let e = Constraint::json_schema(env, &json!({"type": "array", "uniqueItems": true}))
        .err()
        .expect("uniqueItems");
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("uniqueItems"), "{e}");
    let e = Constraint::json_schema(env, &json!({"type": "integer", "minimum": 5, "maximum": 1}))
        .err()
        .expect("empty range");
    assert!(e.to_string().contains("response_format.json_schema"), "{e}");
    let e = Constraint::json_schema(env, &json!({"$ref": "#/$defs/missing"}))
        .err()
        .expect("broken $ref");
    assert!(e.to_string().contains("missing"), "{e}");
}

fn weather_tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "get_weather".into(),
            description: Some("Current weather in a city".into()),
            parameters: json!({
                "type": "object",
                "properties": {
                    "city": {"type": "string", "maxLength": 20},
                    "unit": {"enum": ["celsius", "fahrenheit"]}
                },
                "required": ["city", "unit"]
            }),
        },
        ToolSpec {
            name: "set_timer".into(),
            description: None,
            parameters: json!({
                "type": "object",
                "properties": {"minutes": {"type": "integer", "minimum": 1, "maximum": 120}},
                "required": ["minutes"]
            }),
        },
    ]
}

fn check_calls(tools_: &[ToolSpec], text: &str, only: Option<&str>) -> tools::Parsed {
    let parsed = tools::parse(text);
    assert!(!parsed.calls.is_empty(), "no calls in {text:?}");
    for call in &parsed.calls {
        let spec = tools_
            .iter()
            .find(|t| t.name == call.name)
            .unwrap_or_else(|| panic!("unknown tool {} in {text:?}", call.name));
        if let Some(name) = only {
            assert_eq!(call.name, name, "{text:?}");
        }
        validate(&spec.parameters, &call.arguments);
    }
    parsed
}

#[test]
fn required_and_named_tool_walks_parse_and_validate() {
    for (label, m) in [("smollm2", smollm2()), ("gemma3", gemma3())] {
        let ts = weather_tools();
        let mut names = std::collections::BTreeSet::new();
        for seed in 0..50 {
            let c = Constraint::tool_calls(&m.env, &ts, &ToolMode::Required)
                .expect("required")
                .expect("a constraint");
            let w = walk(m, c, seed, 600);
            assert!(w.finished, "{label} seed {seed}: {}", w.text);
            assert!(w.text.starts_with("<tool_call>"), "{}", w.text);
            let p = check_calls(&ts, &w.text, None);
            assert_eq!(p.content, "", "{label} seed {seed}: {}", w.text);
            names.extend(p.calls.into_iter().map(|c| c.name));
        }
        assert_eq!(names.len(), 2, "{label}: walks reach both tools: {names:?}");
        for seed in 0..20 {
            let c = Constraint::tool_calls(&m.env, &ts, &ToolMode::Named("set_timer".into()))
                .expect("named")
                .expect("a constraint");
            let w = walk(m, c, seed, 600);
            assert!(w.finished, "{label} seed {seed}: {}", w.text);
            check_calls(&ts, &w.text, Some("set_timer"));
        }
    }
}

#[test]
fn tool_mode_errors_and_none() {
    let env = &smollm2().env;
    let ts = weather_tools();
    assert!(Constraint::tool_calls(env, &ts, &ToolMode::None)
        .expect("none")
        .is_none());
    let e = Constraint::tool_calls(env, &ts, &ToolMode::Named("fly".into()))
        .err()
        .expect("unknown");
    assert!(e.to_string().contains("'fly'"), "{e}");
    assert!(e.to_string().contains("get_weather, set_timer"), "{e}");
    let bad = vec![ToolSpec {
        name: "f".into(),
        description: None,
        parameters: json!(7),
    }];
    let e = Constraint::tool_calls(env, &bad, &ToolMode::Required)
        .err()
        .expect("bad parameters");
    assert!(e.to_string().contains("tool 'f' parameters"), "{e}");
}

/// Feeds `text`'s tokens, checking that the mask allowed each one; returns the mean mask time.
fn feed(m: &Model, c: &mut Constraint, text: &str) -> Duration {
    let ids = m.tok.encode(text, false, false);
    let mut spent = Duration::ZERO;
    for &id in &ids {
        let mut logits = vec![0f32; m.tok.n_vocab()];
        let t0 = Instant::now();
        c.mask(&mut logits);
        spent += t0.elapsed();
        assert!(
            logits[id as usize].is_finite(),
            "token {id} {:?} of {text:?} was masked",
            m.tok.token_to_piece(id)
        );
        c.accept(id).expect("allowed token accepted");
    }
    spent / ids.len().max(1) as u32
}

#[test]
fn auto_leaves_text_free_until_the_trigger() {
    for (label, m) in [("smollm2", smollm2()), ("gemma3", gemma3())] {
        let ts = weather_tools();
        let auto = || {
            Constraint::tool_calls(&m.env, &ts, &ToolMode::Auto)
                .expect("auto")
                .expect("a constraint")
        };
        // Free text: every ordinary token stays allowed, end tokens too.
        let mut c = auto();
        let text =
            "Sure! It's 21°C in Paris — {\"json\": [1, 2]} <b>tool</b> <tool_ <tool_call ok.\n";
        let per_mask = feed(m, &mut c, text);
        let mut prose = auto();
        let prose_mask = feed(
            m,
            &mut prose,
            "The weather in Paris is mild today, with a light wind from the west and a few \
             clouds in the afternoon. Tomorrow will be warmer, so plan a walk by the river.",
        );
        eprintln!(
            "{label}: auto free-text mask {prose_mask:?} (prose), {per_mask:?} (text with \
             partial triggers and multi-byte characters)"
        );
        let mut logits = vec![0f32; m.tok.n_vocab()];
        c.mask(&mut logits);
        let masked: Vec<u32> = (0..m.tok.n_vocab() as u32)
            .filter(|&i| !logits[i as usize].is_finite())
            .collect();
        // Masked may be: control tokens that do not end generation, and byte tokens that are
        // not UTF-8 on their own (a lone continuation byte cannot follow a newline).
        for &id in &masked {
            let piece = m.tok.token_to_piece(id);
            assert!(
                m.tok.is_control(id) && !m.tok.is_eog(id) || std::str::from_utf8(piece).is_err(),
                "{label}: free text masks ordinary token {id} {:?}",
                String::from_utf8_lossy(piece)
            );
        }
        assert!(!c.is_finished());

        // After the trigger the call is constrained: text is masked, and walks give valid calls.
        let mut c = auto();
        feed(m, &mut c, "Let me look that up. <tool_call>");
        let mut logits = vec![0f32; m.tok.n_vocab()];
        c.mask(&mut logits);
        let hello = m.tok.encode("Hello", false, false)[0];
        assert_eq!(logits[hello as usize], f32::NEG_INFINITY, "{label}");
        for seed in 0..30 {
            let mut c = auto();
            feed(m, &mut c, "Let me look that up. <tool_call>");
            let w = walk(m, c, seed, 600);
            assert!(w.finished, "{label} seed {seed}: {}", w.text);
            let full = format!("Let me look that up. <tool_call>{}", w.text);
            let p = check_calls(&ts, &full, None);
            assert_eq!(p.content, "Let me look that up.");
        }
    }
}

/// A token that completes the trigger and carries more bytes is lexed like any other.
#[test]
fn auto_trigger_inside_a_token() {
    let open = tools::OPEN;
    let ts = weather_tools();
    let mut tried = 0;
    for (label, m) in [("smollm2", smollm2()), ("gemma3", gemma3())] {
        // Tokens that end the trigger (`>`, `l>`, `_call>` ...) and start the call (`{` or a
        // newline), such as Gemma's `>{`.
        for id in 0..m.tok.n_vocab() as u32 {
            if m.tok.is_control(id) {
                continue;
            }
            let Ok(piece) = std::str::from_utf8(m.tok.token_to_piece(id)) else {
                continue;
            };
            let Some(k) = (1..open.len()).find(|&k| {
                piece.starts_with(&open[open.len() - k..])
                    && piece.len() > k
                    && matches!(&piece[k..], "{" | "\n" | "\n{" | "{\"")
            }) else {
                continue;
            };
            tried += 1;
            let before = format!("ok {}", &open[..open.len() - k]);
            let mut c = Constraint::tool_calls(&m.env, &ts, &ToolMode::Auto)
                .expect("auto")
                .expect("a constraint");
            feed(m, &mut c, &before);
            let mut logits = vec![0f32; m.tok.n_vocab()];
            c.mask(&mut logits);
            assert!(logits[id as usize].is_finite(), "{label}: {piece:?} masked");
            c.accept(id).expect("trigger and more");
            let w = walk(m, c, u64::from(id), 600);
            assert!(w.finished, "{label} {piece:?}: {}", w.text);
            let p = check_calls(&ts, &format!("{before}{piece}{}", w.text), None);
            assert_eq!(p.content, "ok");
        }
    }
    assert!(
        tried > 0,
        "no vocabulary has a token that completes the trigger and goes on"
    );
}

/// The real SmolLM2 model, decoding greedily through the engine with the constraint on: the
/// output parses and validates, and the constraint ends the sequence.
#[test]
fn smollm2_greedy_through_the_engine() {
    use hearth_engine::{Engine, EngineOptions, Event, Request};
    use hearth_model::SamplerConfig;

    let m = smollm2();
    let path = hearth_fetch::test_model("smollm2-135m").expect("model");
    let model = hearth_model::Model::open(path).expect("model loads");
    let mut engine = Engine::new(
        model,
        EngineOptions {
            ctx: 1024,
            threads: 2,
            max_seqs: 1,
            ..EngineOptions::default()
        },
    );
    let mut run = |user: &str, constraint: Constraint| -> String {
        let prompt = format!(
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n\
             <|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
        );
        let id = engine
            .add(Request {
                prompt: m.tok.encode(&prompt, false, true),
                sampler: SamplerConfig::greedy(),
                max_tokens: 200,
                stop_tokens: m.tok.eog_ids().to_vec(),
                constraint: Some(Box::new(constraint)),
                ..Default::default()
            })
            .expect("add");
        let mut out = Vec::new();
        while engine.sequence(id).is_some_and(|s| s.is_active()) {
            for ev in engine.step().expect("step") {
                if let Event::Token { token, .. } = ev {
                    if !m.tok.is_eog(token) {
                        out.push(token);
                    }
                }
            }
        }
        engine.remove(id).expect("remove");
        m.tok.decode(&out)
    };

    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 20},
            "age": {"type": "integer", "minimum": 0, "maximum": 30},
            "color": {"enum": ["black", "white", "orange"]},
            "toys": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3}
        },
        "required": ["name", "age", "color", "toys"]
    });
    let text = run(
        "Describe a cat as JSON with its name, age, color and toys.",
        Constraint::json_schema(&m.env, &schema).expect("schema"),
    );
    eprintln!("json_schema: {text}");
    validate(&schema, &text);

    let ts = weather_tools();
    let text = run(
        &format!(
            "{}\n\nWhat is the weather in Paris?",
            tools::system_prompt(&ts)
        ),
        Constraint::tool_calls(&m.env, &ts, &ToolMode::Required)
            .expect("tools")
            .expect("a constraint"),
    );
    eprintln!("tool call: {text}");
    check_calls(&ts, &text, None);
}

/// Text a model writes in the documented format is accepted token by token, also with a
/// trailing newline, and the end token may follow.
#[test]
fn written_calls_are_accepted_and_may_end() {
    for (label, m) in [("smollm2", smollm2()), ("gemma3", gemma3())] {
        let ts = weather_tools();
        let written = "<tool_call>\n{\"name\": \"set_timer\", \"arguments\": {\"minutes\": 5}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"unit\": \"celsius\"}}\n</tool_call>\n";
        let mut c = Constraint::tool_calls(&m.env, &ts, &ToolMode::Required)
            .expect("required")
            .expect("a constraint");
        feed(m, &mut c, written);
        let mut logits = vec![0f32; m.tok.n_vocab()];
        c.mask(&mut logits);
        for &e in m.tok.eog_ids() {
            assert!(
                logits[e as usize].is_finite(),
                "{label}: end token {e} masked"
            );
        }
        let p = check_calls(&ts, written, None);
        assert_eq!(p.calls.len(), 2);
    }
}

#[test]
fn env_is_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    fn sent<T: Send>() {}
    shared::<GrammarEnv>();
    sent::<Constraint>();
}
