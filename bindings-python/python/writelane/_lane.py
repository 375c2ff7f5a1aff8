"""`Lane`: the write discipline around a user's read and write functions.

:meth:`Lane.run` and :meth:`Lane.run_async` check their arguments, submit the write to the
native lane (which calls a plain ``write`` at once when the engine says so: an
uncontended write commits without a Python round trip) and hand anything more to the one
driver of :mod:`writelane._driver`. The engine decides everything.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple, TypeVar, Union, overload

from . import _held, _native
from ._clock import Clock
from ._driver import COMMITTED, Driver
from ._errors import UsageError
from ._failure import Classifier
from ._policy import Policy, PolicyLike, coerce_policy, coerce_seed
from .events import Event, from_dict
from .stores import LeaseStore

T = TypeVar("T")
#: the document type of an update
D = TypeVar("D")
_LOG = logging.getLogger("writelane")

#: One write attempt, passed to ``write``: ``number`` counts attempts from 1, ``base_token``
#: is the change token the write must be based on, ``entity`` the entity, ``fence`` the
#: lease epoch (shared lanes); ``set_token(token)`` reports the revision it produced.
Attempt = _native.Attempt


def default_owner(host: Optional[str] = None, pid: Optional[int] = None, entropy: Optional[int] = None) -> str:
    """This process's owner id in lease records, formatted by the core from the host name,
    the process id and 64 random bits (each drawn here unless given)."""
    return _native.owner_id(
        socket.gethostname() if host is None else host,
        os.getpid() if pid is None else pid,
        secrets.randbits(64) if entropy is None else entropy,
    )


def _check(name: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        raise UsageError("invalid_argument", f"{name}: expected {expected}, found {type(value).__name__}")


def _check_args(entity: Any, write: Any, read: Any, expected: Any, deadline_ms: Any, holder: Any) -> None:
    """Refuse bad arguments of ``run`` with a UsageError naming the argument."""
    _check("entity", entity, isinstance(entity, str), "str")
    _check("write", write, callable(write), "a callable")
    _check("read", read, read is None or callable(read), "a callable or None")
    _check("expected", expected, expected is None or isinstance(expected, str), "str or None")
    _check("holder", holder, holder is None or isinstance(holder, str), "str or None")
    if deadline_ms is not None:
        _check("deadline_ms", deadline_ms, type(deadline_ms) is int, "int or None")
        if not 0 <= deadline_ms < 1 << 64:
            raise UsageError("invalid_argument", f"deadline_ms: must be non-negative, found {deadline_ms}")


class Lane:
    """The write discipline for one process: per-entity lanes, re-reads before retries,
    jittered backoff and retry budgets, all decided by the core engine.

    ``policy`` is a preset name (``"iam"``, the default, or ``"aws-standard"``), a dict,
    JSON text or a :class:`writelane.Policy`; ``seed`` seeds the jitter (random when
    ``None``). ``classify`` maps exceptions that are not botocore's to a code, an
    :class:`writelane.ErrorClass` or a :class:`writelane.Failure` (``None``: fatal).
    With ``log=True`` every event is logged to the ``writelane`` logger as runs finish.
    With ``telemetry=True`` the lane reports to OpenTelemetry's global providers (metrics,
    a span per run, spike warnings: :func:`writelane.otel.instrument`, which also takes
    providers and the entity attribute; needs ``writelane[otel]``).
    ``clock`` runs the lane on an injected :class:`writelane.Clock` (virtual time in tests:
    :class:`writelane.ManualClock`) instead of its own monotonic clock.

    One ``Lane`` may be shared by any number of threads and asyncio tasks: writes to the
    same entity go one at a time, in submission order.

    Across processes and machines: pass ``store=`` a lease store from
    :mod:`writelane.stores` and the lanes are shared, whatever the policy's ``lanes.mode``
    (the core's rule for a store): each write first takes the entity's lease in the store.
    ``owner`` names this process in lease records (default: the core's
    ``host:pid:random``); ``holder`` says who holds it in words. The lease timings and the
    bound on every store operation (``lease.store_timeout_ms``) are the policy's.
    """

    def __init__(
        self,
        policy: PolicyLike = None,
        *,
        seed: Optional[int] = None,
        classify: Optional[Classifier] = None,
        log: bool = False,
        store: Optional[LeaseStore] = None,
        owner: Optional[str] = None,
        holder: Optional[str] = None,
        clock: Optional[Clock] = None,
        telemetry: bool = False,
    ) -> None:
        _check("classify", classify, classify is None or callable(classify), "a callable or None")
        _check("owner", owner, owner is None or isinstance(owner, str), "str or None")
        _check("holder", holder, holder is None or isinstance(holder, str), "str or None")
        for name in ("get", "put_if_absent", "compare_and_swap") if store is not None else ():
            _check("store", store, callable(getattr(store, name, None)), f"a lease store with {name}()")
        for name in ("now_ms", "sleep") if clock is not None else ():
            _check("clock", clock, callable(getattr(clock, name, None)), f"a clock with {name}()")
        if store is not None and owner is None:
            owner = default_owner()
        self._store, self._owner, self._holder, self._clock = store, owner if store is not None else None, holder, clock
        self._native = _native.NativeLane(coerce_policy(policy), coerce_seed(seed), self._owner, store is not None, clock)
        self._policy = Policy(self._native.policy())
        effective = self._policy.to_dict()
        if store is None and effective["lanes"]["mode"] == "shared":
            raise UsageError("invalid_argument", "store: lanes.mode = shared needs a lease store (store=...)")
        self._store_timeout_ms: int = effective["lease"]["store_timeout_ms"]
        if callable(getattr(store, "use_timeout_ms", None)):
            store.use_timeout_ms(self._store_timeout_ms)  # type: ignore[union-attr]
        self._log = bool(log)
        self._driver = Driver(self._native, store, clock, self._store_timeout_ms, effective["codes"], classify,
                              self._dispatch_events if self._log else None)
        #: the OpenTelemetry instrumentation (writelane.otel), or None
        self._telemetry: Any = None
        self._events_lock = threading.Lock()
        if telemetry:
            try:
                from . import otel
            except ImportError as exc:
                raise UsageError("invalid_argument", f"telemetry: needs opentelemetry-api (pip install 'writelane[otel]'): {exc}") from None
            otel.instrument(self)

    @property
    def policy(self) -> Policy:
        """The policy in force (with a store: the core's shared-lanes form of it)."""
        return self._policy

    @property
    def owner(self) -> Optional[str]:
        """The owner this lane writes into lease records (``None`` without a store)."""
        return self._owner

    @property
    def store(self) -> Optional[LeaseStore]:
        """The lease store of shared lanes, or ``None``."""
        return self._store

    def now_ms(self) -> int:
        """Milliseconds on the lane's clock (the ``at`` of its events)."""
        return self._native.now_ms()

    def run(
        self,
        entity: str,
        write: Callable[[Attempt], T],
        *,
        read: Optional[Callable[[], Optional[str]]] = None,
        expected: Optional[str] = None,
        deadline_ms: Optional[int] = None,
        classify: Optional[Classifier] = None,
        holder: Optional[str] = None,
    ) -> T:
        """Run one logical write of ``entity`` under the discipline; return what ``write``
        returned.

        ``write(attempt)`` performs the mutation and may report the change token of the
        revision it produced with ``attempt.set_token(token)``. ``read()`` returns the
        entity's current change token (``None``: it does not exist); without it the engine
        never reads (and ``expected`` is refused: ``expected_needs_read``). ``expected``
        is the token the change was based on. ``holder`` overrides the lane's for this
        write. Raises :class:`GaveUp` or :class:`StaleRevision`; a :class:`UsageError`
        raised inside ``write``, ``KeyboardInterrupt`` and other ``BaseException``
        propagate after the op is cancelled (and a held lease released).
        """
        if type(entity) is not str or not callable(write) or read is not None or expected is not None or deadline_ms is not None or holder is not None:  # noqa: E501
            _check_args(entity, write, read, expected, deadline_ms, holder)
        if _held.active:
            write = _held.marking(self, entity, write)
        # The first write, if it comes at once, is called during submit.
        try:
            op, kind, number, text, timer, woken, result = self._native.submit(
                entity, expected, deadline_ms, read is not None, write, self._holder if holder is None else holder)
        except UnicodeEncodeError:
            raise UsageError("invalid_argument", "entity, expected: not encodable as UTF-8") from None
        if self._telemetry is not None:
            self._telemetry.bind(op)
        if kind == COMMITTED:  # the fast path: committed at the first try
            if woken:
                self._driver.wake(woken)
            if self._log:
                self._dispatch_events()
            return result  # type: ignore[no-any-return]
        step = (kind, number, text, timer, woken)
        return self._driver.run(op, entity, step, read, write, classify, result)  # type: ignore[no-any-return]

    @overload
    async def run_async(self, entity: str, write: Callable[[Attempt], Awaitable[T]], *, read: Optional[Callable[[], Union[Awaitable[Optional[str]], Optional[str]]]] = None, expected: Optional[str] = None, deadline_ms: Optional[int] = None, classify: Optional[Classifier] = None, holder: Optional[str] = None) -> T: ...  # noqa: E501

    @overload
    async def run_async(self, entity: str, write: Callable[[Attempt], T], *, read: Optional[Callable[[], Union[Awaitable[Optional[str]], Optional[str]]]] = None, expected: Optional[str] = None, deadline_ms: Optional[int] = None, classify: Optional[Classifier] = None, holder: Optional[str] = None) -> T: ...  # noqa: E501

    async def run_async(self, entity: str, write: Callable[[Attempt], Any], *, read: Any = None, expected: Optional[str] = None, deadline_ms: Optional[int] = None, classify: Optional[Classifier] = None, holder: Optional[str] = None) -> Any:  # noqa: E501
        """The asyncio form of :meth:`run`: ``write`` and ``read`` may be coroutine
        functions; waits never block the event loop, and store operations run on worker
        threads. Cancelling the task cancels the op (releasing a held lease before
        ``CancelledError`` propagates)."""
        _check_args(entity, write, read, expected, deadline_ms, holder)
        _check("clock", self._clock, self._clock is None or callable(getattr(self._clock, "sleep_async", None)), "a clock with sleep_async() for run_async")
        if _held.active and callable(write):
            write = _held.marking_async(self, entity, write)
        try:
            op, *step, result = self._native.submit(
                entity, expected, deadline_ms, read is not None, None, self._holder if holder is None else holder)
        except UnicodeEncodeError:
            raise UsageError("invalid_argument", "entity, expected: not encodable as UTF-8") from None
        if self._telemetry is not None:
            self._telemetry.bind(op)
        return await self._driver.run_async(op, entity, step, read, write, classify, result)

    # -- updates (group commit) -------------------------------------------------------------

    def _submit_update(self, entity: Any, read: Any, change: Any, write: Any, deadline_ms: Any, holder: Any) -> Any:
        _check_args(entity, write, read, None, deadline_ms, holder)
        _check("read", read, callable(read), "a callable")
        _check("change", change, callable(change), "a callable")
        with self._driver.submitting:
            try:
                op, step = self._native.submit_update(entity, deadline_ms, self._holder if holder is None else holder)
            except UnicodeEncodeError:
                raise UsageError("invalid_argument", "entity: not encodable as UTF-8") from None
            self._driver.changes[op] = change
        if self._telemetry is not None:
            self._telemetry.bind(op)
        return op, step

    def update(
        self,
        entity: str,
        *,
        read: Callable[[], Tuple[D, Optional[str]]],
        change: Callable[[D], D],
        write: Callable[[D, Attempt], Any],
        deadline_ms: Optional[int] = None,
        classify: Optional[Classifier] = None,
        holder: Optional[str] = None,
    ) -> Optional[str]:
        """Apply ``change`` to ``entity``'s document under the discipline, with group
        commit: updates of one entity queued behind the one that holds its lane ride in
        that one's write. Returns the change token of the write that committed the change
        (``None`` if ``write`` reported none).

        ``read()`` returns ``(document, token)``: the entity's current document and its
        change token. ``change(document)`` returns the new document; it must not modify
        its argument and must be a pure function of it, because it is called by whichever
        update leads the batch (on that update's thread or task), and may be called more
        than once, on fresher documents (after a conflict, or when a write refused as
        fatal is split in halves to find the change that breaks it). ``write(document,
        attempt)`` writes the final document and reports its new change token with
        ``attempt.set_token(token)`` or by returning it as a ``str`` (any other return
        value is ignored); ``attempt`` is :meth:`run`'s (number, base token, fence). The
        leader of a batch calls its own ``read`` and ``write`` once for the whole batch;
        every update of the batch returns that write's token, or raises its
        :class:`GaveUp`. A ``change`` that raises excludes its own update from the write:
        that update raises :class:`GaveUp` (``reason`` ``fatal``, ``code`` the exception's
        type name) from the exception, and the others go on. The queue's order and every
        other rule are :meth:`run`'s; ``batch.max_changes`` and ``batch.linger_ms`` in the
        policy bound a batch.
        """
        op, step = self._submit_update(entity, read, change, write, deadline_ms, holder)
        if _held.active:
            write = _held.marking(self, entity, write)
        return self._driver.run(op, entity, step, read, write, classify, None, True)  # type: ignore[no-any-return]

    async def update_async(
        self,
        entity: str,
        *,
        read: Callable[[], Union[Awaitable[Tuple[D, Optional[str]]], Tuple[D, Optional[str]]]],
        change: Callable[[D], D],
        write: Callable[[D, Attempt], Any],
        deadline_ms: Optional[int] = None,
        classify: Optional[Classifier] = None,
        holder: Optional[str] = None,
    ) -> Optional[str]:
        """The asyncio form of :meth:`update`: ``read`` and ``write`` may be coroutine
        functions (``change`` stays a plain function); waits never block the event loop.
        Cancelling the task cancels the update."""
        _check("clock", self._clock, self._clock is None or callable(getattr(self._clock, "sleep_async", None)), "a clock with sleep_async() for update_async")
        op, step = self._submit_update(entity, read, change, write, deadline_ms, holder)
        if _held.active:
            write = _held.marking_async(self, entity, write)
        return await self._driver.run_async(op, entity, step, read, write, classify, None, True)  # type: ignore[no-any-return]

    # -- telemetry --------------------------------------------------------------------------

    def stats(self) -> Dict[str, Any]:
        """Counters and budget levels now: ``{"global": {...}, "budget": N, "active_ops": N,
        "dropped_events": N, "entities": {name: {...}}}``."""
        return json.loads(self._native.stats())  # type: ignore[no-any-return]

    def events(self) -> List[Event]:
        """Drain the telemetry events recorded since the last call, oldest first."""
        return [from_dict(e) for e in json.loads(self._native.drain_events())]

    def _dispatch_events(self) -> None:
        """Drain the events once, in order, into the telemetry and the log."""
        with self._events_lock:
            events = self.events()
            telemetry = self._telemetry
            if telemetry is not None:
                telemetry.handle(events, self._native.now_ms())
            if self._log:
                self._log_events(events, telemetry is not None)

    def _log_events(self, events: List[Event], spikes_logged: bool) -> None:
        for event in events:
            if spikes_logged and event.type in ("spike_started", "spike_ended"):
                continue  # the telemetry logged them at WARNING
            level = logging.DEBUG
            if event.type in ("gave_up", "budget_refused", "spike_started"):
                level = logging.WARNING
            elif event.type in ("conflict", "retry_scheduled", "stale_revision"):
                level = logging.INFO
            if _LOG.isEnabledFor(level):
                _LOG.log(level, "%s %s", event.type, json.dumps(event.to_dict(), sort_keys=True))

    def export_state(self) -> Dict[str, Any]:
        """What the lane learned (committed tokens, budget levels), to persist."""
        return json.loads(self._native.export_state())  # type: ignore[no-any-return]

    def import_state(self, state: Dict[str, Any]) -> None:
        """Restore what :meth:`export_state` returned."""
        self._native.import_state(json.dumps(state))

    def __repr__(self) -> str:
        return f"Lane(policy={self._policy.name!r})"
