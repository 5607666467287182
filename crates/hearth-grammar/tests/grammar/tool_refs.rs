//! Tool schemas that use `$ref` (issue 16, item 1).
//!
//! Pydantic writes nested models as `$defs` plus `#/$defs/Name` references (draft-07 writers use
//! `definitions`), and a tool's references point at its own `parameters`. The tool-call grammar
//! embeds every tool's parameters in one larger schema, so each reference must still reach the
//! tool's own definitions: the same name in two tools may mean two different shapes.

use hearth_grammar::{Constraint, Error, ToolMode, ToolSpec};
use hearth_model::TokenConstraint;
use serde_json::json;

use crate::{check_calls, feed, gemma3, smollm2, validate, walk, Model};

fn tool(name: &str, parameters: serde_json::Value) -> ToolSpec {
    ToolSpec {
        name: name.into(),
        description: None,
        parameters,
    }
}

/// What Pydantic and draft-07 writers send: nested models, recursion through `$defs` and through
/// the root (`#`), `definitions`, and `Address` defined by two tools with different shapes.
fn ref_tools() -> Vec<ToolSpec> {
    vec![
        // pydantic: class Address(BaseModel): street, city; class Person(BaseModel): name, address
        tool(
            "save_person",
            json!({
                "$defs": {
                    "Address": {
                        "properties": {
                            "street": {"title": "Street", "type": "string", "maxLength": 12},
                            "city": {"title": "City", "type": "string", "maxLength": 10}
                        },
                        "required": ["street", "city"],
                        "title": "Address",
                        "type": "object"
                    }
                },
                "properties": {
                    "name": {"title": "Name", "type": "string", "maxLength": 10},
                    "address": {"$ref": "#/$defs/Address"}
                },
                "required": ["name", "address"],
                "title": "Person",
                "type": "object"
            }),
        ),
        // Another tool's `Address`: nothing like the one above.
        tool(
            "ship_parcel",
            json!({
                "$defs": {
                    "Address": {
                        "type": "object",
                        "properties": {
                            "postcode": {"type": "integer", "minimum": 1000, "maximum": 9999},
                            "country": {"enum": ["NO", "FR"]}
                        },
                        "required": ["postcode", "country"]
                    }
                },
                "type": "object",
                "properties": {"to": {"$ref": "#/$defs/Address"}},
                "required": ["to"]
            }),
        ),
        // A recursive model: a tree node whose children are tree nodes.
        tool(
            "plant_tree",
            json!({
                "$defs": {
                    "Node": {
                        "type": "object",
                        "properties": {
                            "label": {"type": "string", "maxLength": 6},
                            "children": {
                                "type": "array",
                                "items": {"$ref": "#/$defs/Node"},
                                "maxItems": 2
                            }
                        },
                        "required": ["label", "children"]
                    }
                },
                "type": "object",
                "properties": {"root": {"$ref": "#/$defs/Node"}},
                "required": ["root"]
            }),
        ),
        // Draft-07: `definitions`, one definition referring to another.
        tool(
            "book_flight",
            json!({
                "$schema": "http://json-schema.org/draft-07/schema#",
                "definitions": {
                    "Airport": {"type": "string", "enum": ["OSL", "CDG", "NRT"]},
                    "Leg": {
                        "type": "object",
                        "properties": {
                            "from": {"$ref": "#/definitions/Airport"},
                            "to": {"$ref": "#/definitions/Airport"}
                        },
                        "required": ["from", "to"]
                    }
                },
                "type": "object",
                "properties": {
                    "legs": {
                        "type": "array",
                        "items": {"$ref": "#/definitions/Leg"},
                        "minItems": 1,
                        "maxItems": 2
                    }
                },
                "required": ["legs"]
            }),
        ),
        // Recursion through the root itself.
        tool(
            "add_category",
            json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 8},
                    "sub": {"type": "array", "items": {"$ref": "#"}, "maxItems": 2}
                },
                "required": ["name", "sub"]
            }),
        ),
    ]
}

fn constraint(m: &Model, tools: &[ToolSpec], mode: &ToolMode) -> Constraint {
    Constraint::tool_calls(&m.env, tools, mode)
        .unwrap_or_else(|e| panic!("tool_choice {mode:?}: {e}"))
        .expect("a constraint")
}

/// Whether the constraint lets `text` through token by token (it stops at the first masked one).
fn lets_through(m: &Model, c: &mut Constraint, text: &str) -> bool {
    for id in m.tok.encode(text, false, false) {
        let mut logits = vec![0f32; m.tok.n_vocab()];
        c.mask(&mut logits);
        if !logits[id as usize].is_finite() || c.accept(id).is_err() {
            return false;
        }
    }
    true
}

