"""botocore integration: writelane's retry decisions inside an existing boto3 client.

``install(client)`` replaces the client's retry handler (botocore's ``needs-retry`` event
handler, legacy or standard mode) with one that asks a :class:`writelane.RetryStrategy`:
``ConcurrentModification`` and the other conflict codes are retried with writelane's
backoff, throttling and transient errors too, and every retry draws on writelane's budget.
Call sites do not change; botocore sleeps the delay writelane decides and resends.

This module imports botocore only when ``install`` is called.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from ._errors import RetryRefused, UsageError
from ._failure import botocore_fields
from ._policy import PolicyLike
from ._strategy import RetryStrategy

_TOKEN_KEY = "writelane_retry_token"


class Installed:
    """The handle ``install`` returns: the strategy in use and a way to undo it."""

    def __init__(self, client: Any, strategy: RetryStrategy, scope: str, service: str) -> None:
        self.client = client
        #: the strategy that decides this client's retries (share it between clients to
        #: share one budget)
        self.strategy = strategy
        #: the budget scope this client draws from
        self.scope = scope
        self._service = service
        #: retries writelane allowed so far
        self.retries = 0
        #: retries writelane refused so far, by reason
        self.refusals: Dict[str, int] = {}

    def _before_call(self, context: Optional[Dict[str, Any]] = None, **_: Any) -> None:
        if context is not None:
            context[_TOKEN_KEY] = self.strategy.acquire(self.scope)

    def _needs_retry(
        self,
        response: Optional[Tuple[Any, Dict[str, Any]]] = None,
        caught_exception: Optional[BaseException] = None,
        request_dict: Optional[Dict[str, Any]] = None,
        **_: Any,
    ) -> Optional[float]:
        context = (request_dict or {}).get("context")
        token = context.get(_TOKEN_KEY) if isinstance(context, dict) else None
        if token is None:
            token = self.strategy.acquire(self.scope)
            if isinstance(context, dict):
                context[_TOKEN_KEY] = token
        fields = _failure(response, caught_exception)
        if fields is None:
            self.strategy.record_success(token)
            return None
        code, status, _ms, hint, unknown = fields
        try:
            delay_ms = self.strategy.refresh(
                token, code=code, status=status, retry_after_ms=hint, unknown_outcome=unknown
            )
        except RetryRefused as refused:
            self.refusals[refused.reason] = self.refusals.get(refused.reason, 0) + 1
            return None
        self.retries += 1
        return delay_ms / 1000.0

    def uninstall(self) -> None:
        """Remove writelane's handlers. botocore's own retry handler is not restored; make
        a new client to get it back."""
        events = self.client.meta.events
        events.unregister(f"needs-retry.{self._service}", unique_id=f"writelane-retry-{self._service}")
        events.unregister(f"before-call.{self._service}", unique_id=f"writelane-acquire-{self._service}")


def _failure(
    response: Optional[Tuple[Any, Dict[str, Any]]], caught: Optional[BaseException]
) -> Optional[Tuple[Optional[str], Optional[int], Optional[int], Optional[str], bool]]:
    """The failure fields of one attempt, or ``None`` when it succeeded."""
    if caught is not None:
        fields = botocore_fields(caught)
        # Anything botocore raised that is not a known connection failure: unknown outcome
        # is the careful reading, since the request may have been sent.
        return fields if fields is not None else (None, None, None, None, True)
    if response is None:
        return None
    http, parsed = response
    status = getattr(http, "status_code", None)
    error = (parsed or {}).get("Error") or {}
    code = error.get("Code") if isinstance(error, dict) else None
    if (status is None or status < 300) and not code:
        return None
    headers = getattr(http, "headers", None) or {}
    hint = headers.get("x-amz-retry-after")
    return (
        code if isinstance(code, str) and code else None,
        status if isinstance(status, int) else None,
        None,
        hint if isinstance(hint, str) else None,
        False,
    )


def install(
    client: Any,
    policy: PolicyLike = None,
    *,
    strategy: Optional[RetryStrategy] = None,
    scope: Optional[str] = None,
) -> Installed:
    """Make ``client`` (a boto3/botocore client) retry under writelane's policy and budget.

    ``policy`` builds a new :class:`writelane.RetryStrategy` (default preset ``iam``);
    pass ``strategy`` instead to share one budget between clients. ``scope`` is the budget
    partition (default: the service name, e.g. ``iam``). Returns an :class:`Installed`.
    """
    meta = getattr(client, "meta", None)
    if meta is None or not hasattr(meta, "events") or not hasattr(meta, "service_model"):
        raise UsageError("invalid_argument", f"client: expected a botocore client, found {type(client).__name__}")
    if strategy is not None and policy is not None:
        raise UsageError("invalid_argument", "policy: give a policy or a strategy, not both")
    if strategy is None:
        strategy = RetryStrategy(policy)
    elif not isinstance(strategy, RetryStrategy):
        raise UsageError("invalid_argument", f"strategy: expected a RetryStrategy, found {type(strategy).__name__}")
    service = meta.service_model.service_id.hyphenize()
    if scope is None:
        scope = service
    elif not isinstance(scope, str):
        raise UsageError("invalid_argument", f"scope: expected str, found {type(scope).__name__}")
    handle = Installed(client, strategy, scope, service)
    events = meta.events
    # botocore registers its retry handler (legacy or standard mode) under this id.
    events.unregister(f"needs-retry.{service}", unique_id=f"retry-config-{service}")
    events.register_first(
        f"needs-retry.{service}", handle._needs_retry, unique_id=f"writelane-retry-{service}"
    )
    events.register_first(
        f"before-call.{service}", handle._before_call, unique_id=f"writelane-acquire-{service}"
    )
    return handle


__all__ = ["install", "Installed"]
