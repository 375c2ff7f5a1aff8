"""Shared lanes in one process: `Lane(store=...)` drives the fenced lease protocol with a
lease store; the sans-IO `Engine` does the same for hosts with their own clock."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from storekit import RedisServer, open_store

import writelane
from writelane import stores

FAST = {"lease": {"lease_ms": 1500, "renew_ms": 500, "lock_delay_ms": 200, "poll_ms": 20,
                  "unavailable_ms": 600, "max_write_ms": 300}}


def fast(**more: Any) -> writelane.Policy:
    return writelane.Policy.preset("iam", **FAST, **more)


def test_a_lane_with_a_store_takes_and_releases_the_entity_lease() -> None:
    store = stores.MemoryStore()
    lane = writelane.Lane(fast(), store=store, holder="deploy pipeline #7")
    assert lane.policy.to_dict()["lanes"]["mode"] == "shared"
    # The core's owner format: HOST:PID:16 hex digits of random bits.
    assert lane.owner is not None
    host, pid, entropy = lane.owner.split(":")
    assert int(pid) == os.getpid() and len(entropy) == 16 and int(entropy, 16) >= 0
    seen: List[Any] = []

    def write(attempt: writelane.Attempt) -> int:
        seen.append(store.get("role/app"))
        return attempt.fence  # type: ignore[return-value]

    assert lane.run("role/app", write, read=lambda: "v1") == 1
    held = seen[0]
    assert held["owner"] == lane.owner and held["holder"] == "deploy pipeline #7" and held["epoch"] == 1
    after = store.get("role/app")
    assert after is not None and after["owner"] == "" and after["epoch"] == 1
    # The next write takes a new lease: the fence moves on; a per-run holder overrides.
    assert lane.run("role/app", lambda a: (a.fence, store.get("role/app")["holder"]), holder="drift fix") == (2, "drift fix")
    kinds = [e.type for e in lane.events()]
    assert kinds.count("lease_acquired") == 2 and lane.stats()["global"]["store_ops"] >= 6


def test_a_lane_without_a_store_has_no_fence() -> None:
    lane = writelane.Lane("iam")
    assert lane.owner is None and lane.store is None
    assert lane.run("role/app", lambda a: a.fence) is None


@pytest.mark.parametrize(
    "kwargs, kind, words",
    [
        ({"policy": {"preset": "iam", "lanes": {"mode": "shared"}}}, "invalid_argument", "store"),
        ({"store": object()}, "invalid_argument", "store"),
        ({"store": stores.MemoryStore(), "owner": 5}, "invalid_argument", "owner"),
        ({"store": stores.MemoryStore(), "owner": ""}, "invalid_owner", "owner"),
        ({"store": stores.MemoryStore(), "holder": b"x"}, "invalid_argument", "holder"),
    ],
)
def test_bad_shared_lane_arguments_are_usage_errors(kwargs: Dict[str, Any], kind: str, words: str) -> None:
    with pytest.raises(writelane.UsageError) as info:
        writelane.Lane(**kwargs)
    assert info.value.kind == kind and words in str(info.value)


@pytest.mark.parametrize(
    "policy",
    ["aws-standard", {"preset": "iam", "lanes": {"mode": "none"}}, {"preset": "iam", "lanes": {"mode": "local"}}],
    ids=["aws-standard", "mode-none", "mode-local"],
)
def test_a_store_means_shared_lanes_whatever_the_policy_said(policy: Any) -> None:
    # The core's rule (Policy::for_store), the same in every binding.
    store = stores.MemoryStore()
    lane = writelane.Lane(policy, store=store, seed=1)
    assert lane.policy.to_dict()["lanes"]["mode"] == "shared"
    assert lane.policy == writelane.Policy.from_json(writelane.Lane(policy).policy.to_json()).for_store()
    assert lane.run("role/app", lambda a: a.fence) == 1
    assert store.get("role/app")["epoch"] == 1  # type: ignore[index]


def test_the_store_timeout_is_the_policys_and_reaches_the_adapters(tmp_path: Any) -> None:
    # lease.store_timeout_ms: 2 s by default, or half of what a lease leaves after a
    # renewal interval when that is shorter; a lane hands it to the adapter.
    assert writelane.Policy.preset("iam").to_dict()["lease"]["store_timeout_ms"] == 2000
    assert fast().to_dict()["lease"]["store_timeout_ms"] == 500
    file_store = stores.FileStore(str(tmp_path / "leases.json"))
    assert file_store.timeout_ms == stores.DEFAULT_TIMEOUT_MS == 2000
    writelane.Lane(fast(), store=file_store)
    assert file_store.timeout_ms == 500
    writelane.Lane(writelane.Policy.preset("iam", lease={"store_timeout_ms": 120}), store=file_store)
    assert file_store.timeout_ms == 120, "a store shared by lanes keeps the shortest bound"


class Slow:
    """A store whose writes hang far longer than the store timeout."""

    def __init__(self, inner: Any, hang_s: float) -> None:
        self.inner, self.hang_s, self.calls = inner, hang_s, 0

    def get(self, key: str) -> Any:
        return self.inner.get(key)

    def put_if_absent(self, key: str, record: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            time.sleep(self.hang_s)  # lands late: the lane has stopped waiting
        return self.inner.put_if_absent(key, record)

    def compare_and_swap(self, key: str, rvn: int, record: Any) -> Any:
        return self.inner.compare_and_swap(key, rvn, record)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_store_call_with_no_reply_within_the_store_timeout_is_lost(mode: str) -> None:
    inner = stores.MemoryStore()
    store = Slow(inner, 1.0)
    policy = writelane.Policy.preset("iam", lease={**FAST["lease"], "store_timeout_ms": 100})
    lane = writelane.Lane(policy, store=store)
    started = time.monotonic()
    if mode == "sync":
        fence = lane.run("role/app", lambda a: a.fence)
    else:

        async def write(attempt: writelane.Attempt) -> Optional[int]:
            return attempt.fence

        fence = asyncio.run(lane.run_async("role/app", write))
    # The put got no reply within 100 ms: lost, so the lane read the record back (the put
    # had not landed yet), and went on acquiring; the late put then found a record.
    assert fence is not None and time.monotonic() - started < 0.9
    time.sleep(1.2)
    assert store.calls >= 2


def test_two_lanes_sharing_a_store_never_write_at_once() -> None:
    store = stores.MemoryStore()
    lanes = [writelane.Lane(fast(), store=store, seed=i) for i in range(2)]
    inside, peak, fences = [0], [0], []
    guard = threading.Lock()

    def write(attempt: writelane.Attempt) -> None:
        with guard:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
            fences.append(attempt.fence)
        time.sleep(0.003)
        with guard:
            inside[0] -= 1

    def body(lane: writelane.Lane) -> None:
        for _ in range(5):
            lane.run("role/shared", write)

    threads = [threading.Thread(target=body, args=(lanes[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert peak[0] == 1
    assert sorted(fences) == list(range(1, 41))


class Unreachable:
    """A store that cannot be reached."""

    def get(self, key: str) -> Any:
        raise stores.StoreUnavailable("connection refused")

    put_if_absent = compare_and_swap = get


def test_an_unreachable_store_gives_up_lock_unavailable_without_writing() -> None:
    lane = writelane.Lane(fast(), store=Unreachable())
    calls: List[int] = []
    started = time.monotonic()
    with pytest.raises(writelane.GaveUp) as info:
        lane.run("role/app", lambda a: calls.append(1))
    assert info.value.reason == "lock_unavailable" and calls == []
    assert time.monotonic() - started >= FAST["lease"]["unavailable_ms"] / 1000


class DropsReplies:
    """Carries out every conditional write, then loses its reply."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.dropped = inner, 0

    def get(self, key: str) -> Any:
        return self.inner.get(key)

    def put_if_absent(self, key: str, record: Any) -> Any:
        self.inner.put_if_absent(key, record)
        self.dropped += 1
        raise stores.StoreLost("reply dropped")

    def compare_and_swap(self, key: str, rvn: int, record: Any) -> Any:
        self.inner.compare_and_swap(key, rvn, record)
        self.dropped += 1
        raise stores.StoreLost("reply dropped")


