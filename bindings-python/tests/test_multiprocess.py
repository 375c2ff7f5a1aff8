"""Separate writer processes sharing a lease store, writing one role's inline policy at
the IAM contention lab: the lease serialises them across processes (no conflicts, no
lost update), and faults (a holder killed mid-write, the store stopped) end the way the
protocol promises."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from conftest import Lab
from storekit import MotoServer, RedisServer, open_store
from test_e2e_boto3 import _sids

HERE = os.path.dirname(os.path.abspath(__file__))
WORKERS, WRITES = 4, 10
TABLE = "writelane-mp-leases"
#: Lease timings short enough for tests (the defaults suit real deployments).
FAST = {"lease": {"lease_ms": 1500, "renew_ms": 500, "lock_delay_ms": 200, "poll_ms": 20,
                  "unavailable_ms": 1500, "max_write_ms": 300}}


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    server = RedisServer()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def dynamodb_endpoint() -> Iterator[str]:
    server = MotoServer(sys.executable)
    open_store({"kind": "dynamodb", "endpoint": server.endpoint, "table": TABLE}).create_table()
    # The same server plays S3 for the S3 cases.
    open_store({"kind": "s3", "endpoint": server.endpoint, "bucket": TABLE}).client.create_bucket(Bucket=TABLE)
    yield server.endpoint
    server.stop()


def spec_for(kind: str, request: Any, tmp_path: Any) -> Dict[str, Any]:
    if kind == "dynamodb":
        return {"kind": "dynamodb", "endpoint": request.getfixturevalue("dynamodb_endpoint"), "table": TABLE}
    if kind == "s3":
        return {"kind": "s3", "endpoint": request.getfixturevalue("dynamodb_endpoint"), "bucket": TABLE,
                "prefix": f"mp-{uuid.uuid4().hex[:6]}/"}
    if kind == "redis":
        return {"kind": "redis", "url": request.getfixturevalue("redis_url"), "prefix": f"mp-{uuid.uuid4().hex[:6]}:"}
    return {"kind": "file", "path": str(tmp_path / "leases.json")}


def new_role(lab: Lab) -> str:
    name = f"mp-{uuid.uuid4().hex[:10]}"
    lab.client().create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    return name


def spawn(cfg: Dict[str, Any]) -> "subprocess.Popen[str]":
    return subprocess.Popen(
        [sys.executable, os.path.join(HERE, "laneworker.py"), json.dumps(cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE,
    )


def finish(proc: "subprocess.Popen[str]") -> List[Dict[str, Any]]:
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def entity(lab: Lab, role: str) -> Dict[str, int]:
    """The lab's counters of the role's writes, less the CreateRole that made it."""
    c = lab.stats()["entities"].get(f"role/{role}", {"writes": 1, "conflicts": 0})
    return {"writes": c["writes"] - 1, "conflicts": c["conflicts"]}


@pytest.mark.parametrize("kind", ["dynamodb", "s3", "redis", "file"])
def test_four_processes_append_forty_statements_without_a_conflict(
    kind: str, lab: Lab, request: Any, tmp_path: Any
) -> None:
    spec = spec_for(kind, request, tmp_path)
    role = new_role(lab)
    start = time.time() + 3.0  # every process imported and connected by then
    procs = [
        spawn({"spec": spec, "endpoint": lab.endpoint, "role": role, "count": WRITES, "id": i,
               "start": start, "policy": FAST})
        for i in range(WORKERS)
    ]
    results = [finish(p) for p in procs]
    runs = [line for lines in results for line in lines if "n" in line]
    assert all(r.get("ok") for r in runs), [r for r in runs if not r.get("ok")]
    assert len(runs) == WORKERS * WRITES
    # Every statement is there: no update was lost.
    expected = sorted(f"W{i}N{n}" for i in range(WORKERS) for n in range(WRITES))
    assert _sids(lab.client(), role) == expected
    # The lease let one process write at a time: the lab saw no overlap at all.
    counts = entity(lab, role)
    assert counts == {"writes": WORKERS * WRITES, "conflicts": 0}, counts
    # Each write held its own lease: fences 1..40, each once, no takeover.
    fences = sorted(r["fence"] for r in runs)
    assert fences == list(range(1, WORKERS * WRITES + 1))
    done = [lines[-1] for lines in results]
    assert sum(d["takeovers"] for d in done) == 0
    record = open_store(spec).get(f"role/{role}")
    assert record is not None and record["owner"] == "" and record["epoch"] == WORKERS * WRITES


@pytest.mark.parametrize("kind", ["dynamodb", "s3", "redis"])
def test_a_holder_killed_mid_write_is_taken_over_after_the_lease(
    kind: str, lab: Lab, request: Any, tmp_path: Any
) -> None:
    spec = spec_for(kind, request, tmp_path)
    role = new_role(lab)
    victim = spawn({"spec": spec, "endpoint": lab.endpoint, "role": role, "count": 2, "id": 0,
                    "policy": FAST, "hang_at": 1})
    assert victim.stdout is not None
    # Never hang the suite on a victim that does not get as far as its write.
    guard = threading.Timer(60, victim.kill)
    guard.start()
    try:
        lines = [json.loads(victim.stdout.readline()) for _ in range(2)]
    finally:
        guard.cancel()
    assert lines[0] == {"n": 0, "ok": True, "fence": 1}
    assert lines[1] == {"writing": 1, "fence": 2}
    # The victim holds the lease (epoch 2) and is in the middle of its write.
    held = open_store(spec).get(f"role/{role}")
    assert held is not None and held["owner"] != "" and held["epoch"] == 2
    assert held["holder"] == "laneworker 0"
    started = time.monotonic()
    heir = spawn({"spec": spec, "endpoint": lab.endpoint, "role": role, "count": 3, "id": 1, "policy": FAST})
    time.sleep(0.5)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(10)
    results = finish(heir)
    elapsed = time.monotonic() - started
    runs = [r for r in results if "n" in r]
    assert all(r.get("ok") for r in runs), runs
    # The heir waited out the victim's whole lease, then took over with the epoch bumped.
    assert elapsed >= FAST["lease"]["lease_ms"] / 1000
    assert results[-1]["takeovers"] == 1
    assert [r["fence"] for r in runs] == [3, 4, 5]
    # Nothing lost: the victim's first write and all of the heir's; the killed write never
    # reached IAM, and nobody conflicted.
    assert _sids(lab.client(), role) == sorted(["W0N0", "W1N0", "W1N1", "W1N2"])
    assert entity(lab, role) == {"writes": 4, "conflicts": 0}
    final = open_store(spec).get(f"role/{role}")
    assert final is not None and final["owner"] == "" and final["epoch"] == 5
    # The killed holder's late release (a compare-and-swap on its rvn) is refused.
    late = dict(held, owner="", holder=None, rvn=held["rvn"] + 1)
    ok, current = open_store(spec).compare_and_swap(f"role/{role}", held["rvn"], late)
    assert not ok and current == final


def test_the_store_stopped_mid_run_makes_writers_give_up_without_writing(lab: Lab) -> None:
    server = RedisServer()
    spec = {"kind": "redis", "url": server.url, "timeout_ms": 300}
    role = new_role(lab)
    start = time.time() + 2.5
    procs = [
        spawn({"spec": spec, "endpoint": lab.endpoint, "role": role, "count": 200, "id": i,
               "start": start, "policy": FAST, "stop_on_give_up": True})
        for i in range(2)
    ]
    # Let them write for a while, then take the store away.
    deadline = time.monotonic() + 30
    while entity(lab, role)["writes"] < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.stop()
    writes_at_stop = entity(lab, role)["writes"]
    results = [finish(p) for p in procs]
    runs = [r for lines in results for r in lines if "n" in r]
    ok = [r for r in runs if r.get("ok")]
    gave_up = [r for r in runs if "gave_up" in r]
    assert len(ok) >= 6
    # Once the store is gone nobody gets a lease: each writer's next write gives up,
    # lock_unavailable (a holder caught mid-write by the stop may finish that one write;
    # one caught needing a renewal gives up lease_lost).
    reasons = [r["gave_up"] for r in gave_up]
    assert len(reasons) == 2 and "lock_unavailable" in reasons
    assert set(reasons) <= {"lock_unavailable", "lease_lost"}
    assert all(lines[-2] in gave_up for lines in results)
    counts = entity(lab, role)
    assert counts["conflicts"] == 0
    assert counts["writes"] <= writes_at_stop + 1
    assert counts["writes"] == len(ok)
    assert len(_sids(lab.client(), role)) == len(ok)


# -- the queue-like hand-off across processes -------------------------------------------------

#: Lease timings of the queue tests: the holder's write waits for every waiter to register
#: (max_write_ms bounds a write; no renewal runs during one).
QUEUE = {"lease": {"lease_ms": 6000, "renew_ms": 1000, "lock_delay_ms": 200, "poll_ms": 20,
                   "unavailable_ms": 3000, "max_write_ms": 4000}}
QUEUED = 6


class Worker:
    """A queueworker.py process: lines in on stdin, JSON lines out."""

    def __init__(self, spec: Dict[str, Any], key: str, owner: str, hold: bool = False) -> None:
        cfg = {"spec": spec, "key": key, "owner": owner, "hold": hold, "policy": QUEUE}
        self.owner = owner
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "queueworker.py"), json.dumps(cfg)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE,
        )

    def line(self, limit_s: float = 30) -> Dict[str, Any]:
        assert self.proc.stdout is not None
        guard = threading.Timer(limit_s, self.proc.kill)  # never hang the suite
        guard.start()
        try:
            text = self.proc.stdout.readline()
        finally:
            guard.cancel()
        assert text, f"{self.owner} exited: {self.proc.stderr.read() if self.proc.stderr else ''}"
        return json.loads(text)  # type: ignore[no-any-return]

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def finish(self) -> List[Dict[str, Any]]:
        stdout, stderr = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, stderr[-3000:]
        return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def queue_of(spec: Dict[str, Any], key: str) -> List[Dict[str, Any]]:
    found = open_store(spec).get(key)
    return [] if found is None else list(found.get("queue", []))


def wait_for(check: Any, what: str, limit_s: float = 15) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.01)


def queue_behind_a_holder(spec: Dict[str, Any], key: str) -> Tuple[Worker, List[Worker], int, List[int]]:
    """A holder process in its write, and QUEUED processes started one at a time, each once
    the one before it holds a ticket: (holder, waiters in start order, the holder's fence,
    their tickets)."""
    holder = Worker(spec, key, "holder-0", hold=True)
    waiters = [Worker(spec, key, f"waiter-{i}") for i in range(1, QUEUED + 1)]
    # Every process imported and connected before the first one starts.
    for w in [holder, *waiters]:
        assert w.line() == {"ready": w.owner}
    holder.send("go")
    writing = holder.line()
    assert writing["writing"] == "holder-0"
    tickets = []
    for i, w in enumerate(waiters):
        w.send("go")
        wait_for(lambda: [t["owner"] for t in queue_of(spec, key)] == [v.owner for v in waiters[: i + 1]],
                 f"{w.owner}'s ticket")
        tickets.append(queue_of(spec, key)[i]["ticket"])
    record = open_store(spec).get(key)
    assert record is not None and record["version"] == 2 and record["owner"] == "holder-0"
    return holder, waiters, writing["fence"], tickets


@pytest.mark.parametrize("kind", ["file", "redis"])
def test_six_processes_started_in_order_register_and_commit_in_that_order(kind: str, request: Any, tmp_path: Any) -> None:
    spec = spec_for(kind, request, tmp_path)
    key = f"role/queue-{uuid.uuid4().hex[:8]}"
    holder, waiters, fence, tickets = queue_behind_a_holder(spec, key)
    # Registered in start order: tickets increase with the start order.
    assert tickets == sorted(tickets) and len(set(tickets)) == QUEUED
    holder.send("release")
    results = {w.owner: w.finish() for w in [holder, *waiters]}
    assert results["holder-0"][-1] == {"done": "holder-0", "fence": fence, "takeovers": 0}
    # Committed in that order: each write started after the one before it, each under the
    # next fence (one grant per hand-off, nobody taken over, nobody overtaken).
    writing = [results[w.owner][0] for w in waiters]
    assert [r["writing"] for r in writing] == [w.owner for w in waiters]
    assert [r["fence"] for r in writing] == list(range(fence + 1, fence + 1 + QUEUED))
    assert [r["t"] for r in writing] == sorted(r["t"] for r in writing)
    assert all(results[w.owner][-1]["takeovers"] == 0 for w in waiters)
    gaps = [round(1000 * (b["t"] - a["t"])) for a, b in zip(writing, writing[1:])]
    print(f"six queued on {kind}: fences {[r['fence'] for r in writing]}, ms between write starts {gaps}")
    final = open_store(spec).get(key)
    assert final is not None and final["owner"] == "" and final["epoch"] == fence + QUEUED
    assert final.get("queue", []) == []


def test_a_waiter_killed_mid_queue_leaves_it_and_the_rest_commit_in_order(tmp_path: Any) -> None:
    spec = {"kind": "file", "path": str(tmp_path / "leases.json")}
    key = "role/queue-kill"
    holder, waiters, fence, _ = queue_behind_a_holder(spec, key)
    victim = waiters[2]
    os.kill(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait(10)
    started = time.monotonic()
    holder.send("release")
    survivors = [w for w in waiters if w is not victim]
    results = {w.owner: w.finish() for w in [holder, *survivors]}
    elapsed = time.monotonic() - started
    writing = [results[w.owner][0] for w in survivors]
    # The survivors commit in registration order under growing fences; the dead waiter
    # held the line for at most about a lease (its ticket, or a grant nobody accepted, is
    # judged dead by the staleness rule) and never wrote.
    assert [r["writing"] for r in writing] == [w.owner for w in survivors]
    fences = [r["fence"] for r in writing]
    assert fences == sorted(fences) and len(set(fences)) == len(fences) and fences[0] == fence + 1
    assert [r["t"] for r in writing] == sorted(r["t"] for r in writing)
    assert elapsed < 4 * QUEUE["lease"]["lease_ms"] / 1000, elapsed
    gaps = [round(b["t"] - a["t"], 2) for a, b in zip(writing, writing[1:])]
    print(f"killed mid-queue: fences {fences} after the holder's {fence}, gaps between writes {gaps} s, {elapsed:.1f} s from the release to the last commit")
    final = open_store(spec).get(key)
    assert final is not None and final["owner"] == "" and final.get("queue", []) == []