#[test]
fn tool_schemas_with_defs_refs_compile_for_every_tool_choice() {
    let ts = ref_tools();
    let mut modes = vec![ToolMode::Auto, ToolMode::Required];
    modes.extend(ts.iter().map(|t| ToolMode::Named(t.name.clone())));
    for (label, m) in [("smollm2", smollm2()), ("gemma3", gemma3())] {
        for mode in &modes {
            if let Err(e) = Constraint::tool_calls(&m.env, &ts, mode) {
                panic!("{label}: tool_choice {mode:?} does not compile: {e}");
            }
        }
    }

    // Every call a walk writes validates against its own tool's schema, as the client sent it.
    let m = smollm2();
    let mut names = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let w = walk(m, constraint(m, &ts, &ToolMode::Required), seed, 800);
        assert!(w.finished, "required seed {seed}: {}", w.text);
        let p = check_calls(&ts, &w.text, None);
        names.extend(p.calls.into_iter().map(|c| c.name));
    }
    assert!(names.len() >= 3, "walks reach several tools: {names:?}");
    for t in &ts {
        let named = ToolMode::Named(t.name.clone());
        for seed in 0..12 {
            let w = walk(m, constraint(m, &ts, &named), seed, 800);
            assert!(w.finished, "{} seed {seed}: {}", t.name, w.text);
            check_calls(&ts, &w.text, Some(&t.name));
        }
    }
    for seed in 0..12 {
        let mut c = constraint(m, &ts, &ToolMode::Auto);
        feed(m, &mut c, "Saving. <tool_call>");
        let w = walk(m, c, seed, 800);
        assert!(w.finished, "auto seed {seed}: {}", w.text);
        check_calls(&ts, &format!("Saving. <tool_call>{}", w.text), None);
    }
}

/// Each reference reaches its own tool's definition: `save_person`'s address takes a street and
/// a city, never `ship_parcel`'s postcode, and the other way round; recursion goes as deep as
/// the text does and still checks every level.
#[test]
fn tool_refs_reach_their_own_tools_definitions() {
    let m = smollm2();
    let ts = ref_tools();
    let call = |name: &str, args: &str| {
        format!("<tool_call>\n{{\"name\": \"{name}\", \"arguments\": {args}}}\n</tool_call>")
    };
    let cases = [
        (
            "save_person",
            r#"{"name": "Ada", "address": {"street": "Main St 1", "city": "Oslo"}}"#,
            r#"{"name": "Ada", "address": {"postcode": 1234, "country": "NO"}}"#,
        ),
        (
            "ship_parcel",
            r#"{"to": {"postcode": 1234, "country": "NO"}}"#,
            r#"{"to": {"street": "Main St 1", "city": "Oslo"}}"#,
        ),
        (
            "plant_tree",
            r#"{"root": {"label": "a", "children": [{"label": "b", "children": [{"label": "c", "children": []}]}]}}"#,
            r#"{"root": {"label": "a", "children": [{"label": "b", "children": [{"label": "c"}]}]}}"#,
        ),
        (
            "book_flight",
            r#"{"legs": [{"from": "OSL", "to": "CDG"}, {"from": "CDG", "to": "NRT"}]}"#,
            r#"{"legs": [{"from": "OSL", "to": "LHR"}]}"#,
        ),
        (
            "add_category",
            r#"{"name": "food", "sub": [{"name": "fruit", "sub": [{"name": "apple", "sub": []}]}]}"#,
            r#"{"name": "food", "sub": [{"name": "fruit", "sub": [{"name": "apple"}]}]}"#,
        ),
    ];
    for (name, good, bad) in cases {
        let spec = ts.iter().find(|t| t.name == name).expect("tool");
        validate(&spec.parameters, good);
        let text = call(name, good);
        for mode in [ToolMode::Required, ToolMode::Named(name.into())] {
            let mut c = constraint(m, &ts, &mode);
            assert!(lets_through(m, &mut c, &text), "{mode:?} refuses {text}");
            let text = call(name, bad);
            let mut c = constraint(m, &ts, &mode);
            assert!(
                !lets_through(m, &mut c, &text),
                "{mode:?} lets {text} through"
            );
        }
    }
}

/// A tool schema the grammar cannot take is a client error that names the tool and the problem
/// in plain words, without the grammar Hearth builds around it.
#[test]
fn broken_tool_schemas_name_the_tool_and_the_problem() {
    let env = &smollm2().env;
    let good = ref_tools();
    let cases = [
        (
            json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}}),
            "Missing",
        ),
        (
            json!({"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}}),
            "https://example.com/s.json",
        ),
        (
            json!({"type": "object", "properties": {"a": {"type": "array", "uniqueItems": true}}}),
            "uniqueItems",
        ),
    ];
    for (params, problem) in cases {
        let mut ts = good.clone();
        ts.push(tool("broken_tool", params));
        for mode in [
            ToolMode::Auto,
            ToolMode::Required,
            ToolMode::Named("broken_tool".into()),
        ] {
            let e = Constraint::tool_calls(env, &ts, &mode)
                .err()
                .unwrap_or_else(|| panic!("{mode:?} compiles a broken tool"));
            assert!(matches!(e, Error::Unsupported { .. }), "{e}");
            let msg = e.to_string();
            if mode == ToolMode::Auto {
                eprintln!("{msg}");
            }
            assert!(msg.contains("tool 'broken_tool'"), "{msg}");
            assert!(msg.contains(problem), "{msg}");
            for internal in ["%json", "start:", "<tool_call>", "anyOf", "x-guidance"] {
                assert!(!msg.contains(internal), "{internal} in {msg}");
            }
        }
        // A request that does not offer the broken tool is not held up by it.
        let named = ToolMode::Named("save_person".into());
        assert!(Constraint::tool_calls(env, &ts, &named).is_ok());
    }
}