def test_dropped_store_replies_are_resolved_by_reading_back() -> None:
    inner = stores.MemoryStore()
    store = DropsReplies(inner)
    lane = writelane.Lane(fast(), store=store)
    calls: List[int] = []
    for n in range(3):
        assert lane.run("role/app", lambda a: calls.append(a.fence) or a.fence) == n + 1
    assert calls == [1, 2, 3] and store.dropped >= 6
    final = inner.get("role/app")
    assert final is not None and final["owner"] == "" and final["epoch"] == 3


def test_an_interrupted_holder_releases_the_lease_for_the_next_writer() -> None:
    store = stores.MemoryStore()
    lane = writelane.Lane(fast(), store=store)

    def interrupted(attempt: writelane.Attempt) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lane.run("role/app", interrupted)
    deadline = time.monotonic() + 5
    while (store.get("role/app") or {}).get("owner") != "" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.get("role/app")["owner"] == ""  # type: ignore[index]
    other = writelane.Lane(fast(), store=store)
    started = time.monotonic()
    assert other.run("role/app", lambda a: a.fence) == 2
    assert lane.run("role/app", lambda a: a.fence) == 3
    # Released, not taken over: nobody waited a lease.
    assert time.monotonic() - started < FAST["lease"]["lease_ms"] / 1000


