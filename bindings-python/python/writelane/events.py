"""Typed telemetry events, one class per kind of decision the engine records.

:meth:`writelane.Lane.events` drains them. Every event has ``at`` (milliseconds on the
lane's clock) and ``to_dict()``, which gives the core's JSON form (with ``type``). The types
are checked against the schema the core generates (``tests/schema/events.json``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Dict, Literal, Optional, Type

#: The budget a retry was refused by.
BudgetScope = Literal["engine", "entity"]
#: Why a write gave up.
GiveUpReason = Literal[
    "attempts_exhausted",
    "budget_exhausted",
    "deadline_exceeded",
    "fatal",
    "stale_revision",
    "cancelled",
    "lease_lost",
    "lock_unavailable",
]
#: The class the policy put a failure in.
ErrorClassName = Literal["conflict", "throttle", "transient", "unknown", "fatal"]


@dataclass(frozen=True)
class Event:
    """Base class of every event."""

    type: ClassVar[str] = "event"

    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form of the event."""
        out: Dict[str, Any] = {"type": self.type}
        for f in fields(self):
            out["class" if f.name == "error_class" else f.name] = getattr(self, f.name)
        return out


@dataclass(frozen=True)
class Submitted(Event):
    """A logical write was submitted."""

    type: ClassVar[str] = "submitted"
    op: int
    entity: str
    at: int


@dataclass(frozen=True)
class LaneWaitStarted(Event):
    """The write waits for the entity's lane; ``ahead`` counts writes ahead, holder included."""

    type: ClassVar[str] = "lane_wait_started"
    op: int
    entity: str
    at: int
    ahead: int


@dataclass(frozen=True)
class LaneWaitEnded(Event):
    """The write got the lane after waiting ``waited_ms``."""

    type: ClassVar[str] = "lane_wait_ended"
    op: int
    entity: str
    at: int
    waited_ms: int


@dataclass(frozen=True)
class Conflict(Event):
    """Write attempt ``attempt`` failed with a conflict (``code``)."""

    type: ClassVar[str] = "conflict"
    op: int
    entity: str
    at: int
    attempt: int
    code: Optional[str]


@dataclass(frozen=True)
class RetryScheduled(Event):
    """A retry was scheduled after ``delay_ms``, costing ``cost`` budget tokens."""

    type: ClassVar[str] = "retry_scheduled"
    op: int
    entity: str
    at: int
    failures: int
    delay_ms: int
    error_class: ErrorClassName
    cost: int


@dataclass(frozen=True)
class BudgetRefused(Event):
    """A retry was refused by the ``scope`` budget (``engine`` or ``entity``)."""

    type: ClassVar[str] = "budget_refused"
    op: int
    entity: str
    at: int
    scope: BudgetScope
    needed: int
    available: int


@dataclass(frozen=True)
class StaleRevision(Event):
    """The entity was found at ``found`` while the writer based its change on ``expected``."""

    type: ClassVar[str] = "stale_revision"
    op: int
    entity: str
    at: int
    expected: Optional[str]
    found: Optional[str]


@dataclass(frozen=True)
class Committed(Event):
    """A write landed after ``attempts`` attempts."""

    type: ClassVar[str] = "committed"
    op: int
    entity: str
    at: int
    attempts: int


@dataclass(frozen=True)
class GaveUp(Event):
    """A write gave up (``reason``) after ``attempts`` attempts."""

    type: ClassVar[str] = "gave_up"
    op: int
    entity: str
    at: int
    attempts: int
    reason: GiveUpReason


@dataclass(frozen=True)
class SpikeStarted(Event):
    """Conflicts on the entity crossed the threshold: new writes wait until ``until``."""

    type: ClassVar[str] = "spike_started"
    entity: str
    at: int
    conflicts: int
    until: int


@dataclass(frozen=True)
class SpikeEnded(Event):
    """The entity's conflict cool-down ended."""

    type: ClassVar[str] = "spike_ended"
    entity: str
    at: int


@dataclass(frozen=True)
class LeaseAcquired(Event):
    """The write took the entity's shared lease (shared lanes): ``epoch`` is the fence of
    this holding, ``takeover`` whether a stale holder was taken over."""

    type: ClassVar[str] = "lease_acquired"
    op: int
    entity: str
    at: int
    epoch: int
    takeover: bool


@dataclass(frozen=True)
class LeaseLost(Event):
    """The write lost the entity's shared lease and stopped writing."""

    type: ClassVar[str] = "lease_lost"
    op: int
    entity: str
    at: int


@dataclass(frozen=True)
class UnknownEvent(Event):
    """An event of a kind this version of the package does not know; ``data`` is its JSON."""

    type: ClassVar[str] = "unknown"
    data: Dict[str, Any]

    def to_dict(self) -> Dict[str, Any]:
        """The event's JSON form as received."""
        return dict(self.data)


_KINDS: Dict[str, Type[Event]] = {
    cls.type: cls
    for cls in (
        Submitted,
        LaneWaitStarted,
        LaneWaitEnded,
        Conflict,
        RetryScheduled,
        BudgetRefused,
        StaleRevision,
        Committed,
        GaveUp,
        SpikeStarted,
        SpikeEnded,
        LeaseAcquired,
        LeaseLost,
    )
}


def from_dict(data: Dict[str, Any]) -> Event:
    """The typed event for the core's JSON form of one event."""
    cls = _KINDS.get(str(data.get("type")))
    if cls is None:
        return UnknownEvent(data=dict(data))
    kwargs = {}
    try:
        for f in fields(cls):
            kwargs[f.name] = data["class" if f.name == "error_class" else f.name]
    except KeyError:
        return UnknownEvent(data=dict(data))
    return cls(**kwargs)


__all__ = [
    "BudgetScope",
    "ErrorClassName",
    "GiveUpReason",
    "Event",
    "Submitted",
    "LaneWaitStarted",
    "LaneWaitEnded",
    "Conflict",
    "RetryScheduled",
    "BudgetRefused",
    "StaleRevision",
    "Committed",
    "GaveUp",
    "SpikeStarted",
    "LeaseAcquired",
    "LeaseLost",
    "SpikeEnded",
    "UnknownEvent",
    "from_dict",
]
