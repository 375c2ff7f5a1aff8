"""The one driver of a lane's operations.

:meth:`Driver.drive` carries out one operation of the native lane: it takes the op's
command, has it carried out, feeds back what happened, and when the op has no command has
its loop wait until the op's timer or until another writer's progress hands it one. It is
a generator, stepped by one of two loops that differ only in how they call the user's
functions, carry out store operations and wait: :meth:`Driver.run` on the calling thread
(for :meth:`writelane.Lane.run`) and :meth:`Driver.run_async` as an asyncio task (for
:meth:`writelane.Lane.run_async`). The engine decides everything; the driver holds no rule.

Updates (group commit, :meth:`writelane.Lane.update`) run through the same driver: each
live update's ``change`` is kept in :attr:`Driver.changes` (op id -> function) so that the
leader of a batch, on whatever thread or task it runs, can apply every member's change to
the document it read, in the order of the engine's ``Apply`` step.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import json
import logging
import threading
from typing import Any, Callable, Dict, Generator, List, Optional, Tuple

from . import _native
from ._clock import Clock
from ._errors import GaveUp, StaleRevision, UsageError
from ._failure import Classifier, fields_of
from .stores import LeaseStore, apply_json

_LOG = logging.getLogger("writelane")

#: native command kinds (-1: the op has no command now)
NONE, READ, WRITE, COMMITTED, GAVE_UP, RAISED, STORE, APPLY = -1, 0, 1, 2, 3, 4, 5, 6
#: what the driver asks of its loop: call a user function, carry out a store op, wait
_CALL, _DO_STORE, _WAIT = 0, 1, 2
#: (kind, number, text, timer, woken) as the native lane returns it
Step = Tuple[int, int, Optional[str], Optional[int], Optional[List[int]]]
_Gen = Generator[Tuple[int, Any, Any], Any, Any]
_LOST, _UNAVAILABLE = '{"reply":"lost"}', '{"reply":"unavailable"}'
#: the threads that carry out store operations, so that a call can be given up on at the
#: store timeout (shared by every lane)
_STORE_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="writelane-store")


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


def _doc_and_token(value: Any) -> Tuple[Any, Optional[str]]:
    """Check what an update's read function returned: ``(document, token)``."""
    if not isinstance(value, tuple) or len(value) != 2:
        raise UsageError("invalid_argument", f"read: an update's read must return (document, token), returned {type(value).__name__}")
    return value[0], _token_of(value[1])


def _code_of(exc: BaseException) -> str:
    """The code a refused change reports: its exception's type name (at most 256 bytes)."""
    return type(exc).__name__.encode("utf-8", "replace")[:256].decode("utf-8", "ignore") or "ChangeRefused"


