"""Changes for the common IAM shapes, for :meth:`writelane.Lane.update`: put a statement
by ``Sid`` into a policy document, remove one, add a principal to a trust policy, set tags.

They are thin wrappers over the core's ``writelane_core::iam::docs`` (the same functions
every binding exposes), so every language changes a document the same way. Each takes a
document (a dict as boto3 returns it, or ``None`` for none yet) and returns a new one; the
argument is never modified. They are idempotent: applying one again to its own result
changes nothing, so a change that re-runs on a fresher document after a conflict is safe.
A document of the wrong shape raises :class:`writelane.DocumentError` naming the field
(inside an update's ``change``, that refuses the update).

>>> from writelane import iam
>>> doc = iam.put_statement(None, {"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
>>> [s["Sid"] for s in doc["Statement"]], doc["Version"]
(['Read'], '2012-10-17')
>>> iam.put_statement(doc, doc["Statement"][0]) == doc
True
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from . import _native
from ._errors import DocumentError

#: A JSON document as Python values (a policy document is a dict; a tag list a list)
Document = Any


def _text(name: str, value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise DocumentError(name, f"not representable as JSON: {exc}") from None


def _string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise DocumentError(name, f"expected str, found {type(value).__name__}")
    return value


def put_statement(doc: Optional[Mapping[str, Any]], statement: Mapping[str, Any]) -> Dict[str, Any]:
    """Append ``statement`` to a policy document, or replace the statement with the same
    ``Sid`` (it must have a non-empty string ``Sid``). A missing ``Version`` becomes
    ``2012-10-17``; a single-statement ``Statement`` becomes a list."""
    return json.loads(_native.iam_put_statement(_text("doc", doc), _text("statement", statement)))  # type: ignore[no-any-return]


def remove_statement(doc: Mapping[str, Any], sid: str) -> Dict[str, Any]:
    """Remove the statement with this ``Sid`` from a policy document, if there is one."""
    return json.loads(_native.iam_remove_statement(_text("doc", doc), _string("sid", sid)))  # type: ignore[no-any-return]


def add_trust_principal(doc: Optional[Mapping[str, Any]], sid: str, kind: str, principal: str) -> Dict[str, Any]:
    """Add a principal to a role's trust policy: ``kind`` is ``AWS``, ``Service`` or
    ``Federated``, ``principal`` an ARN, account id or service name. It goes into the
    statement with this ``Sid``, created (``Allow``, ``sts:AssumeRole``) when missing; a
    principal already there is not added twice."""
    return json.loads(_native.iam_add_trust_principal(  # type: ignore[no-any-return]
        _text("doc", doc), _string("sid", sid), _string("kind", kind), _string("principal", principal)))


def set_tags(tags: Optional[Iterable[Mapping[str, Any]]], values: Union[Mapping[str, str], Iterable[Tuple[str, str]]]) -> List[Dict[str, str]]:
    """Set tags in an IAM tag list (``[{"Key": ..., "Value": ...}]``, ``None``: empty):
    a key present gets its new value in place, a new key is appended. ``values`` is a
    mapping or ``(key, value)`` pairs, applied in order."""
    pairs = list(values.items()) if isinstance(values, Mapping) else list(values)
    checked = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise DocumentError(f"values[{i}]", "expected a (key, value) pair")
        checked.append((_string(f"values[{i}].key", pair[0]), _string(f"values[{i}].value", pair[1])))
    listed = None if tags is None else list(tags)
    return json.loads(_native.iam_set_tags(_text("tags", listed), checked))  # type: ignore[no-any-return]


def statement_putter(statement: Mapping[str, Any]) -> Callable[[Optional[Mapping[str, Any]]], Dict[str, Any]]:
    """The ``change`` of an update that puts ``statement``: ``lane.update(entity, read=...,
    change=iam.statement_putter(stmt), write=...)``."""
    return lambda doc: put_statement(doc, statement)


__all__ = ["Document", "add_trust_principal", "put_statement", "remove_statement", "set_tags", "statement_putter"]
