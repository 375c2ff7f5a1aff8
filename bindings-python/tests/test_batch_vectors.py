"""The group-commit vectors (tests/vectors-lane/batch, format in tests/vectors-lane's
README) replayed through `Lane.update_async` and `Lane.run_async`: one task per run on a
virtual clock (time moves only when every task waits), a document store whose reads and
writes take `call_ms`, and change functions that append an item or raise. The model is the
Rust replay, lane/tests/batch_vectors.rs."""

from __future__ import annotations

import asyncio
import glob
import heapq
import itertools
import json
import os
from typing import Any, Dict, List, Optional, Tuple

import pytest
from conftest import VECTORS
from test_lane_vectors import sdk_error

import writelane

BATCH = os.path.join(os.path.dirname(VECTORS), "vectors-lane", "batch")
FILES = sorted(glob.glob(os.path.join(BATCH, "*.json")))


class SimClock:
    """Virtual time for asyncio tasks: every sleep is a timer on a heap, and the clock
    jumps to the next timer only when no task can run (the event loop's ready queue is
    empty), so the order of events is the lane's, not the machine's."""

    def __init__(self) -> None:
        self.now = 0
        self.timers: List[Tuple[int, int, "asyncio.Future[None]"]] = []
        self.seq = itertools.count()

    def now_ms(self) -> int:
        return self.now

    def sleep(self, ms: int, wake: Any) -> None:
        raise AssertionError("the replay runs update_async and run_async only")

    def _timer(self, at: int) -> "asyncio.Future[None]":
        fut: "asyncio.Future[None]" = asyncio.get_running_loop().create_future()
        heapq.heappush(self.timers, (max(at, self.now), next(self.seq), fut))
        return fut

    async def sleep_until(self, at: int) -> None:
        await self._timer(at)

    async def sleep_async(self, ms: int, wake: asyncio.Event) -> None:
        if wake.is_set():
            return
        timer = self._timer(self.now + ms)
        waiter = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait({timer, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            timer.cancel()

    async def tick(self, tasks: List["asyncio.Task[Any]"]) -> None:
        """Advance time whenever every task waits, until they are all done."""
        loop: Any = asyncio.get_running_loop()
        while not all(t.done() for t in tasks):
            await asyncio.sleep(0)
            if loop._ready:  # noqa: SLF001 - something can still run at this time
                continue
            while self.timers and self.timers[0][2].done():
                heapq.heappop(self.timers)  # cancelled
            if not self.timers:
                await asyncio.sleep(0)
                continue
            at, _, fut = heapq.heappop(self.timers)
            self.now = max(self.now, at)
            fut.set_result(None)


class World:
    """The vector's document store, recording every call."""

    def __init__(self, v: Dict[str, Any], clock: SimClock) -> None:
        self.items: List[str] = []
        self.version = 0
        self.writes = 0
        self.calls: List[Dict[str, Any]] = []
        self.clock = clock
        self.call_ms: int = v["call_ms"]
        self.write_fails: Dict[str, Any] = v["write_fails"]
        self.max_items: Optional[int] = v["max_items"]

    async def read(self, run: int) -> Tuple[List[str], str]:
        self.calls.append({"at": self.clock.now, "call": "read", "run": run})
        await self.clock.sleep_until(self.clock.now + self.call_ms)
        return list(self.items), f"v{self.version}"

    async def write(self, run: int, doc: List[str], number: int, base_token: Optional[str]) -> str:
        self.calls.append({"at": self.clock.now, "call": "write", "run": run, "attempt": number,
                           "base_token": base_token, "document": list(doc)})
        await self.clock.sleep_until(self.clock.now + self.call_ms)
        k = self.writes
        self.writes += 1
        fail = self.write_fails.get(str(k))
        if fail is not None:
            raise sdk_error(fail)
        if self.max_items is not None and len(doc) > self.max_items:
            raise sdk_error({"code": "LimitExceeded", "status": 409})
        self.items = list(doc)
        self.version += 1
        return f"v{self.version}"


class RefusedChange(Exception):
    """Stands for the user's error type the vector names (its class is renamed to it)."""


def outcome_of(exc: BaseException) -> Dict[str, Any]:
    assert isinstance(exc, writelane.GaveUp), exc
    return {"status": "gave_up", "reason": exc.reason, "attempts": exc.attempts, "code": exc.code}


async def one_run(lane: writelane.Lane, world: World, i: int, run: Dict[str, Any]) -> Any:
    clock = world.clock
    await clock.sleep_until(run["at_ms"])
    if run.get("write") is not None:
        items = run["write"]

        async def read_token() -> str:
            return (await world.read(i))[1]

        async def write(attempt: writelane.Attempt) -> str:
            token = await world.write(i, items, attempt.number, attempt.base_token)
            attempt.set_token(token)
            return token

        return await lane.run_async("role/app", write, read=read_token)
    update = run["update"]

    def change(doc: List[str]) -> List[str]:
        world.calls.append({"at": clock.now, "change": i})
        if update.get("raise") is not None:
            error = type(update["raise"], (RefusedChange,), {})  # the type name is the code
            raise error("refused by the vector")
        if update["add"] in doc:
            return doc
        return doc + [update["add"]]

    async def write_doc(doc: List[str], attempt: writelane.Attempt) -> str:
        return await world.write(i, doc, attempt.number, attempt.base_token)

    return await lane.update_async("role/app", read=lambda: world.read(i), change=change, write=write_doc)


def applies(calls: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Fold the change calls after each read into the vector's ``apply`` entries."""
    out: List[Dict[str, Any]] = []
    leader = None
    for c in calls:
        if "change" in c:
            if not out or out[-1]["call"] != "apply":
                out.append({"at": c["at"], "call": "apply", "run": leader, "runs": []})
            out[-1]["runs"].append(c["change"])
            continue
        if c["call"] == "read":
            leader = c["run"]
        out.append(c)
    return out


async def replay(v: Dict[str, Any]) -> Dict[str, Any]:
    clock = SimClock()
    lane = writelane.Lane(json.dumps(v["policy"]), seed=v["seed"], clock=clock)
    world = World(v, clock)
    tasks = [asyncio.ensure_future(one_run(lane, world, i, run)) for i, run in enumerate(v["runs"])]

    async def cancel(task: "asyncio.Task[Any]", at: int) -> None:
        await clock.sleep_until(at)
        task.cancel()

    cancels = [asyncio.ensure_future(cancel(t, run["cancel_at_ms"]))
               for t, run in zip(tasks, v["runs"]) if run["cancel_at_ms"] is not None]
    await clock.tick(tasks)
    for c in cancels:
        c.cancel()
    events = [e.to_dict() for e in lane.events()]
    outcomes: List[Any] = []
    for i, task in enumerate(tasks):
        op = i + 1  # op ids follow the runs' start order
        if task.cancelled():
            (event,) = [e for e in events if e["type"] == "gave_up" and e["op"] == op]
            outcomes.append({"status": "gave_up", "reason": event["reason"], "attempts": event["attempts"], "code": None})
        elif task.exception() is not None:
            outcomes.append(outcome_of(task.exception()))  # type: ignore[arg-type]
        else:
            (event,) = [e for e in events if e["type"] == "committed" and e["op"] == op]
            outcomes.append({"status": "committed", "token": task.result(), "attempts": event["attempts"]})
    return {"calls": applies(world.calls), "outcomes": outcomes, "document": world.items, "end_ms": clock.now}


def load(path: str) -> Dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)  # type: ignore[no-any-return]


def test_the_six_batch_vectors_are_here() -> None:
    assert len(FILES) == 6 and {load(p)["kind"] for p in FILES} == {"batch"}, FILES


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(p)[:-5] for p in FILES])
def test_batch_vector(path: str) -> None:
    v = load(path)
    got = asyncio.run(replay(v))
    assert got == v["expect"], v["description"]
