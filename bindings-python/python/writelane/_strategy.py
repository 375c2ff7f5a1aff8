"""The decision-only retry strategy: the caller makes the calls, writelane decides."""

from __future__ import annotations

import time
from typing import Any, NamedTuple, Optional, Tuple, Union

from . import _native
from ._errors import UsageError
from ._failure import retry_after_args
from ._policy import Policy, PolicyLike, coerce_policy, coerce_seed

RetryToken = _native.RetryToken

_MS = 1_000_000


class RetryPlan(NamedTuple):
    """A retry that was allowed: wait ``delay_ms``; it took ``cost`` budget tokens; the
    failure was of class ``error_class``."""

    delay_ms: int
    cost: int
    error_class: str


class RetryStrategy:
    """Retry decisions without a driver, in the shape of the AWS SDKs' retry strategies:
    :meth:`acquire` a token per logical call, :meth:`refresh` it after each failure (the
    delay to wait, or :class:`writelane.RetryRefused`), :meth:`record_success` at the end.

    Budgets are one bucket per ``scope``. Time comes from a monotonic clock; pass
    ``now_ms`` to every call to drive it on a clock of your own (then it must never go
    backwards). Safe to share between threads.
    """

    def __init__(self, policy: PolicyLike = None, *, seed: Optional[int] = None) -> None:
        self._native = _native.NativeStrategy(coerce_policy(policy), coerce_seed(seed))
        self._origin = time.monotonic_ns()

    @property
    def policy(self) -> Policy:
        """The policy in force."""
        return Policy(self._native.policy())

    def _time(self, now_ms: Optional[int]) -> Tuple[int, bool]:
        if now_ms is None:
            return (time.monotonic_ns() - self._origin) // _MS, True
        if isinstance(now_ms, bool) or not isinstance(now_ms, int) or not 0 <= now_ms < 1 << 64:
            raise UsageError("invalid_argument", f"now_ms: expected non-negative int milliseconds, found {now_ms!r}")
        return now_ms, False

    def acquire(self, scope: str = "default", *, now_ms: Optional[int] = None) -> "_native.RetryToken":
        """Start a logical call in ``scope`` (a budget partition)."""
        if not isinstance(scope, str):
            raise UsageError("invalid_argument", f"scope: expected str, found {type(scope).__name__}")
        now, clamp = self._time(now_ms)
        return self._native.acquire(scope, now, clamp)

    def refresh_plan(
        self,
        token: "_native.RetryToken",
        *,
        code: Optional[str] = None,
        status: Optional[int] = None,
        retry_after_ms: Union[int, str, None] = None,
        unknown_outcome: bool = False,
        now_ms: Optional[int] = None,
    ) -> RetryPlan:
        """Like :meth:`refresh`, returning the whole plan (delay, cost, class)."""
        if not isinstance(token, RetryToken):
            raise UsageError("invalid_argument", f"token: expected a RetryToken, found {type(token).__name__}")
        if code is not None and not isinstance(code, str):
            raise UsageError("invalid_argument", f"code: expected str or None, found {type(code).__name__}")
        if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= 65535):
            raise UsageError("invalid_argument", f"status: expected an int in 0..=65535, found {status!r}")
        ms, text = retry_after_args(retry_after_ms, "retry_after_ms")
        now, clamp = self._time(now_ms)
        delay, cost, cls = self._native.refresh(
            token, now, clamp, code, status, ms, text, bool(unknown_outcome)
        )
        return RetryPlan(delay, cost, cls)

    def refresh(
        self,
        token: "_native.RetryToken",
        *,
        code: Optional[str] = None,
        status: Optional[int] = None,
        retry_after_ms: Union[int, str, None] = None,
        unknown_outcome: bool = False,
        now_ms: Optional[int] = None,
    ) -> int:
        """The call of ``token`` failed: the milliseconds to wait before calling again, or
        :class:`writelane.RetryRefused` with ``reason``. ``retry_after_ms`` is a hint in
        milliseconds or the ``x-amz-retry-after`` header text."""
        return self.refresh_plan(
            token,
            code=code,
            status=status,
            retry_after_ms=retry_after_ms,
            unknown_outcome=unknown_outcome,
            now_ms=now_ms,
        ).delay_ms

    def record_success(self, token: "_native.RetryToken") -> None:
        """The call of ``token`` succeeded: refund the last retry's cost, or add the
        first-try reward."""
        if not isinstance(token, RetryToken):
            raise UsageError("invalid_argument", f"token: expected a RetryToken, found {type(token).__name__}")
        self._native.record_success(token)

    def capacity(self, scope: str = "default") -> int:
        """Budget tokens left in ``scope``."""
        if not isinstance(scope, str):
            raise UsageError("invalid_argument", f"scope: expected str, found {type(scope).__name__}")
        return int(self._native.capacity(scope))

    def __repr__(self) -> str:
        return f"RetryStrategy(policy={self.policy.name!r})"