def test_run_async_carries_out_store_operations_off_the_loop() -> None:
    store = stores.MemoryStore()
    lane = writelane.Lane(fast(), store=store)

    async def write(attempt: writelane.Attempt) -> Optional[int]:
        await asyncio.sleep(0)
        return attempt.fence

    async def main() -> List[Optional[int]]:
        return list(await asyncio.gather(*(lane.run_async("role/app", write) for _ in range(4))))

    assert sorted(asyncio.run(main())) == [1, 2, 3, 4]  # type: ignore[type-var]


def test_force_release_bumps_the_epoch_and_never_deletes() -> None:
    store = stores.MemoryStore()
    stuck = {"owner": "gone:1:x", "epoch": 4, "rvn": 99, "lease_ms": 10000, "committed_token": "c1:x", "holder": "old"}
    store.put_if_absent("role/app", stuck)
    changed = stores.force_release(store, "role/app", expected_rvn=98)
    assert changed == stores.ForceReleaseResult("changed", current=stuck) and not changed.released
    assert store.get("role/app") == stuck
    released = stores.force_release(store, "role/app", expected_rvn=99)
    assert released.result == "released" and released.released and released.record is not None
    assert store.get("role/app") == released.record
    record = released.record
    assert record["owner"] == "" and record["epoch"] == 5 and record["committed_token"] is None
    assert record["holder"] is None and record["rvn"] != 99
    assert released.to_dict() == {"result": "released", "record": record}
    again = stores.force_release(store, "role/app")
    assert again == stores.ForceReleaseResult("already_free", record=record)
    assert stores.force_release(store, "role/none") == stores.ForceReleaseResult("no_record")
    lane = writelane.Lane(fast(), store=store)
    assert lane.run("role/app", lambda a: a.fence) == 6


def test_force_release_with_an_unreachable_store_raises() -> None:
    with pytest.raises(stores.StoreUnavailable):
        stores.force_release(Unreachable(), "role/app")
    with pytest.raises(writelane.UsageError):
        stores.force_release(stores.MemoryStore(), "role/app", expected_rvn=-1)


