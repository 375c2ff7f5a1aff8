"""OpenTelemetry for a :class:`writelane.Lane`: metrics, one span per run, spike warnings.

Switch it on with ``Lane(..., telemetry=True)`` or ``writelane.otel.instrument(lane)``
(needs ``opentelemetry-api``: ``pip install 'writelane[otel]'``). With it off this module
is never imported. Everything comes from the events the engine records (the ones
:meth:`writelane.Lane.events` drains) except the write attempts themselves, which are
counted and timed where the write is called.

Instrumentation scope ``writelane``, version the package's. Metrics:

=============================== ============ =================================================
name                            unit         what
=============================== ============ =================================================
``writelane.writes``            {write}      entity writes the engine commanded (every attempt)
``writelane.conflicts``         {conflict}   writes refused as conflicts
``writelane.retries``           {retry}      retries scheduled
``writelane.give_ups``          {operation}  runs that gave up; ``error.type`` = the reason
``writelane.budget.refusals``   {retry}      retries the budget refused
``writelane.spikes``            {spike}      conflict spikes started
``writelane.lane.wait.duration`` s           submit to the lane (shared lanes: the lease) granted
``writelane.write.duration``    s            one write attempt, called to returned
``writelane.budget.level``      {token}      the lane's retry budget (observable gauge)
=============================== ============ =================================================

Metrics carry no entity by default (entities are unbounded): ``entity_attribute="name"``
adds ``writelane.entity``, ``"hash"`` adds ``writelane.entity.hash`` (the first 16 hex
digits of the SHA-256 of the name), and the names in ``entity_allowlist`` get
``writelane.entity`` whatever the mode.

Spans: one ``writelane.run`` span (kind INTERNAL) per :meth:`~writelane.Lane.run` or
:meth:`~writelane.Lane.run_async`, current while ``write`` and ``read`` run, with
``writelane.entity`` and, at the end, ``writelane.attempts``; events
``writelane.attempt`` (``writelane.attempt``), ``writelane.conflict``,
``writelane.backoff`` (``writelane.backoff.delay_ms``), ``writelane.spike_started`` and
``writelane.spike_ended``. A run that gives up ends with status ERROR, ``error.type`` =
the reason and the exception's message as the description. Spikes are also logged at
WARNING on the ``writelane`` logger.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import inspect
import logging
import threading
import time
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional, Set

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import __version__
from ._errors import GaveUp, StaleRevision, UsageError
from .events import Event

if TYPE_CHECKING:
    from ._lane import Lane

__all__ = ["ENTITY_ATTRIBUTES", "Telemetry", "instrument"]

_LOG = logging.getLogger("writelane")
#: the values of ``entity_attribute``
ENTITY_ATTRIBUTES = ("none", "name", "hash")
#: events of ops whose run has not bound its op yet, kept at most for this many ops
_PENDING_MAX = 4096
#: the run being submitted on this thread or task (read by :meth:`Telemetry.bind`)
_SUBMITTING: contextvars.ContextVar[Optional["_Run"]] = contextvars.ContextVar("writelane_otel_run", default=None)


class _Run:
    """One instrumented run: its span, its op once bound, what its events said."""

    __slots__ = ("span", "entity", "op", "attempts", "reason")

    def __init__(self, span: Any, entity: str) -> None:
        self.span, self.entity = span, entity
        self.op: Optional[int] = None
        self.attempts: Optional[int] = None
        self.reason: Optional[str] = None


class _Budgets:
    """The ``writelane.budget.level`` gauge of one meter provider, over every lane
    instrumented with it (the lowest level when there are several)."""

    def __init__(self, meter: Any) -> None:
        self.lanes: "weakref.WeakSet[Lane]" = weakref.WeakSet()
        meter.create_observable_gauge(
            "writelane.budget.level", callbacks=[self.observe], unit="{token}",
            description="Tokens in the lane's engine-wide retry budget",
        )

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        levels = [lane.stats()["budget"] for lane in list(self.lanes)]
        return [Observation(min(levels))] if levels else []


_BUDGETS: Dict[int, "tuple[Any, _Budgets]"] = {}
_BUDGETS_LOCK = threading.Lock()


#: bucket boundaries in seconds (OpenTelemetry's advice for durations in s)
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


def _histogram(meter: Any, name: str, description: str) -> Any:
    try:
        return meter.create_histogram(name, unit="s", description=description, explicit_bucket_boundaries_advisory=_BUCKETS)
    except TypeError:  # opentelemetry-api before 1.23 takes no advice
        return meter.create_histogram(name, unit="s", description=description)


def _entity_hash(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]


class Telemetry:
    """The instrumentation of one lane (what :func:`instrument` returns)."""

    def __init__(self, lane: "Lane", meter_provider: Any, tracer_provider: Any, entity_attribute: str,
                 entity_allowlist: Iterable[str]) -> None:
        if entity_attribute not in ENTITY_ATTRIBUTES:
            raise UsageError("invalid_argument", f"entity_attribute: expected one of none, name, hash, found {entity_attribute!r}")
        if isinstance(entity_allowlist, str):
            raise UsageError("invalid_argument", "entity_allowlist: expected an iterable of entity names, found str")
        allow = frozenset(entity_allowlist)
        for name in allow:
            if not isinstance(name, str):
                raise UsageError("invalid_argument", f"entity_allowlist: expected entity names (str), found {type(name).__name__}")
        self._lane = weakref.ref(lane)
        self._shared = lane.store is not None
        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        meter = provider.get_meter("writelane", __version__)
        self._tracer = trace.get_tracer("writelane", __version__, tracer_provider)
        self._writes = meter.create_counter("writelane.writes", unit="{write}", description="Entity writes the engine commanded (every attempt)")
        self._conflicts = meter.create_counter("writelane.conflicts", unit="{conflict}", description="Writes refused as conflicts")
        self._retries = meter.create_counter("writelane.retries", unit="{retry}", description="Retries scheduled")
        self._give_ups = meter.create_counter("writelane.give_ups", unit="{operation}", description="Runs that gave up, by reason (error.type)")
        self._refusals = meter.create_counter("writelane.budget.refusals", unit="{retry}", description="Retries the retry budget refused")
        self._spikes = meter.create_counter("writelane.spikes", unit="{spike}", description="Conflict spikes started")
        self._lane_wait = _histogram(meter, "writelane.lane.wait.duration", "Time from submit to the lane or lease granted")
        self._write_duration = _histogram(meter, "writelane.write.duration", "One entity write, called to returned")
        with _BUDGETS_LOCK:
            entry = _BUDGETS.get(id(provider))
            if entry is None or entry[0] is not provider:
                entry = _BUDGETS[id(provider)] = (provider, _Budgets(meter))
            entry[1].lanes.add(lane)
        self._mode, self._allow = entity_attribute, allow
        self._attrs: Callable[[str], Optional[Dict[str, str]]] = functools.lru_cache(maxsize=4096)(self._attributes)
        self._lock = threading.Lock()
        #: bound runs by op; runs by entity (for spike events); ops not bound yet
        self._runs: Dict[int, _Run] = {}
        self._by_entity: Dict[str, Set[_Run]] = {}
        self._pending: "OrderedDict[int, List[Event]]" = OrderedDict()
        #: per op: when it was submitted and whether it waited (for the lane wait)
        self._submits: Dict[int, List[int]] = {}

    def _attributes(self, entity: str) -> Optional[Dict[str, str]]:
        if self._mode == "name" or entity in self._allow:
            return {"writelane.entity": entity}
        if self._mode == "hash":
            return {"writelane.entity.hash": _entity_hash(entity)}
        return None

    # -- runs --------------------------------------------------------------------------------

    def _start(self, entity: Any) -> _Run:
        span = self._tracer.start_span("writelane.run", kind=SpanKind.INTERNAL,
                                       attributes={"writelane.entity": entity} if isinstance(entity, str) else None)
        return _Run(span, entity)

    def _timed(self, run: _Run, write: Any, is_async: bool) -> Any:
        """``write`` counted and timed, with an attempt event on the run's span. The attempt
        is the last argument: ``write(attempt)`` for a run, ``write(document, attempt)`` for
        an update."""
        attrs = self._attrs(run.entity) if isinstance(run.entity, str) else None
        writes, duration, span = self._writes, self._write_duration, run.span

        def before(attempt: Any) -> float:
            if attempt.number > 1:
                self.flush()  # the previous attempt's conflict and backoff come first
            span.add_event("writelane.attempt", {"writelane.attempt": attempt.number})
            writes.add(1, attrs)
            return time.perf_counter()

        if is_async:
            async def timed_async(*args: Any) -> Any:
                start = before(args[-1])
                try:
                    value = write(*args)
                    if inspect.isawaitable(value):
                        value = await value
                    return value
                finally:
                    duration.record(time.perf_counter() - start, attrs)
            return timed_async

        def timed(*args: Any) -> Any:
            start = before(args[-1])
            try:
                return write(*args)
            finally:
                duration.record(time.perf_counter() - start, attrs)
        return timed

    def _end(self, run: _Run, error: Optional[BaseException]) -> None:
        self.flush()
        with self._lock:
            if run.op is not None:
                self._runs.pop(run.op, None)
            runs = self._by_entity.get(run.entity)
            if runs is not None:
                runs.discard(run)
                if not runs:
                    del self._by_entity[run.entity]
        span = run.span
        if run.attempts is not None:
            span.set_attribute("writelane.attempts", run.attempts)
        if error is not None:
            if isinstance(error, StaleRevision):
                reason: str = "stale_revision"
            elif isinstance(error, GaveUp):
                reason = error.reason
            else:
                reason = run.reason or type(error).__qualname__
            span.set_attribute("error.type", reason)
            span.set_status(Status(StatusCode.ERROR, str(error)))
        span.end()

    def bind(self, op: int) -> None:
        """The run being submitted on this thread or task is ``op`` (called by the lane
        right after its submit)."""
        run = _SUBMITTING.get()
        if run is None:
            return
        _SUBMITTING.set(None)
        with self._lock:
            run.op = op
            self._runs[op] = run
            self._by_entity.setdefault(run.entity, set()).add(run)
            for event in self._pending.pop(op, ()):
                self._on_run(run, event, None)

    @contextlib.contextmanager
    def _traced(self, entity: Any) -> Iterator[_Run]:
        """One run or update: its span current and its op bound while the body runs,
        ended with the body's exception (or none)."""
        r = self._start(entity)
        token = _SUBMITTING.set(r)
        try:
            with trace.use_span(r.span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
                yield r
        except BaseException as exc:
            self._end(r, exc)
            raise
        finally:
            _SUBMITTING.reset(token)
        self._end(r, None)

    def wrap(self, lane: "Lane") -> None:
        """Put the instrumented ``run``, ``run_async``, ``update`` and ``update_async`` on
        ``lane``. A run's ``write`` is its second argument, an update's the ``write``
        keyword: each is counted and timed."""
        plain, plain_async = lane.run, lane.run_async
        plain_update, plain_update_async = lane.update, lane.update_async

        def timed(r: _Run, write: Any, is_async: bool) -> Any:
            return self._timed(r, write, is_async) if callable(write) else write

        @functools.wraps(plain)
        def run(entity: str, write: Any, **kwargs: Any) -> Any:
            with self._traced(entity) as r:
                return plain(entity, timed(r, write, False), **kwargs)

        @functools.wraps(plain_async)
        async def run_async(entity: str, write: Any, **kwargs: Any) -> Any:
            with self._traced(entity) as r:
                return await plain_async(entity, timed(r, write, True), **kwargs)

        @functools.wraps(plain_update)
        def update(entity: str, **kwargs: Any) -> Any:
            with self._traced(entity) as r:
                if "write" in kwargs:
                    kwargs["write"] = timed(r, kwargs["write"], False)
                return plain_update(entity, **kwargs)

        @functools.wraps(plain_update_async)
        async def update_async(entity: str, **kwargs: Any) -> Any:
            with self._traced(entity) as r:
                if "write" in kwargs:
                    kwargs["write"] = timed(r, kwargs["write"], True)
                return await plain_update_async(entity, **kwargs)

        lane.run = run  # type: ignore[method-assign]
        lane.run_async = run_async  # type: ignore[method-assign]
        lane.update = update  # type: ignore[method-assign]
        lane.update_async = update_async  # type: ignore[method-assign]

    # -- events ------------------------------------------------------------------------------

    def flush(self) -> None:
        """Drain the lane's events into the metrics and spans now (runs do it as they end)."""
        lane = self._lane()
        if lane is not None:
            lane._dispatch_events()

    def handle(self, events: List[Event], now_ms: int) -> None:
        """Turn drained events into metrics and span events (the lane calls this, in order,
        under its events lock). ``now_ms`` is the lane's clock when they were drained."""
        if not events:
            return
        base_ns = time.time_ns() - now_ms * 1_000_000
        with self._lock:
            for event in events:
                kind = event.type
                entity = getattr(event, "entity", "")
                attrs = self._attrs(entity)
                if kind == "conflict":
                    self._conflicts.add(1, attrs)
                elif kind == "retry_scheduled":
                    self._retries.add(1, attrs)
                elif kind == "budget_refused":
                    self._refusals.add(1, attrs)
                elif kind == "gave_up":
                    reason = event.reason  # type: ignore[attr-defined]
                    self._give_ups.add(1, {**attrs, "error.type": reason} if attrs else {"error.type": reason})
                elif kind == "spike_started" or kind == "spike_ended":
                    if kind == "spike_started":
                        self._spikes.add(1, attrs)
                    self._on_spike(event, base_ns)
                    continue
                self._lane_wait_of(event, attrs)
                op = getattr(event, "op", None)
                if op is None:
                    continue
                run = self._runs.get(op)
                if run is not None:
                    self._on_run(run, event, base_ns)
                elif kind != "submitted" and kind != "lane_wait_started" and kind != "lane_wait_ended" and kind != "lease_acquired":
                    self._pending.setdefault(op, []).append(event)
                    if len(self._pending) > _PENDING_MAX:
                        self._pending.popitem(last=False)

    def _lane_wait_of(self, event: Event, attrs: Optional[Dict[str, str]]) -> None:
        kind = event.type
        if kind == "submitted":
            self._submits[event.op] = [event.at, 0]  # type: ignore[attr-defined]
            return
        op = getattr(event, "op", None)
        state = self._submits.get(op) if op is not None else None
        if state is None:
            return
        if kind == "lane_wait_started":
            state[1] = 1
        elif kind == "lane_wait_ended" and not self._shared:
            del self._submits[op]  # type: ignore[arg-type]
            self._lane_wait.record(event.waited_ms / 1000, attrs)  # type: ignore[attr-defined]
        elif kind == "lease_acquired" and self._shared:
            del self._submits[op]  # type: ignore[arg-type]
            self._lane_wait.record(max(0, event.at - state[0]) / 1000, attrs)  # type: ignore[attr-defined]
        elif kind == "committed" or kind == "gave_up":
            del self._submits[op]  # type: ignore[arg-type]
            # A local op that never queued had the lane at submit; one that gave up while
            # queued, or a shared one that never held the lease, was never granted.
            if not self._shared and not state[1]:
                self._lane_wait.record(0.0, attrs)

    def _on_run(self, run: _Run, event: Event, base_ns: Optional[int]) -> None:
        kind = event.type
        stamp = None if base_ns is None else base_ns + event.at * 1_000_000  # type: ignore[attr-defined]
        if kind == "conflict":
            run.span.add_event("writelane.conflict", {"writelane.attempt": event.attempt}, stamp)  # type: ignore[attr-defined]
        elif kind == "retry_scheduled":
            run.span.add_event("writelane.backoff", {"writelane.backoff.delay_ms": event.delay_ms}, stamp)  # type: ignore[attr-defined]
        elif kind == "committed":
            run.attempts = event.attempts  # type: ignore[attr-defined]
        elif kind == "gave_up":
            run.attempts, run.reason = event.attempts, event.reason  # type: ignore[attr-defined]

    def _on_spike(self, event: Event, base_ns: int) -> None:
        entity = event.entity  # type: ignore[attr-defined]
        name = "writelane." + event.type
        if event.type == "spike_started":
            _LOG.warning("spike_started on %s: %d conflicts, new writes wait until %d ms", entity,
                         event.conflicts, event.until)  # type: ignore[attr-defined]
        else:
            _LOG.warning("spike_ended on %s", entity)
        stamp = base_ns + event.at * 1_000_000  # type: ignore[attr-defined]
        for run in self._by_entity.get(entity, ()):
            run.span.add_event(name, None, stamp)


def instrument(lane: "Lane", meter_provider: Any = None, tracer_provider: Any = None, entity_attribute: str = "none",
               entity_allowlist: Iterable[str] = ()) -> Telemetry:
    """Send ``lane``'s telemetry to OpenTelemetry: the metrics, spans and spike warnings
    described in :mod:`writelane.otel`. ``meter_provider`` and ``tracer_provider`` default
    to the global ones; ``entity_attribute`` is ``"none"`` (default), ``"name"`` or
    ``"hash"``; ``entity_allowlist`` names entities whose metrics carry the name anyway.
    Runs drain the lane's events as they end: with telemetry on,
    :meth:`writelane.Lane.events` returns only what no run has drained yet."""
    from ._lane import Lane

    if not isinstance(lane, Lane):
        raise UsageError("invalid_argument", f"lane: expected a writelane.Lane, found {type(lane).__name__}")
    if lane._telemetry is not None:
        raise UsageError("invalid_argument", "lane: telemetry is already on for this lane")
    telemetry = Telemetry(lane, meter_provider, tracer_provider, entity_attribute, entity_allowlist)
    telemetry.wrap(lane)
    lane._telemetry = telemetry
    return telemetry
