"""botocore integration: writelane's retry decisions inside an existing boto3 client.

``install(client)`` replaces the client's retry handler (botocore's ``needs-retry`` event
handler, legacy or standard mode) with one that asks a :class:`writelane.RetryStrategy`:
``ConcurrentModification`` and the other conflict codes are retried with writelane's
backoff, throttling and transient errors too, and every retry draws on writelane's budget.
Call sites do not change; botocore sleeps the delay writelane decides and resends.

``install(client, lane=lane)`` also serialises the client's writes: every write operation
runs in the lane of the entity it touches (``writelane_core::iam``'s table, the one
``writelane trail`` uses), both lanes in canonical key order for an operation that touches
two (``AddUserToGroup``). Reads pass straight through. Conflicts are retried inside the
lane (``Lane.run``: writelane's backoff and budget, the lane held between attempts), so
botocore's own retry loop makes one attempt for those calls. A write whose entity cannot
be determined (an operation newer than the table, a parameter missing) goes through
unserialised and is counted in ``Installed.unserialised``, never refused. Clients of a
service with no table (``s3``) keep only the retry handler: no lane is taken for them.

It attaches by wrapping the client's ``_make_api_call`` (on the instance), not on the
``before-call`` event: an event handler returns before the request is sent, so it cannot
hold a lane across the call and every retry and release it when the call ends, fails or
is interrupted; botocore emits no event on every exit path in every version
(``after-call-error`` is recent). ``_make_api_call(operation_name, api_params)`` is the
one method every generated operation method calls, with that signature since botocore
1.0, so a wrapper on it sees each call exactly once, whole.

This module imports botocore only when ``install`` is called.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from . import _held, _native
from ._errors import EntityError, GaveUp, RetryRefused, UsageError
from ._failure import botocore_fields
from ._policy import PolicyLike
from ._strategy import RetryStrategy

if TYPE_CHECKING:
    from ._lane import Lane

_TOKEN_KEY = "writelane_retry_token"

# Set while a call runs inside a lane: its retries are the lane's, not botocore's.
_in_lane = threading.local()


class Installed:
    """The handle ``install`` returns: the strategy in use and a way to undo it."""

    def __init__(self, client: Any, strategy: RetryStrategy, scope: str, service: str) -> None:
        self.client = client
        #: the lane writes run in (``install(lane=...)``), or ``None``
        self.lane: Optional["Lane"] = None
        #: the account and partition entity keys are made with (``None``: keys without an
        #: account, ``role/name``)
        self.account: Optional[str] = None
        self.partition: Optional[str] = None
        #: write calls that ran in their lanes
        self.serialised = 0
        #: calls that went through unserialised because their entity could not be
        #: determined, by operation name (an operation the table does not know, or a
        #: parameter missing or malformed)
        self.unserialised: Dict[str, int] = {}
        #: why the last unserialised call could not be keyed (an EntityError, or
        #: ``unknown operation``)
        self.last_unserialised: Optional[str] = None
        self._original: Optional[Callable[[str, Dict[str, Any]], Any]] = None
        self._deadline_ms: Optional[int] = None
        self._count_lock = threading.Lock()
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
        if context is not None and not getattr(_in_lane, "active", False):
            context[_TOKEN_KEY] = self.strategy.acquire(self.scope)

    def _needs_retry(
        self,
        response: Optional[Tuple[Any, Dict[str, Any]]] = None,
        caught_exception: Optional[BaseException] = None,
        request_dict: Optional[Dict[str, Any]] = None,
        **_: Any,
    ) -> Optional[float]:
        if getattr(_in_lane, "active", False):
            return None  # the lane retries this call
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

    # -- lanes -----------------------------------------------------------------------------

    def keys(self, operation_name: str, api_params: Dict[str, Any]) -> Tuple[str, List[str]]:
        """Which lanes a call takes: ``("write", keys)`` (sorted: the order they are taken
        in), ``("read", [])`` or ``("unknown", [])``. Raises :class:`writelane.EntityError`
        naming the parameter when a write's entity cannot be determined."""
        params = api_params if isinstance(api_params, dict) else "null"
        return _native.entity_keys(self._service, operation_name, params, self.account, self.partition, None)

    def _count_unserialised(self, operation_name: str, why: str) -> None:
        with self._count_lock:
            self.unserialised[operation_name] = self.unserialised.get(operation_name, 0) + 1
            self.last_unserialised = why

    def _call(self, operation_name: str, api_params: Dict[str, Any]) -> Any:
        original, lane = self._original, self.lane
        assert original is not None and lane is not None
        try:
            access, keys = self.keys(operation_name, api_params)
        except (EntityError, UsageError) as exc:
            self._count_unserialised(operation_name, str(exc))
            return original(operation_name, api_params)
        if access != "write" or not keys:
            if access == "unknown":
                self._count_unserialised(operation_name, "unknown operation")
            return original(operation_name, api_params)
        with self._count_lock:
            self.serialised += 1
        # Lanes the caller already holds (a Lane.run or update write calling this client on
        # its own entity) are not waited for again; the caller's lane retries such a call.
        free = [k for k in keys if not _held.holds(lane, k)]
        if not free:
            return self._attempt(lambda: original(operation_name, api_params))
        return self._in_lanes(lane, free, lambda: original(operation_name, api_params))

    @staticmethod
    def _attempt(call: Callable[[], Any]) -> Any:
        """One attempt of a call whose retries are a lane's."""
        outer = getattr(_in_lane, "active", False)
        _in_lane.active = True
        try:
            return call()
        finally:
            _in_lane.active = outer

    def _in_lanes(self, lane: "Lane", keys: List[str], call: Callable[[], Any]) -> Any:
        try:
            return self._nest(lane, keys, call)
        except GaveUp as gave_up:
            # The caller sees the SDK's own error, as without the lane.
            inner = gave_up
            while isinstance(inner.last_error, GaveUp):
                inner = inner.last_error
            if inner.last_error is not None:
                raise inner.last_error from gave_up
            raise inner from None

    def _nest(self, lane: "Lane", keys: List[str], call: Callable[[], Any]) -> Any:
        """The call in the lane of ``keys[0]``, inside it the lane of ``keys[1]``, ...:
        lanes taken in canonical order, the call (and its retries) in the innermost."""

        def write(_attempt: Any) -> Any:
            if len(keys) > 1:
                return self._nest(lane, keys[1:], call)
            return self._attempt(call)

        return lane.run(keys[0], write, deadline_ms=self._deadline_ms)

    def uninstall(self) -> None:
        """Remove writelane's handlers and the lane wrapper. botocore's own retry handler
        is not restored; make a new client to get it back."""
        if self._original is not None:
            try:
                del self.client._make_api_call
            except AttributeError:
                pass
            self._original = None
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
    lane: Optional["Lane"] = None,
    account: Optional[str] = None,
    partition: Optional[str] = None,
    deadline_ms: Optional[int] = None,
) -> Installed:
    """Make ``client`` (a boto3/botocore client) retry under writelane's policy and budget.

    ``policy`` builds a new :class:`writelane.RetryStrategy` (default preset ``iam``);
    pass ``strategy`` instead to share one budget between clients. ``scope`` is the budget
    partition (default: the service name, e.g. ``iam``). Returns an :class:`Installed`.

    With ``lane``, every write operation of a service with an entity table (IAM) runs in
    its entity's lane of that :class:`writelane.Lane` (and so across processes when the
    lane has a store), retried inside it. ``account`` (and ``partition``, default ``aws``)
    make the keys ARNs; without it they are ``role/name``, which is right as long as the
    lane's store is not shared between accounts. ``deadline_ms`` bounds each write's time
    in its lane. A write that gives up raises the SDK's last error (its ``__cause__`` the
    :class:`writelane.GaveUp`), or the ``GaveUp`` when no attempt was made.
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
    if lane is not None:
        from ._lane import Lane

        if not isinstance(lane, Lane):
            raise UsageError("invalid_argument", f"lane: expected a writelane.Lane, found {type(lane).__name__}")
    for name, value in (("account", account), ("partition", partition)):
        if value is not None and not isinstance(value, str):
            raise UsageError("invalid_argument", f"{name}: expected str, found {type(value).__name__}")
    if deadline_ms is not None and (type(deadline_ms) is not int or deadline_ms < 0):
        raise UsageError("invalid_argument", f"deadline_ms: expected a non-negative int, found {deadline_ms!r}")
    handle = Installed(client, strategy, scope, service)
    if lane is not None and service in _native.entity_services():
        if not callable(getattr(client, "_make_api_call", None)):
            raise UsageError("invalid_argument", "client: has no _make_api_call to wrap")
        current = vars(client).get("_make_api_call")
        if isinstance(getattr(current, "__self__", None), Installed):
            # A second wrapper would take each lane twice, the inner waiting on the outer.
            raise UsageError("invalid_argument", "client: already runs in a lane (call uninstall() on its Installed first)")
        handle.lane, handle.account, handle.partition, handle._deadline_ms = lane, account, partition, deadline_ms
        _held.active = True  # from now on lanes mark what their writes hold
        handle._original = client._make_api_call
        client._make_api_call = handle._call
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