# -- the change token in the lease record --------------------------------------------------


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    server = RedisServer()
    yield server.url
    server.stop()


def token_store(kind: str, request: Any, tmp_path: Any) -> Any:
    if kind == "memory":
        return stores.MemoryStore()
    if kind == "file":
        return open_store({"kind": "file", "path": str(tmp_path / "leases.json")})
    url = request.getfixturevalue("redis_url")
    return open_store({"kind": "redis", "url": url, "prefix": f"t-{uuid.uuid4().hex[:8]}:"})


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", ["memory", "file", "redis"])
def test_a_reported_token_reaches_the_next_holder_through_the_lease_record(
    kind: str, mode: str, request: Any, tmp_path: Any
) -> None:
    store = token_store(kind, request, tmp_path)
    reads: List[str] = []

    def read() -> str:
        reads.append("read")
        return "t0"

    def run(lane: writelane.Lane, write: Any) -> Any:
        if mode == "sync":
            return lane.run("role/app", write, read=read)

        async def awrite(attempt: writelane.Attempt) -> Any:
            await asyncio.sleep(0)
            return write(attempt)

        return asyncio.run(lane.run_async("role/app", awrite, read=read))

    a = writelane.Lane(fast(), store=store, owner="a:1:x")
    run(a, lambda at: at.set_token("t9"))
    record = store.get("role/app")
    assert record is not None and record["committed_token"] == "t9" and record["owner"] == ""
    assert reads == ["read"]
    # Another owner on the same store writes on the record's token without reading.
    b = writelane.Lane(fast(), store=store, owner="b:2:y")
    assert run(b, lambda at: (at.base_token, at.fence)) == ("t9", 2)
    assert reads == ["read"]
    # B reported nothing: the record keeps no token, and the next holder reads first.
    assert store.get("role/app")["committed_token"] is None  # type: ignore[index]
    assert run(a, lambda at: at.base_token) == "t0"
    assert reads == ["read", "read"]


# -- the sans-IO engine with a host clock ------------------------------------------------


def pump(engine: writelane.Engine, now: int, store: Any) -> List[Dict[str, Any]]:
    """Carry out every store command at ``now``; return the other commands."""
    rest: List[Dict[str, Any]] = []
    while True:
        cmd = engine.poll_command()
        if cmd is None:
            return rest
        if cmd["type"] == "store":
            reply = stores.apply(store, cmd["operation"])
            engine.handle(now, {"type": "store_reply", "op": cmd["op"], "reply": reply})
        else:
            rest.append(cmd)


def test_a_clock_jumping_forward_a_minute_does_not_let_a_second_writer_in() -> None:
    store = stores.MemoryStore()
    policy = writelane.Policy.preset("iam", tokens={"validate": False}, lanes={"mode": "shared"})
    a = writelane.Engine(policy, seed=1, owner="a:1:x")
    b = writelane.Engine(policy, seed=2, owner="b:2:y")
    a.submit("role/app", 0)
    (write_a,) = pump(a, 0, store)
    assert write_a["type"] == "write" and write_a["fence"] == 1
    b.submit("role/app", 0)
    assert pump(b, 0, store) == []
    # A writes for 1.5 s (within max_write_ms, no renewal due); B's clock jumps a minute
    # ahead at 300 ms and B keeps polling the record.
    events_b: List[Dict[str, Any]] = []
    b_writes: List[Tuple[int, Dict[str, Any]]] = []
    for t in range(10, 1500, 10):
        now_b = t + (60_000 if t >= 300 else 0)
        due = b.poll_timeout()
        if due is not None and due <= now_b:
            b.handle_timeout(now_b)
        b_writes += [(t, c) for c in pump(b, now_b, store)]
        while (ev := b.poll_event()) is not None:
            events_b.append(ev)
    assert b_writes == [], "B wrote while A held the lease"
    assert not any(e["type"] == "lease_acquired" for e in events_b)
    # A's write lands; its release hands the lease on; B then writes under fence 2.
    a.handle(1500, {"type": "write_done", "op": write_a["op"], "token": "v2"})
    finished = pump(a, 1500, store)
    assert finished[0]["type"] == "finish" and finished[0]["outcome"]["status"] == "committed"
    for t in range(1510, 3000, 10):
        now_b = t + 60_000
        due = b.poll_timeout()
        if due is not None and due <= now_b:
            b.handle_timeout(now_b)
        b_writes += [(t, c) for c in pump(b, now_b, store)]
        if b_writes:
            break
    assert b_writes and b_writes[0][1]["type"] == "write" and b_writes[0][1]["fence"] == 2
    while (ev := b.poll_event()) is not None:
        events_b.append(ev)
    acquired = [e for e in events_b if e["type"] == "lease_acquired"]
    assert acquired and acquired[0]["takeover"] is False


