"""The typed events of `writelane.events` match the event schema the core generates
(tests/schema/events.json): the same kinds, the same fields, the same JSON types, the same
nullability and the same enumerated values."""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from typing import Any, Dict, Optional

import pytest
from conftest import ROOT

import writelane
from writelane import events

SCHEMA = os.path.join(ROOT, "tests", "schema", "events.json")
JSON_TYPES = {"integer": int, "string": str, "boolean": bool}


def schema() -> Dict[str, Any]:
    with open(SCHEMA, encoding="utf-8") as f:
        return json.load(f)  # type: ignore[no-any-return]


def python_kinds() -> Dict[str, Any]:
    found = {}
    for name in events.__all__:
        cls = getattr(events, name)
        if isinstance(cls, type) and issubclass(cls, events.Event) and cls not in (events.Event, events.UnknownEvent):
            found[cls.type] = cls
    return found


def python_fields(cls: Any) -> Dict[str, Any]:
    """The JSON name and the resolved annotation of every field of an event class."""
    hints = typing.get_type_hints(cls)
    return {("class" if f.name == "error_class" else f.name): hints[f.name] for f in dataclasses.fields(cls)}


def test_the_schema_is_version_1_and_describes_itself() -> None:
    doc = schema()
    assert doc["version"] == 1 and "bindings check their event types against it" in doc["description"]


def test_every_event_kind_of_the_core_has_a_python_type_and_no_other() -> None:
    assert set(python_kinds()) == set(schema()["events"])


@pytest.mark.parametrize("kind", sorted(schema()["events"]))
def test_fields_types_and_values_match(kind: str) -> None:
    spec = schema()["events"][kind]["fields"]
    fields = python_fields(python_kinds()[kind])
    assert set(fields) == set(spec), kind
    for name, rule in spec.items():
        base: Any = JSON_TYPES[rule["type"]]
        if "enum" in rule:
            base = typing.Literal[tuple(rule["enum"])]  # type: ignore[valid-type]
        expected = Optional[base] if rule["nullable"] else base
        assert fields[name] == expected, f"{kind}.{name}: {fields[name]} is not {expected}"


@pytest.mark.parametrize("kind", sorted(schema()["events"]))
def test_an_event_as_the_schema_describes_it_parses_to_its_type_and_back(kind: str) -> None:
    sample: Dict[str, Any] = {"type": kind}
    for name, rule in schema()["events"][kind]["fields"].items():
        sample[name] = rule["enum"][-1] if "enum" in rule else {"integer": 7, "string": "s", "boolean": True}[rule["type"]]
    event = events.from_dict(sample)
    assert type(event) is python_kinds()[kind]
    assert event.to_dict() == sample
    del sample[next(iter(schema()["events"][kind]["fields"]))]
    assert isinstance(events.from_dict(sample), events.UnknownEvent), "a field missing is not the typed event"


def test_the_error_classes_are_the_schemas() -> None:
    classes = schema()["events"]["retry_scheduled"]["fields"]["class"]["enum"]
    assert [c.value for c in writelane.ErrorClass] == classes