class Driver:
    """Drives the operations of one native lane for any number of threads and tasks, each
    driving its own op. ``store`` carries out store commands, each bounded by
    ``store_timeout_ms``; ``clock`` (or the native lane's own clock) is slept on;
    ``codes`` and ``classify`` turn exceptions into failures; ``on_finish`` runs when an
    op finishes."""

    def __init__(self, native: _native.NativeLane, store: Optional[LeaseStore], clock: Optional[Clock],
                 store_timeout_ms: int, codes: Dict[str, List[Any]], classify: Optional[Classifier],
                 on_finish: Optional[Callable[[], None]]) -> None:
        self.native, self.store, self.clock = native, store, clock
        self.store_timeout_s, self.codes, self.classify, self.on_finish = store_timeout_ms / 1000, codes, classify, on_finish
        #: how to wake the driver of each waiting op
        self.waiters: Dict[int, Callable[[], None]] = {}
        #: the change function of every live update, for the leader of its batch to call
        self.changes: Dict[int, Callable[[Any], Any]] = {}
        #: the exceptions updates' changes raised, kept by the leader that called them for
        #: the update's own run to raise from
        self.refused: Dict[int, BaseException] = {}
        #: the exception of the last failed write that carried an update's change, kept by
        #: the batch's leader for the update's own run (it may give up on it: a fatal write)
        self.write_errors: Dict[int, BaseException] = {}
        #: held while an update is submitted and its change registered, so that a leader
        #: that finds no change for a member it must apply knows the member is gone
        self.submitting = threading.Lock()

    def run(self, op: int, entity: str, step: Any, read: Any, write: Any, classify: Optional[Classifier], result: Any,
            update: bool = False) -> Any:
        """Drive ``op`` to its finish on this thread; return what ``write`` returned (an
        update: the committed token)."""
        try:
            return self._loop(self.drive(op, entity, step, read, write, classify, result, update), op)
        except (GaveUp, StaleRevision):
            raise
        except BaseException:
            drain = self._abandon(op)
            if drain is not None:
                drain.join()  # a second interrupt leaves the release to its thread
            raise
        finally:
            if update:
                self.changes.pop(op, None)
                self.refused.pop(op, None)
                self.write_errors.pop(op, None)

    async def run_async(self, op: int, entity: str, step: Any, read: Any, write: Any, classify: Optional[Classifier], result: Any,
                        update: bool = False) -> Any:
        """Drive ``op`` to its finish as a task; return what ``write`` returned (an update:
        the committed token)."""
        try:
            return await self._loop_async(self.drive(op, entity, step, read, write, classify, result, update), op)
        except (GaveUp, StaleRevision):
            raise
        except BaseException:
            loop = asyncio.get_running_loop()
            done = loop.create_future()
            if self._abandon(op, lambda: _call_soon(loop, _resolve, done)) is not None:
                await asyncio.shield(done)
            raise
        finally:
            if update:
                self.changes.pop(op, None)
                self.refused.pop(op, None)
                self.write_errors.pop(op, None)

    def drive(self, op: int, entity: str, step: Any, read: Any, write: Any, classify: Optional[Classifier], result: Any,
              update: bool = False) -> _Gen:
        """The driver of one op. Yields what its loop must do — ``(_CALL, fn, attempt)``
        (call ``fn()``, or ``fn(attempt)`` for a write), ``(_DO_STORE, operation JSON, _)``,
        ``(_WAIT, timer, _)`` — and is sent the result (a call's exception is thrown in; a
        wait sends whether the timer is due); returns what ``write`` returned.

        An ``update``'s ``read`` returns ``(document, token)`` and its ``write(document,
        attempt)`` reports the new token (``set_token``, or returned as a ``str``); as a
        batch's leader it applies the members' changes to the document it read (``Apply``)
        and writes the result; it returns the committed token."""
        native, codes = self.native, self.codes
        classify = classify or self.classify
        last_exc: Optional[BaseException] = None
        #: an update's document: what the last read returned, then what the apply made of it
        doc: Any = None
        #: the updates whose changes the last apply applied: what the write carries
        carried: List[int] = []
        kind, number, text, timer, woken = step
        while True:
            if woken:
                self.wake(woken)
            if kind == WRITE or kind == RAISED:
                try:
                    if kind == RAISED:  # the write called during submit raised
                        raise result
                    attempt = _native.Attempt(number, text, entity, timer)
                    if update:
                        value = yield _CALL, functools.partial(write, doc), attempt
                        if isinstance(value, str) and attempt.token is None:
                            attempt.set_token(value)  # the token returned, checked as set_token does
                    else:
                        value = yield _CALL, write, attempt
                    written = attempt.token
                except UsageError:
                    raise  # misuse (set_token with a bad token) is not a failed write
                except Exception as exc:  # noqa: BLE001 - classified by the core
                    last_exc, result = exc, None
                    for member in carried:
                        if member != op and member in self.changes:
                            self.write_errors[member] = exc
                    step = native.failed(op, True, *fields_of(exc, classify, codes))
                else:
                    result = value
                    step = native.write_done(op, written)
            elif kind == READ:
                try:
                    token = yield _CALL, read, None
                except Exception as exc:  # noqa: BLE001 - classified by the core
                    last_exc = exc
                    step = native.failed(op, False, *fields_of(exc, classify, codes))
                else:
                    if update:
                        doc, token = _doc_and_token(token)
                    step = native.read_done(op, _token_of(token))
            elif kind == APPLY:
                doc, results = self._apply(json.loads(text or "[]"), doc)
                carried = [member for member, applied, _ in results if applied]
                step = native.apply_done(op, results)
            elif kind == STORE:
                step = native.store_reply(op, (yield _DO_STORE, text, None))
            elif kind == NONE:
                due = yield _WAIT, timer, None
                step = native.timeout(op) if due else native.poll(op)
            else:
                if self.on_finish is not None:
                    self.on_finish()
                if kind == COMMITTED:
                    return text if update else result
                if update:
                    last_exc = self.refused.pop(op, None) or last_exc or self.write_errors.pop(op, None)
                raise _gave_up(number, text, last_exc, entity) from last_exc
            kind, number, text, timer, woken = step

    def _apply(self, ops: List[int], doc: Any) -> Tuple[Any, List[Tuple[int, bool, Optional[str]]]]:
        """A batch's ``Apply``: each op's change in order on ``doc`` (the first on the
        document read, each next on the previous result); a change that raises is refused
        with its exception's type name as the code, and the exception is kept for its
        op's own run. Returns the final document and the results, in the order of
        ``ops``."""
        results: List[Tuple[int, bool, Optional[str]]] = []
        for member in ops:
            change = self.changes.get(member)
            if change is None:
                with self.submitting:  # a member submitted this instant is registered now
                    change = self.changes.get(member)
            if change is None:  # its run is gone (cancelled) since the engine planned
                results.append((member, False, "Cancelled"))
                continue
            try:
                new = change(doc)
                if inspect.isawaitable(new):
                    if inspect.iscoroutine(new):
                        new.close()
                    raise TypeError("change: must be a plain function of the document, returned an awaitable")
            except Exception as exc:  # noqa: BLE001 - the change is refused, its run told
                if member in self.changes:
                    self.refused[member] = exc
                results.append((member, False, _code_of(exc)))
            else:
                doc = new
                results.append((member, True, None))
        return doc, results

    def _loop(self, gen: _Gen, op: int) -> Any:
        """Step ``gen`` on this thread: call functions, block on store calls and waits."""
        wake: Optional[threading.Event] = None
        try:
            what, arg, attempt = next(gen)
            while True:
                try:
                    if what == _CALL:
                        value = arg() if attempt is None else arg(attempt)
                    elif what == _DO_STORE:
                        value = self._store_call(arg)
                    elif wake is None:  # first wait: register for wake-ups, then look again
                        wake = threading.Event()
                        self.waiters[op], value = wake.set, False
                    else:
                        value = self._sleep(arg, wake)
                except Exception as exc:  # noqa: BLE001 - the driver decides
                    what, arg, attempt = gen.throw(exc)
                else:
                    what, arg, attempt = gen.send(value)
        except StopIteration as stop:
            return stop.value
        finally:
            if wake is not None:
                self.waiters.pop(op, None)

    async def _loop_async(self, gen: _Gen, op: int) -> Any:
        """Step ``gen`` as a task: await coroutines, store calls and waits."""
        wake: Optional[asyncio.Event] = None
        try:
            what, arg, attempt = next(gen)
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
                        self.waiters[op], value = _waker(asyncio.get_running_loop(), wake), False
                    else:
                        value = await self._sleep_async(arg, wake)
                except Exception as exc:  # noqa: BLE001 - the driver decides
                    what, arg, attempt = gen.throw(exc)
                else:
                    what, arg, attempt = gen.send(value)
        except StopIteration as stop:
            return stop.value
        finally:
            if wake is not None:
                self.waiters.pop(op, None)

    def _due(self, timer: int) -> bool:
        clock = self.clock
        return self.native.remaining_ns(timer) == 0 if clock is None else clock.now_ms() >= timer

    def _sleep(self, timer: Optional[int], wake: threading.Event) -> bool:
        """Block until ``timer`` (ms on the lane's clock) or a wake-up; whether it is due."""
        clock = self.clock
        if timer is None:
            wake.wait()
        elif clock is None:
            remaining = self.native.remaining_ns(timer)
            if remaining > 0:
                wake.wait(remaining / 1e9)
        elif timer > clock.now_ms():
            clock.sleep(timer - clock.now_ms(), wake)
        wake.clear()
        return timer is not None and self._due(timer)

    async def _sleep_async(self, timer: Optional[int], wake: asyncio.Event) -> bool:
        clock = self.clock
        if timer is None:
            await wake.wait()
        elif clock is None:
            remaining = self.native.remaining_ns(timer)
            if remaining > 0:
                handle = asyncio.get_running_loop().call_later(remaining / 1e9, wake.set)
                try:
                    await wake.wait()
                finally:
                    handle.cancel()
        elif timer > clock.now_ms():
            await clock.sleep_async(timer - clock.now_ms(), wake)
        wake.clear()
        return timer is not None and self._due(timer)

    def _store_call(self, operation: str) -> str:
        """Carry out a store operation on a worker thread; no reply within the store
        timeout is ``lost`` (``unavailable`` if it never started)."""
        future = _STORE_POOL.submit(apply_json, self.store, operation)  # type: ignore[arg-type]
        try:
            return future.result(self.store_timeout_s)
        except concurrent.futures.TimeoutError:
            return _UNAVAILABLE if future.cancel() else _LOST

    async def _store_call_async(self, operation: str) -> str:
        future = _STORE_POOL.submit(apply_json, self.store, operation)  # type: ignore[arg-type]
        done, _ = await asyncio.wait({asyncio.wrap_future(future)}, timeout=self.store_timeout_s)
        if done:
            return future.result()
        return _UNAVAILABLE if future.cancel() else _LOST

    def wake(self, ops: List[int]) -> None:
        """Wake the drivers of ``ops`` (they received a command)."""
        for other in ops:
            wake = self.waiters.get(other)
            if wake is not None:
                wake()

    def _wake_all(self) -> None:
        # An interrupted step may have lost its list of ops to wake: a spurious wake-up only
        # makes a waiter look at its mailbox again.
        for wake in list(self.waiters.values()):
            wake()

    def _abandon(self, op: int, done: Optional[Callable[[], None]] = None) -> Optional[threading.Thread]:
        """Cancel ``op`` (an exception is leaving its driver) so its lane passes on. A
        holder's release is driven to the op's finish on a thread of its own, returned."""
        try:
            step = self.native.cancel(op)
        except UsageError:
            step = None  # already finishing, or finished
        if step is None or step[0] not in (STORE, NONE):
            self.native.forget(op)
            self._wake_all()
            return None
        thread = threading.Thread(target=self._drain, args=(op, step, done), daemon=True)
        thread.start()
        return thread

    def _drain(self, op: int, step: Step, done: Optional[Callable[[], None]]) -> None:
        try:
            self._loop(self.drive(op, "", step, None, None, None, None), op)
        except GaveUp:
            pass  # cancelled, as asked
        except Exception:  # noqa: BLE001 - a background clean-up must not raise
            _LOG.warning("writelane: releasing the lease of a cancelled write failed", exc_info=True)
        finally:
            self.native.forget(op)
            self._wake_all()
            if done is not None:
                done()


def _gave_up(attempts: int, text: Optional[str], last_exc: Optional[BaseException], entity: str) -> Exception:
    outcome: Dict[str, Any] = json.loads(text or "{}")
    if outcome.get("reason") == "stale_revision":
        return StaleRevision(outcome.get("expected"), outcome.get("found"), entity, attempts)
    return GaveUp(str(outcome.get("reason")), attempts, last_exc, outcome, entity)


def _resolve(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


def _waker(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> Callable[[], None]:
    """A wake-up for a task waiting on ``event``, for any thread to call."""
    return lambda: _call_soon(loop, event.set)


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    """Run ``fn(*args)`` on ``loop``, from any thread; nothing if the loop is closed."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:
        pass  # the loop is closed: nobody waits any more
