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

/// Checks that `schema` is a schema and closes its open objects, for embedding in a larger one.
pub(crate) fn check_and_close(schema: &Value, what: &str) -> Result<Value, Error> {
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
/// `additionalProperties`, recursing through the keywords that hold subschemas.
fn close_objects(schema: &mut Value) {
    let Value::Object(map) = schema else { return };
    if map.contains_key("properties") && !map.contains_key("additionalProperties") {
        map.insert("additionalProperties".to_string(), Value::Bool(false));
    }
    // Keywords whose value is a schema.
    for key in [
        "items",
        "additionalProperties",
        "additionalItems",
        "contains",
        "not",
        "if",
        "then",
        "else",
    ] {
        if let Some(sub) = map.get_mut(key) {
            close_objects(sub);
        }
    }
    // Keywords whose value is a list of schemas (`items` as a list is draft-07 tuple form).
    for key in ["anyOf", "oneOf", "prefixItems", "items"] {
        if let Some(Value::Array(list)) = map.get_mut(key) {
            list.iter_mut().for_each(close_objects);
        }
    }
    // Keywords whose value maps names to schemas.
    for key in [
        "properties",
        "patternProperties",
        "$defs",
        "definitions",
        "dependentSchemas",
    ] {
        if let Some(Value::Object(named)) = map.get_mut(key) {
            named.values_mut().for_each(close_objects);
        }
    }
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
