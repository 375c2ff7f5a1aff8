"""`Lane`: the write discipline around a user's read and write functions.

One driver, :meth:`Lane._drive`, carries out one operation of the shared engine: it takes
the op's command, asks its loop to carry it out, feeds back what happened, and when the op
has no command asks its loop to wait until the op's timer or until another writer's
progress hands it one. :meth:`Lane.run` and :meth:`Lane.run_async` are two loops stepping
that one driver; they differ only in how they call the user's functions, carry out store
operations and wait. The engine decides everything else.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import json
import logging
import os
import secrets
import socket
import threading
from typing import Any, Awaitable, Callable, Dict, Generator, List, Optional, Tuple, TypeVar, Union, overload

from . import _native
from ._clock import Clock
from ._errors import GaveUp, StaleRevision, UsageError
from ._failure import Classifier, fields_of
from ._policy import Policy, PolicyLike, coerce_policy, coerce_seed
from .events import Event, from_dict
from .stores import LeaseStore, apply_json

T = TypeVar("T")
_LOG = logging.getLogger("writelane")

#: native command kinds (-1: the op has no command now)
_NONE, _READ, _WRITE, _COMMITTED, _GAVE_UP, _RAISED, _STORE = -1, 0, 1, 2, 3, 4, 5
#: what the driver asks of its loop: call a user function, carry out a store op, wait
_CALL, _DO_STORE, _WAIT = 0, 1, 2
_Step = Tuple[int, int, Optional[str], Optional[int], Optional[List[int]]]
_Ask = Tuple[int, Any, Any]
_Driver = Generator[_Ask, Any, Any]
_LOST, _UNAVAILABLE = '{"reply":"lost"}', '{"reply":"unavailable"}'
#: the threads that carry out store operations under the store timeout (shared)
_STORE_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="writelane-store")

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


def _token_of(value: Any) -> Optional[str]:
    """Check what a read function returned: a change token or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError("invalid_argument", "read: returned a token that is not valid UTF-8") from None
        return value
    if value is None:
        return value
    raise UsageError("invalid_argument", f"read: must return a change token (str) or None, returned {type(value).__name__}")


