"""Structured output: response_format json_object and json_schema (strict), enforced by constrained
decoding. The prompts push against the schema's limits (too many items, too long a name, a number
out of range, a value outside the enum); the output must parse and validate all the same."""

from __future__ import annotations

import json

import jsonschema
import pydantic

from support import user

PET_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "colors": {"type": "array", "items": {"type": "string", "enum": ["red", "green", "blue"]}, "maxItems": 2},
        "age": {"type": "integer", "minimum": 3, "maximum": 9},
        "weight": {"type": "number", "minimum": 0.5, "maximum": 4.5},
        "kind": {"type": "string", "enum": ["cat", "dog", "rabbit"]},
    },
    "required": ["name", "colors", "age", "weight", "kind"],
    "additionalProperties": False,
}
PET_PROMPT = ("Describe my pet as JSON. It is a parrot called Bartholomew Fluffington the Third, 150 years old, "
              "weighs 80 kilograms, and is purple, orange, yellow, pink and black.")


def test_json_object(client, model_id):
    r = client.chat.completions.create(model=model_id,
                                       messages=user("Give me a JSON object with two keys: the name and the age of a cat."),
                                       temperature=0,
                                       max_tokens=200, response_format={"type": "json_object"})
    choice = r.choices[0]
    assert choice.finish_reason == "stop", f"the JSON did not close within 200 tokens: {choice.message.content!r}"
    value = json.loads(choice.message.content)
    assert isinstance(value, dict)


def test_json_schema_strict(client, model_id):
    r = client.chat.completions.create(
        model=model_id, messages=user(PET_PROMPT), temperature=0, max_tokens=200,
        response_format={"type": "json_schema", "json_schema": {"name": "pet", "strict": True, "schema": PET_SCHEMA}})
    choice = r.choices[0]
    assert choice.finish_reason == "stop", choice.message.content
    jsonschema.validate(json.loads(choice.message.content), PET_SCHEMA)


def test_json_schema_when_sampling(client, model_id):
    # Sampling at a high temperature explores tokens greedy decoding never reaches; the constraint
    # must hold for every one of them.
    fmt = {"type": "json_schema", "json_schema": {"name": "pet", "strict": True, "schema": PET_SCHEMA}}
    for seed in (7, 8):
        r = client.chat.completions.create(model=model_id, messages=user(PET_PROMPT), temperature=1.5, seed=seed,
                                           max_tokens=200, response_format=fmt)
        assert r.choices[0].finish_reason == "stop", r.choices[0].message.content
        jsonschema.validate(json.loads(r.choices[0].message.content), PET_SCHEMA)


class Recipe(pydantic.BaseModel):
    title: str = pydantic.Field(max_length=30)
    minutes: int = pydantic.Field(ge=1, le=240)
    vegetarian: bool


def test_parse_with_pydantic_model(client, model_id):
    # The openai package's parse() turns the model into a strict schema and parses the answer back.
    r = client.chat.completions.parse(model=model_id, messages=user("Give me a quick pancake recipe."),
                                      temperature=0, max_tokens=120, response_format=Recipe)
    recipe = r.choices[0].message.parsed
    assert isinstance(recipe, Recipe), r.choices[0].message.content
