"""The exception hierarchy of writelane.

Every exception writelane raises derives from :class:`Error`. Misconfiguration is a
:class:`PolicyError` (also a ``ValueError``) naming the field; misuse of the API is a
:class:`UsageError`; a write that could not be committed raises :class:`GaveUp` or
:class:`StaleRevision`; the decision-only strategy refuses a retry with
:class:`RetryRefused`; the core refuses a malformed lease record with :class:`RecordError`
and a document the IAM-shape helpers cannot change with :class:`DocumentError`.
This module imports nothing native so that the extension can raise
these classes itself.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional


class Error(Exception):
    """Base class of every writelane exception."""


class PolicyError(Error, ValueError):
    """A policy (or another configuration value) was refused.

    ``path`` is the dotted path of the offending field (``retry.conflict.base_ms``, or
    ``$`` for the whole document) and ``rule`` the rule it broke, in words.
    """

    def __init__(self, path: str, rule: str) -> None:
        super().__init__(f"policy field `{path}`: {rule}")
        #: dotted path of the offending field
        self.path = path
        #: the rule that was broken
        self.rule = rule


class TokenError(Error, ValueError):
    """An IAM policy document could not be canonicalised for a change token.

    ``path`` names the offending element of the document, ``rule`` what is wrong with it.
    """

    def __init__(self, path: str, rule: str) -> None:
        super().__init__(f"policy document at `{path}`: {rule}")
        #: path of the offending element in the document
        self.path = path
        #: what is wrong with it
        self.rule = rule


class UsageError(Error):
    """The API was called in a way its contract does not allow; nothing was changed.

    ``kind`` is a stable snake_case name (``time_went_backwards``, ``unknown_op``,
    ``invalid_entity``, ``invalid_argument`` ...).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        #: stable snake_case name of the misuse
        self.kind = kind


class GaveUp(Error):
    """The engine stopped retrying a write.

    ``reason`` is one of ``attempts_exhausted``, ``budget_exhausted``,
    ``deadline_exceeded``, ``fatal`` or ``cancelled``; ``attempts`` counts the write
    attempts made; ``last_error`` is the last exception seen (also ``__cause__``);
    ``outcome`` is the core's outcome object as a dict (``class``, ``code``, ``scope``,
    ``http_status`` where they apply).
    """

    def __init__(
        self,
        reason: str,
        attempts: int,
        last_error: Optional[BaseException] = None,
        outcome: Optional[Dict[str, Any]] = None,
        entity: Optional[str] = None,
    ) -> None:
        self.reason = reason
        self.attempts = attempts
        self.last_error = last_error
        self.outcome: Dict[str, Any] = dict(outcome or {})
        self.entity = entity
        self.code: Optional[str] = self.outcome.get("code")
        self.error_class: Optional[str] = self.outcome.get("class")
        detail = f" ({self.code})" if self.code else ""
        where = f" on {entity}" if entity else ""
        super().__init__(f"gave up{where} after {attempts} attempt(s): {reason}{detail}")


class StaleRevision(Error):
    """The entity is at a revision the writer has not seen: ``expected`` was the token the
    change was based on, ``found`` the token read (``None``: the entity does not exist).
    """

    def __init__(
        self,
        expected: Optional[str],
        found: Optional[str],
        entity: Optional[str] = None,
        attempts: int = 0,
    ) -> None:
        self.expected = expected
        self.found = found
        self.entity = entity
        self.attempts = attempts
        where = f" of {entity}" if entity else ""
        super().__init__(f"stale revision{where}: expected {expected!r}, found {found!r}")


class RecordError(Error, ValueError):
    """A lease record the core refused (a store holds something writelane did not write):
    ``field`` is the field at fault (``$`` for the whole record), ``rule`` what is wrong.
    """

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"invalid lease record: {field} {rule}")
        #: the field at fault
        self.field = field
        #: what is wrong with it
        self.rule = rule


class DocumentError(Error, ValueError):
    """A document (or an argument) given to a helper of :mod:`writelane.iam` does not have
    the shape the change needs: ``path`` names the field (``Statement[2].Sid``,
    ``statement.Sid``, ``$`` for the whole document), ``reason`` what is wrong with it.
    Raised inside an update's ``change``, it refuses that update (code ``DocumentError``).
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        #: the field at fault, as a path into the document, or the argument
        self.path = path
        #: what is wrong with it
        self.reason = reason


class EntityError(Error, ValueError):
    """The entity of an SDK call cannot be determined from its request: ``operation`` is
    the API operation (``PutRolePolicy``), ``parameter`` the request parameter at fault in
    the API's spelling (``RoleName``; ``params`` for the request as a whole, ``caller``
    for the calling user), ``reason`` the core's message. The lane middleware of
    :mod:`writelane.botocore` never raises it: such a call goes through unserialised and is
    counted.
    """

    def __init__(self, operation: str, parameter: str, reason: str) -> None:
        super().__init__(reason)
        #: the operation
        self.operation = operation
        #: the request parameter at fault
        self.parameter = parameter
        #: what is wrong with it
        self.reason = reason


class RetryRefused(Error):
    """The decision-only strategy refused a retry; ``reason`` is ``not_retryable``,
    ``attempts_exhausted``, ``budget_exhausted`` or ``deadline_exceeded`` and ``detail``
    the core's refusal as a dict.
    """

    def __init__(self, reason: str, detail: Any = None) -> None:
        self.reason = reason
        if isinstance(detail, str):
            try:
                detail = json.loads(detail)
            except ValueError:
                detail = {"text": detail}
        self.detail: Dict[str, Any] = dict(detail or {})
        super().__init__(f"retry refused: {reason}")


__all__ = [
    "Error",
    "PolicyError",
    "TokenError",
    "UsageError",
    "GaveUp",
    "StaleRevision",
    "RetryRefused",
    "RecordError",
    "DocumentError",
    "EntityError",
]
