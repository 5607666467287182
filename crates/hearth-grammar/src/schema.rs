//! Getting a request's JSON schema ready for llguidance.
//!
//! Two changes, both of which only narrow what the schema accepts, so anything generated still
//! validates against the schema the client sent:
//!
//! - **Strict objects.** An object schema that lists `properties` but says nothing about
//!   `additionalProperties` gets `"additionalProperties": false`. The JSON Schema default would
//!   let the model invent keys; OpenAI's strict mode forbids them and llama.cpp's converter
//!   treats the missing keyword the same way. Branches of `allOf` are left alone: closing each
//!   branch on its own properties could make the intersection unsatisfiable.
//! - **Bounded whitespace.** llguidance's `x-guidance` options set the separators and the
//!   whitespace allowed between tokens of JSON: at most one space, or one newline followed by up
//!   to 20 spaces or tabs (enough to pretty-print a few levels deep). Unbounded whitespace would
//!   let a model loop on spaces until `max_tokens`.

use serde_json::{json, Map, Value};

use crate::Error;

/// Whitespace allowed between two JSON tokens, as one regex matched at most once per gap.
pub(crate) const WHITESPACE: &str = r"(?: |\n[ \t]{0,20})";

/// The `x-guidance` options every schema is compiled with.
fn guidance_options() -> Value {
    json!({
        "item_separator": ",",
        "key_separator": ":",
        "whitespace_flexible": false,
        "whitespace_pattern": WHITESPACE,
        "coerce_one_of": false,
        "lenient": false,
    })
}

/// Checks the top level, closes open objects and attaches the whitespace options.
/// `what` names the schema in errors ("response_format.json_schema", "tool 'f' parameters").
pub(crate) fn prepare(schema: &Value, what: &str) -> Result<Value, Error> {
    Ok(with_options(check_and_close(schema, what)?))
}

/// Attaches the whitespace options to a schema's top level (llguidance reads them only there).
pub(crate) fn with_options(mut schema: Value) -> Value {
    if let Value::Object(map) = &mut schema {
        // The client's own x-guidance options would undo the whitespace bound.
        map.insert("x-guidance".to_string(), guidance_options());
    }
    schema
}

