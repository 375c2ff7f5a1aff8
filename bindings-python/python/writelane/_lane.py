"""`Lane`: the write discipline around a user's read and write functions.

Each call of :meth:`Lane.run` drives one operation of the shared engine from the calling
thread (or task, for :meth:`Lane.run_async`): take the op's command, carry it out, feed
back what happened, and when the op has no command, wait until its timer or until another
thread's progress hands it one. Sleeping happens only here and only where the engine
says; the engine decides everything else.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import secrets
import socket
import threading
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    List,
    Optional,
    Tuple,
    TypeVar,
    Union,
    overload,
)

from . import _native
from ._errors import GaveUp, StaleRevision, UsageError
from ._failure import Classifier, fields_of
from ._policy import Policy, PolicyLike, coerce_policy, coerce_seed
from .stores import LeaseStore, apply
from .events import Event, from_dict

T = TypeVar("T")

_LOG = logging.getLogger("writelane")

#: native command kinds (-1: the op has no command now)
_NONE, _READ, _WRITE, _COMMITTED, _GAVE_UP, _RAISED, _STORE = -1, 0, 1, 2, 3, 4, 5

#: (kind, number, text, timer, woken) as the native lane returns it
_Step = Tuple[int, int, Optional[str], Optional[int], Optional[List[int]]]


#: One write attempt, passed to the ``write`` function: ``number`` counts attempts from 1,
#: ``base_token`` is the change token the write must be based on (what the last read
#: found, or ``None``), ``entity`` is the entity's name, ``fence`` the lease epoch (shared
#: lanes). ``set_token(token)`` reports the token of the revision the write produced.
Attempt = _native.Attempt


def default_owner() -> str:
    """A lease owner unique to this process: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _check_holder(holder: Any) -> None:
    if holder is not None and not isinstance(holder, str):
        raise UsageError("invalid_argument", f"holder: expected str or None, found {type(holder).__name__}")


def _shared_policy(policy_json: str, store: Any) -> str:
    """The policy to run: with a store, lanes are shared (the policy's other settings
    stand); without one, shared lanes are refused."""
    effective: Dict[str, Any] = json.loads(_native.policy_json(policy_json))
    mode = effective.get("lanes", {}).get("mode")
    if store is None:
        if mode == "shared":
            raise UsageError("invalid_argument", "store: lanes.mode = shared needs a lease store (store=...)")
        return policy_json
    for name in ("get", "put_if_absent", "compare_and_swap"):
        if not callable(getattr(store, name, None)):
            raise UsageError("invalid_argument", f"store: expected a lease store, {type(store).__name__} has no {name}()")
    if mode == "none":
        raise UsageError("invalid_argument", "store: lanes.mode = none serialises nothing; a lease store needs shared lanes")
    effective["lanes"]["mode"] = "shared"
    return json.dumps(effective)


def _check_args(
    entity: Any, write: Any, read: Any, expected: Any, deadline_ms: Any
) -> None:
    """Refuse bad arguments of ``run`` with a UsageError naming the argument."""
    if not isinstance(entity, str):
        raise UsageError("invalid_argument", f"entity: expected str, found {type(entity).__name__}")
    if not callable(write):
        raise UsageError("invalid_argument", f"write: expected a callable, found {type(write).__name__}")
    if read is not None and not callable(read):
        raise UsageError("invalid_argument", f"read: expected a callable or None, found {type(read).__name__}")
    if expected is not None:
        if not isinstance(expected, str):
            raise UsageError("invalid_argument", f"expected: expected str or None, found {type(expected).__name__}")
        if read is None:
            raise UsageError("invalid_argument", "expected: checking a revision needs a read function")
    if deadline_ms is not None:
        if isinstance(deadline_ms, bool) or not isinstance(deadline_ms, int):
            raise UsageError("invalid_argument", f"deadline_ms: expected int or None, found {type(deadline_ms).__name__}")
        if deadline_ms < 0 or deadline_ms >= 1 << 64:
            raise UsageError("invalid_argument", f"deadline_ms: must be non-negative, found {deadline_ms}")


def _token_of(value: Any) -> Optional[str]:
    """Check what a read function returned: a change token or None."""
    if value is None:
        return value
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError("invalid_argument", "read: returned a token that is not valid UTF-8") from None
        return value
    raise UsageError("invalid_argument", f"read: must return a change token (str) or None, returned {type(value).__name__}")


