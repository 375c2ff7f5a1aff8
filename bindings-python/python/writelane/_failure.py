"""Turning exceptions into the failures the core classifies.

botocore is understood directly (a ``ClientError``'s code, HTTP status and
``x-amz-retry-after`` header; connection errors and read timeouts) without importing it:
if botocore was never imported, no exception can come from it. Any other exception is
fatal unless a ``classify`` callable says otherwise.
"""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from ._errors import UsageError


class ErrorClass(str, enum.Enum):
    """The classes the core sorts failures into; a ``classify`` callable may return one."""

    CONFLICT = "conflict"
    THROTTLE = "throttle"
    TRANSIENT = "transient"
    UNKNOWN = "unknown"
    FATAL = "fatal"


@dataclass(frozen=True)
class Failure:
    """What a failed call looked like, for a ``classify`` callable to return.

    ``code`` is the service's error code, ``status`` the HTTP status, ``retry_after_ms``
    a hint in milliseconds (an int, or header text that is parsed by the core's rule),
    ``outcome_unknown`` that the request was sent and no reply came back.
    """

    code: Optional[str] = None
    status: Optional[int] = None
    retry_after_ms: Union[int, str, None] = None
    outcome_unknown: bool = False


#: (code, status, retry_after_ms, retry_after_text, outcome_unknown)
Fields = Tuple[Optional[str], Optional[int], Optional[int], Optional[str], bool]

Classifier = Callable[[BaseException], Union[None, str, ErrorClass, Failure]]

_FATAL: Fields = (None, None, None, None, False)
_UNKNOWN: Fields = (None, None, None, None, True)
_NOT_SENT: Fields = ("ConnectionError", None, None, None, False)

_CLASS_NAMES = {c.value: c for c in ErrorClass}


def _status(value: Any) -> Optional[int]:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= 65535 else None


def _code(value: Any) -> Optional[str]:
    if isinstance(value, str) and value:
        return value[:256]
    return None


def fields_of_failure(failure: Failure) -> Fields:
    """Check a :class:`Failure` and turn it into native call arguments."""
    code = failure.code
    if code is not None and not isinstance(code, str):
        raise UsageError("invalid_argument", f"Failure.code: expected str, found {type(code).__name__}")
    status = failure.status
    if status is not None and _status(status) is None:
        raise UsageError("invalid_argument", f"Failure.status: expected an int in 0..=65535, found {status!r}")
    ms, text = retry_after_args(failure.retry_after_ms, "Failure.retry_after_ms")
    return (code, status, ms, text, bool(failure.outcome_unknown))


def retry_after_args(value: Any, field: str) -> Tuple[Optional[int], Optional[str]]:
    """A retry-after hint as (milliseconds, header text)."""
    if value is None:
        return None, None
    if isinstance(value, str):
        return None, value
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError("invalid_argument", f"{field}: expected int milliseconds or header text, found {type(value).__name__}")
    if value < 0 or value >= 1 << 64:
        raise UsageError("invalid_argument", f"{field}: must be non-negative, found {value}")
    return value, None


def botocore_fields(exc: BaseException) -> Optional[Fields]:
    """The failure fields of a botocore exception, or ``None`` if it is not one."""
    mod = sys.modules.get("botocore.exceptions")
    if mod is None:
        return None
    if isinstance(exc, mod.ClientError):
        response = getattr(exc, "response", None) or {}
        error = response.get("Error") or {}
        meta = response.get("ResponseMetadata") or {}
        headers = meta.get("HTTPHeaders") or {}
        hint = headers.get("x-amz-retry-after")
        return (
            _code(error.get("Code")),
            _status(meta.get("HTTPStatusCode")),
            None,
            hint if isinstance(hint, str) else None,
            False,
        )
    # Failing to connect means the request was never sent: a plain transient failure.
    if isinstance(exc, (mod.ConnectTimeoutError, mod.EndpointConnectionError)):
        return _NOT_SENT
    # A read timeout or a dropped connection after sending: the write may have landed.
    if isinstance(exc, (mod.ReadTimeoutError, mod.ConnectionClosedError, mod.HTTPClientError)):
        return _UNKNOWN
    if isinstance(exc, mod.ConnectionError):
        return _UNKNOWN
    return None


def class_fields(cls: ErrorClass, codes: Dict[str, List[Any]]) -> Fields:
    """Fields that the policy's code table puts in class ``cls``."""
    if cls is ErrorClass.UNKNOWN:
        return _UNKNOWN
    if cls is ErrorClass.FATAL:
        return _FATAL
    names = codes.get(cls.value) or []
    if names:
        return (str(names[0]), None, None, None, False)
    statuses = codes.get(f"{cls.value}_statuses") or []
    if statuses:
        return (None, int(statuses[0]), None, None, False)
    return _FATAL


def fields_of(
    exc: BaseException, classify: Optional[Classifier], codes: Dict[str, List[Any]]
) -> Fields:
    """Map an exception raised by a user's read or write to failure fields."""
    if classify is not None:
        verdict = classify(exc)
        if verdict is not None:
            if isinstance(verdict, ErrorClass):
                return class_fields(verdict, codes)
            if isinstance(verdict, Failure):
                return fields_of_failure(verdict)
            if isinstance(verdict, str):
                cls = _CLASS_NAMES.get(verdict)
                if cls is not None:
                    return class_fields(cls, codes)
                return (verdict[:256] or None, None, None, None, False)
            raise UsageError(
                "invalid_argument",
                "classify: must return None, a code (str), a writelane.ErrorClass or a "
                f"writelane.Failure, returned {type(verdict).__name__}",
            )
    found = botocore_fields(exc)
    if found is not None:
        return found
    return _FATAL