/// Checks that `schema` is a schema and closes its open objects.
fn check_and_close(schema: &Value, what: &str) -> Result<Value, Error> {
    let mut schema = match schema {
        Value::Object(_) => schema.clone(),
        // `true` accepts any JSON value; `false` accepts nothing.
        Value::Bool(true) => Value::Object(Map::new()),
        Value::Bool(false) => {
            return Err(Error::InvalidSchema {
                what: what.to_string(),
                reason: "the schema is `false`, which no value satisfies".to_string(),
            })
        }
        other => {
            return Err(Error::InvalidSchema {
                what: what.to_string(),
                reason: format!(
                    "expected a JSON object (or boolean), found {}",
                    kind_of(other)
                ),
            })
        }
    };
    close_objects(&mut schema);
    Ok(schema)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Adds `additionalProperties: false` to every object schema with `properties` and no
/// `additionalProperties`, recursing through every subschema but those of `allOf`.
fn close_objects(schema: &mut Value) {
    let Value::Object(map) = schema else { return };
    if map.contains_key("properties") && !map.contains_key("additionalProperties") {
        map.insert("additionalProperties".to_string(), Value::Bool(false));
    }
    for_each_subschema(map, &mut |keyword, sub| {
        if keyword != "allOf" {
            close_objects(sub);
        }
    });
}

/// Calls `f` with each subschema directly under a schema object and the keyword holding it.
///
/// Only keywords whose values are schemas are followed: a `$ref` inside `const`, `enum`,
/// `default` or `examples` is data, not a reference.
fn for_each_subschema(map: &mut Map<String, Value>, f: &mut dyn FnMut(&str, &mut Value)) {
    for (keyword, value) in map.iter_mut() {
        match (keyword.as_str(), value) {
            // Keywords whose value is a schema (`items` is one in draft 2020-12).
            (
                "items"
                | "additionalProperties"
                | "additionalItems"
                | "contains"
                | "not"
                | "if"
                | "then"
                | "else"
                | "propertyNames"
                | "unevaluatedItems"
                | "unevaluatedProperties"
                | "contentSchema",
                sub @ (Value::Object(_) | Value::Bool(_)),
            ) => f(keyword, sub),
            // Keywords whose value is a list of schemas (`items` as a list is draft-07 tuple form).
            ("allOf" | "anyOf" | "oneOf" | "prefixItems" | "items", Value::Array(list)) => {
                list.iter_mut().for_each(|sub| f(keyword, sub));
            }
            // Keywords whose value maps names to schemas (draft-07 `dependencies` may also map a
            // name to a list of property names, which is not a schema).
            (
                "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas"
                | "dependencies",
                Value::Object(named),
            ) => named
                .values_mut()
                .filter(|sub| sub.is_object() || sub.is_boolean())
                .for_each(|sub| f(keyword, sub)),
            _ => {}
        }
    }
}

/// Prepares a tool's parameters for a place inside a larger schema: checks and closes them as
/// [`check_and_close`] does, then rebases their references.
///
/// A `$ref` such as `#/$defs/Address` or `#` is relative to the document it appears in, and
/// llguidance resolves every reference against the root of the schema it compiles. Embedded at
/// `at` (a JSON pointer fragment such as `#/anyOf/0/properties/arguments`), the parameters' own
/// `#...` references become `at...`, so each still reaches its own tool's definitions even when
/// two tools define the same name differently; recursive references stay recursive. References
/// are checked here too, so a broken one is reported in the client's own terms.
pub(crate) fn embed(schema: &Value, at: &str, what: &str) -> Result<Value, Error> {
    let mut schema = check_and_close(schema, what)?;
    let root = schema.clone();
    rebase_refs(&mut schema, &root, at, what)?;
    Ok(schema)
}

fn rebase_refs(schema: &mut Value, root: &Value, at: &str, what: &str) -> Result<(), Error> {
    let Value::Object(map) = schema else {
        return Ok(());
    };
    if let Some(reference) = map.get_mut("$ref") {
        let Value::String(r) = reference else {
            return Err(Error::InvalidSchema {
                what: what.to_string(),
                reason: format!("`$ref` must be a string, found {}", kind_of(reference)),
            });
        };
        let pointer = local_pointer(r).ok_or_else(|| Error::Unsupported {
            what: what.to_string(),
            reason: format!(
                "`$ref` \"{r}\" points outside the schema; only references within it \
                 (\"#\" or \"#/...\") are supported"
            ),
        })?;
        if let Err((parent, missing)) = resolve(root, pointer) {
            let place = match parent {
                "" => "the schema".to_string(),
                _ => format!("\"#{parent}\""),
            };
            return Err(Error::Unsupported {
                what: what.to_string(),
                reason: format!("`$ref` \"{r}\" points at nothing: {place} has no \"{missing}\""),
            });
        }
        *r = format!("{at}{pointer}");
    }
    let mut result = Ok(());
    for_each_subschema(map, &mut |_, sub| {
        if result.is_ok() {
            result = rebase_refs(sub, root, at, what);
        }
    });
    result
}

/// The JSON pointer of a reference within the same document (`""` for the root), or `None` for
/// one that names another document.
fn local_pointer(reference: &str) -> Option<&str> {
    match reference {
        "#" | "#/" => Some(""),
        _ => reference.strip_prefix('#').filter(|p| p.starts_with('/')),
    }
}

/// Follows `pointer` from `root` segment by segment, as llguidance does (no `~` or `%`
/// unescaping, array items by index); on failure, the pointer to the last node found and the
/// segment missing from it.
fn resolve<'p>(root: &Value, pointer: &'p str) -> Result<(), (&'p str, &'p str)> {
    let mut node = root;
    let mut found = 0;
    for segment in pointer.split('/').skip(1) {
        let next = match node {
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => node.get(segment),
        };
        node = next.ok_or((&pointer[..found], segment))?;
        found += 1 + segment.len();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_nested_objects_but_not_all_of_branches() {
        let mut s = json!({
            "type": "object",
            "properties": {
                "a": {"type": "object", "properties": {"x": {"type": "integer"}}},
                "b": {"type": "array", "items": {"properties": {"y": {}}}},
                "c": {"type": "object", "properties": {}, "additionalProperties": true}
            },
            "$defs": {"d": {"properties": {"z": {}}}},
            "allOf": [{"properties": {"p": {}}}]
        });
        close_objects(&mut s);
        assert_eq!(s["additionalProperties"], json!(false));
        assert_eq!(s["properties"]["a"]["additionalProperties"], json!(false));
        assert_eq!(
            s["properties"]["b"]["items"]["additionalProperties"],
            json!(false)
        );
        assert_eq!(s["properties"]["c"]["additionalProperties"], json!(true));
        assert_eq!(s["$defs"]["d"]["additionalProperties"], json!(false));
        assert!(s["allOf"][0].get("additionalProperties").is_none());
    }

    #[test]
    fn embed_rebases_schema_refs_and_leaves_data_alone() {
        let s = json!({
            "$defs": {"A": {"type": "integer"}},
            "definitions": {"B": {"items": [{"$ref": "#/definitions/B"}]}},
            "properties": {
                "a": {"$ref": "#/$defs/A"},
                "self": {"anyOf": [{"$ref": "#"}, {"$ref": "#/"}, {"type": "null"}]},
                "deep": {"allOf": [{"$ref": "#/properties/a"}]},
                "$ref": {"const": {"$ref": "#/$defs/A"}, "default": {"$ref": "x"}},
                "dep": {"dependencies": {"p": ["q"], "r": {"$ref": "#/$defs/A"}}}
            }
        });
        let at = "#/anyOf/3/properties/arguments";
        let e = embed(&s, at, "t").expect("embeds");
        let p = &e["properties"];
        assert_eq!(p["a"]["$ref"], json!(format!("{at}/$defs/A")));
        assert_eq!(p["self"]["anyOf"][0]["$ref"], json!(at));
        assert_eq!(p["self"]["anyOf"][1]["$ref"], json!(at));
        assert_eq!(
            p["deep"]["allOf"][0]["$ref"],
            json!(format!("{at}/properties/a"))
        );
        assert_eq!(
            e["definitions"]["B"]["items"][0]["$ref"],
            json!(format!("{at}/definitions/B"))
        );
        assert_eq!(p["dep"]["dependencies"]["p"], json!(["q"]));
        assert_eq!(
            p["dep"]["dependencies"]["r"]["$ref"],
            json!(format!("{at}/$defs/A"))
        );
        // A property named `$ref` is a name, and `const`/`default` values are data.
        assert_eq!(p["$ref"]["const"], json!({"$ref": "#/$defs/A"}));
        assert_eq!(p["$ref"]["default"], json!({"$ref": "x"}));
    }

    #[test]
    fn embed_names_refs_it_cannot_follow() {
        let err = |s: Value| {
            embed(&s, "#/x", "tool 'f' parameters")
                .unwrap_err()
                .to_string()
        };
        let msg = err(json!({"properties": {"a": {"$ref": "#/$defs/Missing"}}}));
        assert_eq!(
            msg,
            "unsupported tool 'f' parameters: `$ref` \"#/$defs/Missing\" points at nothing: \
             the schema has no \"$defs\""
        );
        let msg = err(json!({"$defs": {"A": {}}, "items": {"$ref": "#/$defs/B"}}));
        assert!(msg.ends_with("\"#/$defs\" has no \"B\""), "{msg}");
        let msg = err(json!({"items": {"$ref": "other.json#/$defs/A"}}));
        assert!(
            msg.contains("\"other.json#/$defs/A\" points outside the schema"),
            "{msg}"
        );
        let msg = err(json!({"not": {"$ref": 3}}));
        assert!(
            msg.contains("`$ref` must be a string, found a number"),
            "{msg}"
        );
    }

    #[test]
    fn rejects_non_schemas_naming_the_kind() {
        let e = prepare(&json!([1, 2]), "response_format.json_schema").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("response_format.json_schema"), "{msg}");
        assert!(msg.contains("an array"), "{msg}");
        assert!(prepare(&json!(false), "x").is_err());
        assert_eq!(
            prepare(&json!(true), "x").unwrap()["x-guidance"],
            guidance_options()
        );
    }
}