class Lane:
    """The write discipline for one process: per-entity lanes, re-reads before retries,
    jittered backoff and retry budgets, all decided by the core engine.

    ``policy`` is a preset name (``"iam"``, the default, or ``"aws-standard"``), a dict,
    JSON text or a :class:`writelane.Policy`; ``seed`` seeds the jitter (random when
    ``None``). ``classify`` maps exceptions that are not botocore's to a code, an
    :class:`writelane.ErrorClass` or a :class:`writelane.Failure` (``None``: fatal).
    With ``log=True`` every event is logged to the ``writelane`` logger as runs finish
    (and :meth:`events` then returns only what was not logged yet).

    One ``Lane`` may be shared by any number of threads and asyncio tasks: writes to the
    same entity go one at a time, in submission order.

    Across processes and machines: pass ``store=`` a lease store from
    :mod:`writelane.stores` (DynamoDB, Redis, a file, memory) and lanes become shared: each
    write first takes the entity's lease in the store (a fenced lease, renewed while the
    write runs, released with the committed change token). ``owner`` names this process
    in lease records (default ``host:pid:random``; unique per process); ``holder`` says
    who holds it in words (pipeline, run id, ...) for people debugging a stuck lease.
    The lease timings are the policy's ``lease`` fields.
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
    ) -> None:
        if classify is not None and not callable(classify):
            raise UsageError("invalid_argument", "classify: expected a callable or None")
        if owner is not None and not isinstance(owner, str):
            raise UsageError("invalid_argument", f"owner: expected str or None, found {type(owner).__name__}")
        _check_holder(holder)
        policy_json = _shared_policy(coerce_policy(policy), store)
        if store is not None and owner is None:
            owner = default_owner()
        self._store = store
        self._owner = owner if store is not None else None
        self._holder = holder
        self._native = _native.NativeLane(policy_json, coerce_seed(seed), self._owner)
        self._waiters: Dict[int, Callable[[], None]] = {}
        self._policy = Policy(self._native.policy())
        self._codes: Dict[str, List[Any]] = self._policy.to_dict()["codes"]
        self._classify = classify
        self._log = bool(log)

    @property
    def policy(self) -> Policy:
        """The policy in force."""
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
        """Milliseconds on the lane's monotonic clock (the ``at`` of its events)."""
        return self._native.now_ms()

    # -- the synchronous driver ---------------------------------------------------------

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
        revision it produced with ``attempt.set_token(token)``: the next writer of the
        entity then writes on it without reading (with a lease store, on any machine: the
        token is stored in the lease record). ``read()`` returns the entity's current
        change token (``None``: it does not exist) and is called before a write whose base
        the lane does not know and before every retry; ``expected`` is the token the change
        was based on (needs ``read``). With a lease store, ``holder`` overrides the lane's
        holder for this write. Raises :class:`GaveUp` (with shared lanes also for
        ``lease_lost`` and ``lock_unavailable``) or :class:`StaleRevision`; a
        :class:`UsageError` raised inside ``write`` (such as ``set_token`` with a token that
        is not a ``str``), ``KeyboardInterrupt`` and other ``BaseException`` propagate after
        the entity's lane is released.
        """
        if (
            type(entity) is not str
            or read is not None
            or expected is not None
            or deadline_ms is not None
            or not callable(write)
        ):
            _check_args(entity, write, read, expected, deadline_ms)
        if holder is None:
            holder = self._holder
        else:
            _check_holder(holder)
        native = self._native
        last_exc: Optional[BaseException] = None
        try:
            # The first write, if it comes at once, is called during submit.
            op, kind, number, text, timer, woken, result = native.submit(
                entity, expected, deadline_ms, read is not None, write, holder
            )
        except UnicodeEncodeError:
            raise UsageError("invalid_argument", "entity, expected: not encodable as UTF-8") from None
        finished = False
        try:
            while True:
                if woken:
                    self._wake(woken)
                if kind == _STORE:
                    assert text is not None and self._store is not None
                    reply = apply(self._store, json.loads(text))
                    kind, number, text, timer, woken = native.store_reply(op, json.dumps(reply))
                elif kind == _WRITE:
                    attempt = Attempt(number, text, entity, timer)
                    try:
                        result = write(attempt)
                    except UsageError:
                        raise  # misuse (set_token with a bad token) is not a failed write
                    except Exception as exc:  # noqa: BLE001 - classified below
                        last_exc = exc
                        f = fields_of(exc, classify or self._classify, self._codes)
                        kind, number, text, timer, woken = native.failed(op, True, *f)
                    else:
                        kind, number, text, timer, woken = native.write_done(op, attempt.token)
                elif kind == _COMMITTED:
                    finished = True
                    if self._log:
                        self._log_events()
                    return result  # type: ignore[no-any-return]
                elif kind == _NONE:
                    kind, number, text, timer, woken = self._wait(op, timer)
                elif kind == _RAISED:
                    # The write called during submit raised ``result``.
                    raised, result = result, None
                    if not isinstance(raised, Exception) or isinstance(raised, UsageError):
                        raise raised
                    last_exc = raised
                    f = fields_of(raised, classify or self._classify, self._codes)
                    kind, number, text, timer, woken = native.failed(op, True, *f)
                elif kind == _READ:
                    assert read is not None  # reads without a function are answered natively
                    try:
                        token = read()
                    except Exception as exc:  # noqa: BLE001 - classified below
                        last_exc = exc
                        f = fields_of(exc, classify or self._classify, self._codes)
                        kind, number, text, timer, woken = native.failed(op, False, *f)
                    else:
                        kind, number, text, timer, woken = native.read_done(op, _token_of(token))
                else:
                    finished = True
                    if self._log:
                        self._log_events()
                    raise self._gave_up(number, text, last_exc, entity) from last_exc
        except BaseException:
            if not finished:
                self._abandon(op)
            raise

    def _wait(self, op: int, timer: Optional[int]) -> _Step:
        """Block until ``op`` has a command: its timer fired or another thread woke it."""
        native = self._native
        event = threading.Event()
        self._waiters[op] = event.set
        try:
            # Re-check after registering: a wake-up may have come before it.
            step = native.poll(op)
            while step[0] == _NONE:
                timer = step[3]
                if step[4]:
                    self._wake(step[4])
                if timer is None:
                    event.wait()
                else:
                    remaining = native.remaining_ns(timer)
                    if remaining > 0:
                        event.wait(remaining / 1e9)
                event.clear()
                if timer is not None and native.remaining_ns(timer) == 0:
                    step = native.timeout(op)
                else:
                    step = native.poll(op)
            return step
        finally:
            self._waiters.pop(op, None)

    # -- the asyncio driver -------------------------------------------------------------

    @overload
    async def run_async(
        self,
        entity: str,
        write: Callable[[Attempt], Awaitable[T]],
        *,
        read: Optional[Callable[[], Union[Awaitable[Optional[str]], Optional[str]]]] = None,
        expected: Optional[str] = None,
        deadline_ms: Optional[int] = None,
        classify: Optional[Classifier] = None,
        holder: Optional[str] = None,
    ) -> T: ...

    @overload
    async def run_async(
        self,
        entity: str,
        write: Callable[[Attempt], T],
        *,
        read: Optional[Callable[[], Union[Awaitable[Optional[str]], Optional[str]]]] = None,
        expected: Optional[str] = None,
        deadline_ms: Optional[int] = None,
        classify: Optional[Classifier] = None,
        holder: Optional[str] = None,
    ) -> T: ...

    async def run_async(
        self,
        entity: str,
        write: Callable[[Attempt], Any],
        *,
        read: Optional[Callable[[], Union[Awaitable[Optional[str]], Optional[str]]]] = None,
        expected: Optional[str] = None,
        deadline_ms: Optional[int] = None,
        classify: Optional[Classifier] = None,
        holder: Optional[str] = None,
    ) -> Any:
        """The asyncio form of :meth:`run`: ``write`` and ``read`` may be coroutine
        functions; waits never block the event loop (lease store operations run in the
        loop's default executor). Cancelling the task releases the entity's lane and
        propagates ``CancelledError``."""
        _check_args(entity, write, read, expected, deadline_ms)
        if holder is None:
            holder = self._holder
        else:
            _check_holder(holder)
        native = self._native
        result: Any = None
        last_exc: Optional[BaseException] = None
        try:
            op, kind, number, text, timer, woken, _ = native.submit(
                entity, expected, deadline_ms, read is not None, None, holder
            )
        except UnicodeEncodeError:
            raise UsageError("invalid_argument", "entity, expected: not encodable as UTF-8") from None
        finished = False
        try:
            while True:
                if woken:
                    self._wake(woken)
                if kind == _STORE:
                    assert text is not None and self._store is not None
                    loop = asyncio.get_running_loop()
                    reply = await loop.run_in_executor(None, apply, self._store, json.loads(text))
                    kind, number, text, timer, woken = native.store_reply(op, json.dumps(reply))
                elif kind == _WRITE:
                    attempt = Attempt(number, text, entity, timer)
                    try:
                        value = write(attempt)
                        if inspect.isawaitable(value):
                            value = await value
                        result = value
                    except UsageError:
                        raise  # misuse (set_token with a bad token) is not a failed write
                    except Exception as exc:  # noqa: BLE001 - classified below
                        last_exc = exc
                        f = fields_of(exc, classify or self._classify, self._codes)
                        kind, number, text, timer, woken = native.failed(op, True, *f)
                    else:
                        kind, number, text, timer, woken = native.write_done(op, attempt.token)
                elif kind == _COMMITTED:
                    finished = True
                    if self._log:
                        self._log_events()
                    return result
                elif kind == _NONE:
                    kind, number, text, timer, woken = await self._wait_async(op, timer)
                elif kind == _READ:
                    assert read is not None  # reads without a function are answered natively
                    try:
                        token = read()
                        if inspect.isawaitable(token):
                            token = await token
                    except Exception as exc:  # noqa: BLE001 - classified below
                        last_exc = exc
                        f = fields_of(exc, classify or self._classify, self._codes)
                        kind, number, text, timer, woken = native.failed(op, False, *f)
                    else:
                        kind, number, text, timer, woken = native.read_done(op, _token_of(token))
                else:
                    finished = True
                    if self._log:
                        self._log_events()
                    raise self._gave_up(number, text, last_exc, entity) from last_exc
        except BaseException:
            if not finished:
                self._abandon(op)
            raise

    async def _wait_async(self, op: int, timer: Optional[int]) -> _Step:
        """Await until ``op`` has a command, without blocking the loop."""
        native = self._native
        loop = asyncio.get_running_loop()
        box: List["asyncio.Future[None]"] = [loop.create_future()]

        def resolve() -> None:
            if not box[0].done():
                box[0].set_result(None)

        def wake() -> None:
            try:
                loop.call_soon_threadsafe(resolve)
            except RuntimeError:
                pass  # the loop is closed: nobody waits any more

        self._waiters[op] = wake
        try:
            step = native.poll(op)
            while step[0] == _NONE:
                timer = step[3]
                if step[4]:
                    self._wake(step[4])
                handle = None
                if timer is not None:
                    remaining = native.remaining_ns(timer)
                    if remaining > 0:
                        handle = loop.call_later(remaining / 1e9, resolve)
                    else:
                        resolve()
                try:
                    await box[0]
                finally:
                    if handle is not None:
                        handle.cancel()
                box[0] = loop.create_future()
                if timer is not None and native.remaining_ns(timer) == 0:
                    step = native.timeout(op)
                else:
                    step = native.poll(op)
            return step
        finally:
            self._waiters.pop(op, None)

    # -- shared helpers -------------------------------------------------------------------

    def _wake(self, ops: List[int]) -> None:
        waiters = self._waiters
        for other in ops:
            wake = waiters.get(other)
            if wake is not None:
                wake()

    def _abandon(self, op: int) -> None:
        """Cancel ``op`` (an exception is leaving its driver) so its lane passes on."""
        native = self._native
        try:
            step = native.cancel(op)
        except UsageError:
            step = None  # already finishing, or finished
        if self._store is not None and step is not None and step[0] in (_STORE, _NONE):
            # Cancelling a holder releases its lease first: finish that in the background
            # so that the lease and the local lane pass on.
            threading.Thread(target=self._finish_abandoned, args=(op, step), daemon=True).start()
            return
        native.forget(op)
        # The interrupted step may have lost its list of ops to wake: wake every waiter
        # (a spurious wake-up only makes a waiter look at its mailbox again).
        for wake in list(self._waiters.values()):
            wake()

    def _finish_abandoned(self, op: int, step: _Step) -> None:
        """Drive a cancelled op's remaining store commands (the lease release) to its
        finish."""
        native = self._native
        try:
            while step[0] in (_STORE, _NONE):
                if step[4]:
                    self._wake(step[4])
                if step[0] == _STORE:
                    assert step[2] is not None and self._store is not None
                    reply = apply(self._store, json.loads(step[2]))
                    step = native.store_reply(op, json.dumps(reply))
                else:
                    step = self._wait(op, step[3])
            if step[4]:
                self._wake(step[4])
        except Exception:  # noqa: BLE001 - a background clean-up must not raise
            _LOG.warning("writelane: releasing the lease of a cancelled write failed", exc_info=True)
        finally:
            native.forget(op)
            for wake in list(self._waiters.values()):
                wake()

    def _gave_up(
        self, attempts: int, text: Optional[str], last_exc: Optional[BaseException], entity: str
    ) -> Exception:
        outcome: Dict[str, Any] = json.loads(text or "{}")
        reason = str(outcome.get("reason"))
        if reason == "stale_revision":
            return StaleRevision(outcome.get("expected"), outcome.get("found"), entity, attempts)
        return GaveUp(reason, attempts, last_exc, outcome, entity)

    # -- telemetry --------------------------------------------------------------------------

    def stats(self) -> Dict[str, Any]:
        """Counters and budget levels now: ``{"global": {...}, "budget": N, "active_ops": N,
        "dropped_events": N, "entities": {name: {...}}}``."""
        return json.loads(self._native.stats())  # type: ignore[no-any-return]

    def events(self) -> List[Event]:
        """Drain the telemetry events recorded since the last call, oldest first."""
        return [from_dict(e) for e in json.loads(self._native.drain_events())]

    def _log_events(self) -> None:
        for event in self.events():
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