class Lane:
    """The write discipline for one process: per-entity lanes, re-reads before retries,
    jittered backoff and retry budgets, all decided by the core engine.

    ``policy`` is a preset name (``"iam"``, the default, or ``"aws-standard"``), a dict,
    JSON text or a :class:`writelane.Policy`; ``seed`` seeds the jitter (random when
    ``None``). ``classify`` maps exceptions that are not botocore's to a code, an
    :class:`writelane.ErrorClass` or a :class:`writelane.Failure` (``None``: fatal).
    With ``log=True`` every event is logged to the ``writelane`` logger as runs finish.
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
        self._codes: Dict[str, List[Any]] = effective["codes"]
        self._waiters: Dict[int, Callable[[], None]] = {}
        self._classify, self._log = classify, bool(log)

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
        # The first write, if it comes at once, is called during submit.
        op, *step, result = self._submit(entity, expected, deadline_ms, read, write, holder)
        if step[0] == _COMMITTED:
            return self._finished(step[4], result)  # type: ignore[no-any-return]
        try:
            return self._loop(self._drive(op, entity, step, read, write, classify, result), op)  # type: ignore[no-any-return]
        except (GaveUp, StaleRevision):
            raise
        except BaseException:
            drain = self._abandon(op)
            if drain is not None:
                drain.join()  # a second interrupt leaves the release to its thread
            raise

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
        op, *step, result = self._submit(entity, expected, deadline_ms, read, None, holder)
        try:
            return await self._loop_async(self._drive(op, entity, step, read, write, classify, result), op)
        except (GaveUp, StaleRevision):
            raise
        except BaseException:
            loop = asyncio.get_running_loop()
            done = loop.create_future()
            if self._abandon(op, lambda: _call_soon(loop, _resolve, done)) is not None:
                await asyncio.shield(done)
            raise

    def _submit(self, entity: str, expected: Any, deadline_ms: Any, read: Any, write: Any, holder: Any) -> Any:
        try:
            return self._native.submit(entity, expected, deadline_ms, read is not None, write, self._holder if holder is None else holder)
        except UnicodeEncodeError:
            raise UsageError("invalid_argument", "entity, expected: not encodable as UTF-8") from None

    def _finished(self, woken: Optional[List[int]], result: Any) -> Any:
        if woken:
            self._wake(woken)
        if self._log:
            self._log_events()
        return result

    # -- the driver --------------------------------------------------------------------------

    def _drive(self, op: int, entity: str, step: Any, read: Any, write: Any, classify: Optional[Classifier], result: Any) -> _Driver:
        """The one driver of one op. Yields what its loop must do — ``(_CALL, fn, attempt)``
        (call ``fn()``, or ``fn(attempt)`` for a write), ``(_DO_STORE, operation JSON, _)``,
        ``(_WAIT, timer, _)`` — and is sent the result (a call's exception is thrown in; a
        wait sends whether the timer is due); returns what ``write`` returned."""
        native, codes = self._native, self._codes
        classify = classify or self._classify
        last_exc: Optional[BaseException] = None
        kind, number, text, timer, woken = step
        while True:
            if woken:
                self._wake(woken)
            if kind == _WRITE or kind == _RAISED:
                try:
                    if kind == _RAISED:  # the write called during submit raised
                        raise result
                    attempt = Attempt(number, text, entity, timer)
                    value = yield _CALL, write, attempt
                except UsageError:
                    raise  # misuse (set_token with a bad token) is not a failed write
                except Exception as exc:  # noqa: BLE001 - classified by the core
                    last_exc, result = exc, None
                    step = native.failed(op, True, *fields_of(exc, classify, codes))
                else:
                    result = value
                    step = native.write_done(op, attempt.token)
            elif kind == _READ:
                try:
                    token = yield _CALL, read, None
                except Exception as exc:  # noqa: BLE001 - classified by the core
                    last_exc = exc
                    step = native.failed(op, False, *fields_of(exc, classify, codes))
                else:
                    step = native.read_done(op, _token_of(token))
            elif kind == _STORE:
                step = native.store_reply(op, (yield _DO_STORE, text, None))
            elif kind == _NONE:
                due = yield _WAIT, timer, None
                step = native.timeout(op) if due else native.poll(op)
            elif kind == _COMMITTED:
                return self._finished(None, result)
            else:
                self._finished(None, None)
                raise self._gave_up(number, text, last_exc, entity) from last_exc
            kind, number, text, timer, woken = step

    def _loop(self, driver: _Driver, op: int) -> Any:
        """Step ``driver`` on this thread: call functions, block on store calls and waits."""
        wake: Optional[threading.Event] = None
        try:
            what, arg, attempt = next(driver)
            while True:
                try:
                    if what == _CALL:
                        value = arg() if attempt is None else arg(attempt)
                    elif what == _DO_STORE:
                        value = self._store_call(arg)
                    elif wake is None:  # first wait: register for wake-ups, then look again
                        wake = threading.Event()
                        self._waiters[op], value = wake.set, False
                    else:
                        value = self._sleep(arg, wake)
                except Exception as exc:  # noqa: BLE001 - the driver decides
                    what, arg, attempt = driver.throw(exc)
                else:
                    what, arg, attempt = driver.send(value)
        except StopIteration as stop:
            return stop.value
        finally:
            if wake is not None:
                self._waiters.pop(op, None)

    async def _loop_async(self, driver: _Driver, op: int) -> Any:
        """Step ``driver`` as a task: await coroutines, store calls and waits."""
        wake: Optional[asyncio.Event] = None
        try:
            what, arg, attempt = next(driver)
            while True:
                try:
                    if what == _CALL:
                        value = arg() if attempt is None else arg(attempt)
                        if inspect.isawaitable(value):
                            value = await value
                    elif what == _DO_STORE:
                        value = await self._store_call_async(arg)
                    elif wake is None:
                        wake = asyncio.Event()
                        self._waiters[op], value = _threadsafe(asyncio.get_running_loop(), wake), False
                    else:
                        value = await self._sleep_async(arg, wake)
                except Exception as exc:  # noqa: BLE001 - the driver decides
                    what, arg, attempt = driver.throw(exc)
                else:
                    what, arg, attempt = driver.send(value)
        except StopIteration as stop:
            return stop.value
        finally:
            if wake is not None:
                self._waiters.pop(op, None)

    def _due(self, timer: int) -> bool:
        clock = self._clock
        return self._native.remaining_ns(timer) == 0 if clock is None else clock.now_ms() >= timer

    def _sleep(self, timer: Optional[int], wake: threading.Event) -> bool:
        """Block until ``timer`` (ms on the lane's clock) or a wake-up; whether it is due."""
        if timer is None:
            wake.wait()
        elif self._clock is None:
            remaining = self._native.remaining_ns(timer)
            if remaining > 0:
                wake.wait(remaining / 1e9)
        elif timer > self._clock.now_ms():
            self._clock.sleep(timer - self._clock.now_ms(), wake)
        wake.clear()
        return timer is not None and self._due(timer)

    async def _sleep_async(self, timer: Optional[int], wake: asyncio.Event) -> bool:
        if timer is None:
            await wake.wait()
        elif self._clock is None:
            remaining = self._native.remaining_ns(timer)
            if remaining > 0:
                handle = asyncio.get_running_loop().call_later(remaining / 1e9, wake.set)
                try:
                    await wake.wait()
                finally:
                    handle.cancel()
        elif timer > self._clock.now_ms():
            await self._clock.sleep_async(timer - self._clock.now_ms(), wake)
        wake.clear()
        return timer is not None and self._due(timer)

    def _store_call(self, operation: str) -> str:
        """Carry out a store operation on a worker thread; no reply within the store
        timeout is ``lost`` (``unavailable`` if it never started)."""
        future = _STORE_POOL.submit(apply_json, self._store, operation)  # type: ignore[arg-type]
        try:
            return future.result(self._store_timeout_ms / 1000)
        except concurrent.futures.TimeoutError:
            return _UNAVAILABLE if future.cancel() else _LOST

    async def _store_call_async(self, operation: str) -> str:
        future = _STORE_POOL.submit(apply_json, self._store, operation)  # type: ignore[arg-type]
        done, _ = await asyncio.wait({asyncio.wrap_future(future)}, timeout=self._store_timeout_ms / 1000)
        if done:
            return future.result()
        return _UNAVAILABLE if future.cancel() else _LOST

    # -- wake-ups and cancellation ------------------------------------------------------------

    def _wake(self, ops: List[int]) -> None:
        waiters = self._waiters
        for other in ops:
            wake = waiters.get(other)
            if wake is not None:
                wake()

    def _wake_all(self) -> None:
        # An interrupted step may have lost its list of ops to wake: a spurious wake-up only
        # makes a waiter look at its mailbox again.
        for wake in list(self._waiters.values()):
            wake()

    def _abandon(self, op: int, done: Optional[Callable[[], None]] = None) -> Optional[threading.Thread]:
        """Cancel ``op`` (an exception is leaving its driver) so its lane passes on. A
        holder's release is driven to the op's finish on a thread of its own, returned."""
        try:
            step = self._native.cancel(op)
        except UsageError:
            step = None  # already finishing, or finished
        if step is None or step[0] not in (_STORE, _NONE):
            self._native.forget(op)
            self._wake_all()
            return None
        thread = threading.Thread(target=self._drain, args=(op, step, done), daemon=True)
        thread.start()
        return thread

    def _drain(self, op: int, step: _Step, done: Optional[Callable[[], None]]) -> None:
        try:
            self._loop(self._drive(op, "", step, None, None, None, None), op)
        except GaveUp:
            pass  # cancelled, as asked
        except Exception:  # noqa: BLE001 - a background clean-up must not raise
            _LOG.warning("writelane: releasing the lease of a cancelled write failed", exc_info=True)
        finally:
            self._native.forget(op)
            self._wake_all()
            if done is not None:
                done()

    def _gave_up(self, attempts: int, text: Optional[str], last_exc: Optional[BaseException], entity: str) -> Exception:
        outcome: Dict[str, Any] = json.loads(text or "{}")
        if outcome.get("reason") == "stale_revision":
            return StaleRevision(outcome.get("expected"), outcome.get("found"), entity, attempts)
        return GaveUp(str(outcome.get("reason")), attempts, last_exc, outcome, entity)

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


def _resolve(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    """Run ``fn(*args)`` on ``loop``, from any thread; nothing if the loop is closed."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:
        pass  # the loop is closed: nobody waits any more


def _threadsafe(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> Callable[[], None]:
    """A wake-up for ``event`` that other threads may call."""
    return lambda: _call_soon(loop, event.set)
