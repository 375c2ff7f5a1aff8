"""One Lane hammered by 32 threads over 5 entities: no deadlock, one writer per entity at
a time, FIFO per entity, and counters that add up."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import defaultdict
from typing import Any, DefaultDict, Dict, List

import writelane

THREADS = 32
ENTITIES = 5
RUNS = 15


class Conflicted(Exception):
    """A simulated conflict."""


def test_hammer_one_lane() -> None:
    lane = writelane.Lane(
        {"preset": "iam", "retry": {"conflict": {"base_ms": 1, "cap_ms": 3}}, "spike": {"enabled": False}},
        seed=11,
        classify=lambda e: "ConcurrentModification" if isinstance(e, Conflicted) else None,
    )
    in_flight: Dict[str, int] = defaultdict(int)
    guard = threading.Lock()
    overlaps: List[str] = []
    done: DefaultDict[str, int] = defaultdict(int)
    barrier = threading.Barrier(THREADS)
    errors: List[BaseException] = []

    def writer(t: int) -> None:
        rng = random.Random(t)
        barrier.wait()
        for n in range(RUNS):
            entity = f"role/e{(t + n) % ENTITIES}"

            def write(attempt: writelane.Attempt) -> int:
                with guard:
                    in_flight[entity] += 1
                    if in_flight[entity] > 1:
                        overlaps.append(entity)
                try:
                    if rng.random() < 0.2 and attempt.number == 1:
                        raise Conflicted()
                    return attempt.number
                finally:
                    with guard:
                        in_flight[entity] -= 1

            try:
                lane.run(entity, write, read=lambda: "v")
                with guard:
                    done[entity] += 1
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not any(th.is_alive() for th in threads), "deadlock: a writer never finished"
    assert not errors, errors[:3]
    assert not overlaps, "two writes to one entity overlapped"

    events = lane.events()
    submitted: DefaultDict[str, List[int]] = defaultdict(list)
    committed: DefaultDict[str, List[int]] = defaultdict(list)
    for e in events:
        if isinstance(e, writelane.events.Submitted):
            submitted[e.entity].append(e.op)
        elif isinstance(e, writelane.events.Committed):
            committed[e.entity].append(e.op)
    assert sum(map(len, submitted.values())) == THREADS * RUNS
    for entity in submitted:
        assert committed[entity] == submitted[entity], f"{entity}: not FIFO"

    stats = lane.stats()
    g = stats["global"]
    total = THREADS * RUNS
    assert g["submitted"] == g["committed"] == total and g["gave_up"] == 0
    assert stats["active_ops"] == 0 and stats["dropped_events"] == 0
    assert g["writes"] == total + g["retries"] and g["conflicts"] == g["retries"] > 0
    assert g["lane_waits"] > 0
    ents: Dict[str, Any] = stats["entities"]
    for key in ("submitted", "committed", "writes", "reads", "conflicts", "retries", "lane_waits"):
        assert sum(e["counters"][key] for e in ents.values()) == g[key], key
    for name, e in ents.items():
        assert e["counters"]["committed"] == done[name]
        assert e["busy"] is False and e["queued"] == 0


def test_threads_and_tasks_share_a_lane() -> None:
    lane = writelane.Lane(seed=5)
    order: List[str] = []
    overlaps: List[str] = []
    guard = threading.Lock()
    active = [0]

    def enter(tag: str) -> None:
        with guard:
            active[0] += 1
            if active[0] > 1:
                overlaps.append(tag)
            order.append(tag)

    def leave() -> None:
        with guard:
            active[0] -= 1

    async def tasks() -> None:
        async def one(i: int) -> None:
            async def write(a: writelane.Attempt) -> None:
                enter(f"a{i}")
                await asyncio.sleep(0.001)
                leave()

            await lane.run_async("role/shared", write)

        await asyncio.gather(*(one(i) for i in range(20)))

    def thread(i: int) -> None:
        def write(a: writelane.Attempt) -> None:
            enter(f"t{i}")
            time.sleep(0.0005)
            leave()

        for _ in range(5):
            lane.run("role/shared", write)

    threads = [threading.Thread(target=thread, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    asyncio.run(tasks())
    for th in threads:
        th.join(30)
    assert not overlaps, "a task and a thread wrote the entity at the same time"
    assert len(order) == 40
    assert lane.stats()["global"]["committed"] == 40


def test_a_queued_run_given_the_lane_during_a_cool_down_is_woken() -> None:
    # A spike starts a cool-down: the run the lane passes to next gets a timer (the end of
    # the cool-down) and no command. Its thread sleeps on the timer it was handed before,
    # so the lane must wake it to take the new one, or it sleeps until its deadline.
    lane = writelane.Lane(
        {
            "preset": "iam",
            "retry": {"conflict": {"base_ms": 1, "cap_ms": 3, "max_attempts": 20}},
            "spike": {"enabled": True, "window_ms": 10_000, "threshold": 2, "cooldown_ms": 50},
        },
        seed=5,
        classify=lambda e: "ConcurrentModification" if isinstance(e, Conflicted) else None,
    )
    conflicts_left = [6]
    guard = threading.Lock()
    outcomes: List[str] = []
    barrier = threading.Barrier(3)

    def write(attempt: writelane.Attempt) -> str:
        with guard:
            if conflicts_left[0] > 0:
                conflicts_left[0] -= 1
                raise Conflicted()
        return "ok"

    def writer() -> None:
        barrier.wait()
        try:
            lane.run("role/hot", write, read=lambda: "v", deadline_ms=30_000)
            outcome = "committed"
        except writelane.GaveUp as exc:
            outcome = exc.reason
        except writelane.Error as exc:
            outcome = type(exc).__name__
        with guard:
            outcomes.append(outcome)

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["committed"] * 3, outcomes
