"""Which lanes the running code holds, for the SDK lane middleware (:mod:`writelane.botocore`).

A wrapped client called from inside a ``Lane.run`` or ``Lane.update`` write, on the entity
that write already holds, must not wait for that lane again (it would wait for itself until
its deadline): the middleware skips a lane the caller holds. ``Lane`` marks what its writes
hold only once a lane middleware has been installed (``active``), so lanes without one pay
nothing. A ``ContextVar`` holds the marks: each thread, and each asyncio task, sees only
its own.
"""

from __future__ import annotations

import contextvars
import inspect
from typing import Any, Callable, FrozenSet, Tuple

#: the ``(id(lane), entity)`` pairs whose lanes the running code holds
HELD: "contextvars.ContextVar[FrozenSet[Tuple[int, str]]]" = contextvars.ContextVar("writelane_held", default=frozenset())

#: set by ``writelane.botocore.install(..., lane=...)``: from then on, Lane marks its writes
active = False


def holds(lane: Any, entity: str) -> bool:
    """Whether the running code holds ``entity``'s lane of ``lane``."""
    return (id(lane), entity) in HELD.get()


def marking(lane: Any, entity: str, write: Callable[..., Any]) -> Callable[..., Any]:
    """``write`` marked as holding ``entity``'s lane of ``lane`` while it runs."""
    key = (id(lane), entity)

    def marked(*args: Any) -> Any:
        token = HELD.set(HELD.get() | {key})
        try:
            return write(*args)
        finally:
            HELD.reset(token)

    return marked


def marking_async(lane: Any, entity: str, write: Callable[..., Any]) -> Callable[..., Any]:
    """The asyncio form of :func:`marking`: the mark lasts while the write is awaited."""
    key = (id(lane), entity)

    async def marked(*args: Any) -> Any:
        token = HELD.set(HELD.get() | {key})
        try:
            result = write(*args)
            if inspect.isawaitable(result):
                result = await result
            return result
        finally:
            HELD.reset(token)

    return marked
