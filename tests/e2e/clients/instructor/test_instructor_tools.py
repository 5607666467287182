"""instructor in `Mode.TOOLS` with a nested pydantic model: its tool schema carries `$defs` and a
`$ref`, which Hearth's tool grammar once refused with a 400; the reply must come back as a
validated object."""

from __future__ import annotations

import instructor
from pydantic import BaseModel

from support import user


class Address(BaseModel):
    city: str
    country: str


class Person(BaseModel):
    name: str
    age: int
    address: Address


def test_instructor_tools_mode_with_a_nested_model_returns_a_validated_object(server, model_id):
    client = instructor.from_openai(server.client(), mode=instructor.Mode.TOOLS)
    person = client.chat.completions.create(
        model=model_id,
        response_model=Person,
        messages=user("Ada Lovelace is 36 and lives in London, England. Extract the person."),
        temperature=0,
        max_tokens=200,
        max_retries=0,
    )
    assert isinstance(person, Person)
    assert isinstance(person.address, Address)
    assert person.name and person.address.city
