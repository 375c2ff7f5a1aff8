"""Clocks a :class:`writelane.Lane` can run on.

By default a lane reads a monotonic clock of its own and sleeps on it. Pass ``clock=`` an
object of the :class:`Clock` protocol to run it on another clock instead: virtual time in
tests and simulations (:class:`ManualClock`), or a clock your program already keeps.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Protocol


class Clock(Protocol):
    """What an injected clock provides. Times are integer milliseconds.

    ``now_ms()`` never goes backwards (a reading below an earlier one counts as the earlier
    one). ``sleep(ms, wake)`` returns when ``ms`` milliseconds have passed on the clock or
    when ``wake`` (a :class:`threading.Event`) is set, whichever comes first: another writer
    of the lane sets it when it hands this one work. ``sleep_async`` is the same for
    :meth:`writelane.Lane.run_async`, with an :class:`asyncio.Event`; only lanes that
    ``run_async`` need it.
    """

    def now_ms(self) -> int:
        """Milliseconds on this clock."""
        ...

    def sleep(self, ms: int, wake: threading.Event) -> None:
        """Block until ``ms`` milliseconds have passed or ``wake`` is set."""
        ...

    async def sleep_async(self, ms: int, wake: asyncio.Event) -> None:
        """Wait until ``ms`` milliseconds have passed or ``wake`` is set."""
        ...


class ManualClock:
    """Virtual time: the clock moves only when slept on or advanced. A sleep returns at
    once, having moved the clock by its length (unless ``wake`` is already set), so a lane
    on this clock waits out a two-minute back-off in no real time. Thread-safe."""

    def __init__(self, start_ms: int = 0) -> None:
        self._lock = threading.Lock()
        self._now = int(start_ms)

    def now_ms(self) -> int:
        """Milliseconds on this clock."""
        return self._now

    def advance(self, ms: int) -> None:
        """Move the clock forward by ``ms`` milliseconds."""
        with self._lock:
            self._now += max(0, int(ms))

    def sleep(self, ms: int, wake: threading.Event) -> None:
        """Advance by ``ms`` unless ``wake`` is set."""
        if not wake.is_set():
            self.advance(ms)

    async def sleep_async(self, ms: int, wake: asyncio.Event) -> None:
        """Advance by ``ms`` unless ``wake`` is set, and let other tasks run."""
        if not wake.is_set():
            self.advance(ms)
        await asyncio.sleep(0)


__all__ = ["Clock", "ManualClock"]
