"""writelane: the write discipline for cloud control planes.

One writer per entity at a time, a re-read and change-token check before every retry,
jittered exponential backoff, retry budgets and telemetry, decided by one Rust engine.

>>> import writelane
>>> lane = writelane.Lane("iam")
>>> lane.run("role/deploy", lambda attempt: attempt.number)
1
"""

from __future__ import annotations

from typing import Any

from . import events, iam
from ._clock import Clock, ManualClock
from ._engine import Engine
from ._errors import (
    DocumentError,
    EntityError,
    Error,
    GaveUp,
    PolicyError,
    RecordError,
    RetryRefused,
    StaleRevision,
    TokenError,
    UsageError,
)
from ._failure import ErrorClass, Failure
from ._lane import Attempt, Lane
from ._native import CORE_VERSION as _CORE_VERSION
from ._native import canonical_policy as _canonical_policy
from ._native import parse_retry_after as _parse_retry_after
from ._native import policy_token as _policy_token
from ._policy import PRESETS, Policy
from ._strategy import RetryPlan, RetryStrategy, RetryToken

__version__ = _CORE_VERSION


def _document_text(document: Any) -> str:
    import json

    if isinstance(document, str):
        return document
    if isinstance(document, (bytes, bytearray)):
        try:
            return bytes(document).decode("utf-8")
        except UnicodeDecodeError:
            raise TokenError("$", "document is not UTF-8") from None
    if isinstance(document, dict):
        try:
            return json.dumps(document)
        except (TypeError, ValueError) as exc:
            raise TokenError("$", f"not representable as JSON: {exc}") from None
    raise TokenError("$", f"expected str, bytes or dict, found {type(document).__name__}")


def policy_token(document: Any) -> str:
    """The canonical change token of an IAM policy document (``c1:sha256:...``).

    ``document`` is JSON text, the URL-encoded form IAM returns, or a dict (the form boto3
    returns). Semantically equal documents give equal tokens. Raises
    :class:`TokenError` naming the offending path.
    """
    return _policy_token(_document_text(document))


def canonical_policy(document: Any) -> str:
    """The canonical JSON form of an IAM policy document that :func:`policy_token` hashes."""
    return _canonical_policy(_document_text(document))


def parse_retry_after(header: str) -> "int | None":
    """Parse ``x-amz-retry-after`` header text (whole milliseconds); anything else is
    ``None``."""
    if not isinstance(header, str):
        raise UsageError("invalid_argument", f"header: expected str, found {type(header).__name__}")
    return _parse_retry_after(header)


def __getattr__(name: str) -> Any:
    # `writelane.botocore` is loaded on first use: botocore stays an optional import.
    if name == "botocore":
        import importlib

        return importlib.import_module(".botocore", __name__)
    raise AttributeError(f"module 'writelane' has no attribute {name!r}")


__all__ = [
    "Attempt",
    "Clock",
    "DocumentError",
    "EntityError",
    "Engine",
    "Error",
    "ErrorClass",
    "Failure",
    "GaveUp",
    "Lane",
    "ManualClock",
    "PRESETS",
    "Policy",
    "PolicyError",
    "RecordError",
    "RetryPlan",
    "RetryRefused",
    "RetryStrategy",
    "RetryToken",
    "StaleRevision",
    "TokenError",
    "UsageError",
    "canonical_policy",
    "events",
    "iam",
    "parse_retry_after",
    "policy_token",
]