#: Lease timings for the queue tests: the holder's write may wait seconds for the waiters
#: to register (max_write_ms bounds it).
QUEUE = {"lease": {"lease_ms": 6000, "renew_ms": 1000, "lock_delay_ms": 200, "poll_ms": 20,
                   "unavailable_ms": 3000, "max_write_ms": 4000}}


def queued(store: Any, key: str) -> List[str]:
    """The owners in the record's queue, oldest first."""
    found = store.get(key)
    return [] if found is None else [t["owner"] for t in found.get("queue", [])]


def wait_until(check: Any, what: str, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.005)


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_three_lanes_queued_behind_a_holder_commit_in_the_order_they_registered(kind: str, tmp_path: Any) -> None:
    store = stores.MemoryStore() if kind == "memory" else stores.FileStore(str(tmp_path / "leases.json"))
    k = "role/queue"
    holder = writelane.Lane(writelane.Policy.preset("iam", **QUEUE), store=store, seed=100)
    waiters = [writelane.Lane(writelane.Policy.preset("iam", **QUEUE), store=store, seed=101 + i) for i in range(3)]
    owners = [lane.owner for lane in waiters]
    all_queued = threading.Event()
    commits: List[Tuple[str, Optional[int]]] = []
    guard = threading.Lock()

    def writer(lane: writelane.Lane) -> Any:
        def write(attempt: writelane.Attempt) -> None:
            if lane is holder:
                assert all_queued.wait(10), "the waiters did not all register"
            with guard:
                commits.append((lane.owner or "", attempt.fence))
        return write

    threads = [threading.Thread(target=holder.run, args=(k, writer(holder)))]
    threads[0].start()
    wait_until(lambda: (store.get(k) or {}).get("owner") == holder.owner, "the holder's lease")
    tickets: List[int] = []
    for i, lane in enumerate(waiters):
        # Each waiter starts once the one before it holds a ticket.
        t = threading.Thread(target=lane.run, args=(k, writer(lane)))
        threads.append(t)
        t.start()
        wait_until(lambda: queued(store, k) == owners[: i + 1], f"waiter {i}'s ticket")
        tickets.append(store.get(k)["queue"][i]["ticket"])
    record = store.get(k)
    assert record["version"] == 2 and record["owner"] == holder.owner
    all_queued.set()
    for t in threads:
        t.join(30)
    # The tickets were handed out in start order, and the commits came in ticket order,
    # each with the next fence (a grant per hand-off, no takeover).
    assert tickets == sorted(tickets) and len(set(tickets)) == 3
    assert [owner for owner, _ in commits] == [holder.owner, *owners]
    fences = [fence for _, fence in commits]
    assert fences == list(range(fences[0], fences[0] + 4)), fences
    after = store.get(k)
    assert after["owner"] == "" and after.get("queue", []) == []
    takeovers = [e for lane in waiters for e in lane.events() if e.type == "lease_acquired" and getattr(e, "takeover", False)]
    assert takeovers == []
