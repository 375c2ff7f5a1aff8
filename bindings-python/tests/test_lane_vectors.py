"""Every lane-driver vector in tests/vectors-lane, replayed through the public `Lane` API
(tests/vectors-lane/README.md is the format): an injected clock in virtual time, scripted
read and write functions raising botocore's own errors, and a fault-injecting wrapper over
the package's `MemoryStore`. Each `lane` vector runs through `Lane.run` and through
`Lane.run_async`: a cancellation is a `KeyboardInterrupt` in the first and a cancelled
task in the second."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import threading
from typing import Any, Callable, Dict, List, Optional

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from conftest import VECTORS

import writelane
from writelane import stores

LANE_VECTORS = os.path.join(os.path.dirname(VECTORS), "vectors-lane")
FILES = sorted(glob.glob(os.path.join(LANE_VECTORS, "*.json")))


def load(path: str) -> Dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)  # type: ignore[no-any-return]


def test_lane_vectors_exist() -> None:
    kinds = {load(p)["kind"] for p in FILES}
    assert len(FILES) >= 30 and kinds == {"lane", "force_release", "owner_id"}, (len(FILES), kinds)


class Cancelled(Exception):
    """Raised by the harness's own bookkeeping when a vector's cancellation misfires."""


class VirtualClock(writelane.ManualClock):
    """Virtual time from 0. A sleep that reaches ``cancel_at`` stops there and cancels the
    run: ``KeyboardInterrupt`` for ``run``, a cancelled task for ``run_async``."""

    def __init__(self, cancel_at: Optional[int]) -> None:
        super().__init__(0)
        self.cancel_at = cancel_at
        self.task: "Optional[asyncio.Task[Any]]" = None

    def _reaches_cancel(self, ms: int) -> bool:
        if self.cancel_at is None or self.now_ms() + ms < self.cancel_at:
            return False
        self.advance(self.cancel_at - self.now_ms())
        self.cancel_at = None  # once
        return True

    def sleep(self, ms: int, wake: threading.Event) -> None:
        if self._reaches_cancel(ms):
            raise KeyboardInterrupt
        super().sleep(ms, wake)

    async def sleep_async(self, ms: int, wake: asyncio.Event) -> None:
        if self._reaches_cancel(ms):
            assert self.task is not None
            self.task.cancel()
            await asyncio.sleep(0)  # CancelledError lands here
            raise Cancelled("the task was not cancelled")
        await super().sleep_async(ms, wake)


def sdk_error(fail: Dict[str, Any]) -> Exception:
    """The botocore error a scripted failure stands for."""
    if fail.get("unknown"):
        return ReadTimeoutError(endpoint_url="https://iam.amazonaws.com/")
    headers = {}
    if fail.get("retry_after_ms") is not None:
        headers["x-amz-retry-after"] = str(fail["retry_after_ms"])
    meta: Dict[str, Any] = {"HTTPHeaders": headers}
    if fail.get("status") is not None:
        meta["HTTPStatusCode"] = fail["status"]
    error = {"Message": "scripted"}
    if fail.get("code") is not None:
        error["Code"] = fail["code"]
    return ClientError({"Error": error, "ResponseMetadata": meta}, "PutRolePolicy")


class FaultyStore:
    """The package's MemoryStore with the vector's faults injected by call index, recording
    every operation as the core's StoreOp JSON."""

    def __init__(self, faults: Dict[str, str], calls: List[Dict[str, Any]], clock: VirtualClock) -> None:
        self.inner = stores.MemoryStore()
        self.faults, self.calls, self.clock, self.count = faults, calls, clock, 0

    def _call(self, operation: Dict[str, Any], apply: Callable[[], Any]) -> Any:
        self.calls.append({"at": self.clock.now_ms(), "call": "store", "operation": operation})
        fault = self.faults.get(str(self.count))
        self.count += 1
        if fault == "dropped":
            raise stores.StoreLost("dropped before it landed")
        if fault == "unavailable":
            raise stores.StoreUnavailable("unreachable")
        result = apply()
        if fault == "lost":
            raise stores.StoreLost("landed, reply lost")
        if fault == "retried" and operation["op"] != "get":
            return False, self.inner.get(operation["key"])  # a retry refused by what landed
        assert fault in (None, "retried"), fault
        return result

    def get(self, key: str) -> Any:
        return self._call({"op": "get", "key": key}, lambda: self.inner.get(key))

    def put_if_absent(self, key: str, record: Any) -> Any:
        op = {"op": "put_if_absent", "key": key, "record": record}
        return self._call(op, lambda: self.inner.put_if_absent(key, record))

    def compare_and_swap(self, key: str, expected_rvn: int, record: Any) -> Any:
        op = {"op": "compare_and_swap", "key": key, "expected_rvn": expected_rvn, "record": record}
        return self._call(op, lambda: self.inner.compare_and_swap(key, expected_rvn, record))


class Script:
    """The scripted read and write functions of one run, recording every call."""

    def __init__(self, run: Dict[str, Any], clock: VirtualClock, calls: List[Dict[str, Any]], mode: str) -> None:
        self.run, self.clock, self.calls, self.mode = run, clock, calls, mode
        self.reads = self.writes = self.user = 0
        cancel = run.get("cancel") or {}
        self.cancel_call: Optional[int] = cancel.get("during_call")

    def _result(self, result: Dict[str, Any]) -> Any:
        self.user += 1
        if self.cancel_call == self.user - 1:
            return "cancel"
        self.clock.advance(result.get("ms", 0))
        if "fail" in result:
            raise sdk_error(result["fail"])
        if "raise" in result:
            raise RuntimeError(result["raise"])  # the user's own exception
        return None

    def read(self) -> Any:
        self.calls.append({"at": self.clock.now_ms(), "call": "read"})
        result = self.run["reads"][self.reads]
        self.reads += 1
        if self._result(result) == "cancel":
            raise KeyboardInterrupt
        return result["token"]

    def write(self, attempt: writelane.Attempt) -> Any:
        self.calls.append({"at": self.clock.now_ms(), "call": "write", "attempt": attempt.number,
                           "base_token": attempt.base_token, "fence": attempt.fence})
        result = self.run["writes"][self.writes]
        self.writes += 1
        if self._result(result) == "cancel":
            raise KeyboardInterrupt
        if result["token"] is not None:
            attempt.set_token(result["token"])
        return result["token"], attempt.number

    async def read_async(self) -> Any:
        try:
            return self.read()
        except KeyboardInterrupt:
            return await self._cancel_task()

    async def write_async(self, attempt: writelane.Attempt) -> Any:
        try:
            return self.write(attempt)
        except KeyboardInterrupt:
            return await self._cancel_task()

    async def _cancel_task(self) -> Any:
        assert self.clock.task is not None
        self.clock.task.cancel()
        await asyncio.sleep(0)  # CancelledError lands here: the call's result is never seen
        raise Cancelled("the task was not cancelled")


def gave_up_event(lane: writelane.Lane) -> Dict[str, Any]:
    (event,) = [e.to_dict() for e in lane.events() if e.type == "gave_up"]
    return event


def replay_lane(v: Dict[str, Any], mode: str) -> Dict[str, Any]:
    run, spec = v["run"], v["lane"]
    clock = VirtualClock((run.get("cancel") or {}).get("at_ms"))
    calls: List[Dict[str, Any]] = []
    store = None
    if spec["store"] is not None:
        store = FaultyStore(spec["store"]["faults"], calls, clock)
        for key, record in spec["store"]["records"].items():
            assert store.inner.put_if_absent(key, record) == (True, None)
    lane = writelane.Lane(json.dumps(v["policy"]), seed=v["seed"], store=store, owner=spec["owner"],
                          holder=spec["holder"], clock=clock)
    script = Script(run, clock, calls, mode)
    kwargs: Dict[str, Any] = {"expected": run["expected"], "deadline_ms": run["deadline_ms"]}
    outcome: Dict[str, Any]
    try:
        if mode == "sync":
            value = lane.run(run["entity"], script.write, read=script.read if run["has_read"] else None, **kwargs)
        else:

            async def main() -> Any:
                task = asyncio.ensure_future(lane.run_async(
                    run["entity"], script.write_async, read=script.read_async if run["has_read"] else None, **kwargs))
                clock.task = task
                return await task

            value = asyncio.run(main())
        token, attempts = value
        outcome = {"status": "committed", "token": token, "attempts": attempts}
    except writelane.StaleRevision as exc:
        outcome = {"status": "gave_up", "reason": "stale_revision", "attempts": exc.attempts, "code": None}
    except writelane.GaveUp as exc:
        outcome = {"status": "gave_up", "reason": exc.reason, "attempts": exc.attempts, "code": exc.code}
    except writelane.UsageError as exc:
        outcome = {"status": "usage_error", "kind": exc.kind}
    except (KeyboardInterrupt, asyncio.CancelledError):
        # The language's idiom for a cancelled run; the engine recorded how it ended.
        event = gave_up_event(lane)
        outcome = {"status": "gave_up", "reason": event["reason"], "attempts": event["attempts"], "code": None}
    got: Dict[str, Any] = {"calls": calls, "outcome": outcome, "end_ms": clock.now_ms()}
    if store is not None:
        got["store_after"] = {run["entity"]: store.inner.get(run["entity"])}
    assert lane.stats()["active_ops"] == 0, "the op finished"
    return got


def replay_force_release(v: Dict[str, Any]) -> Dict[str, Any]:
    calls: List[Dict[str, Any]] = []
    faults = {} if v["fault"] is None else {"1": v["fault"]}  # the compare-and-swap follows the get
    store = FaultyStore(faults, calls, VirtualClock(None))
    if v["record"] is not None:
        store.inner.put_if_absent(v["key"], v["record"])
    try:
        result = stores.force_release(store, v["key"], expected_rvn=v["expected_rvn"], entropy=v["entropy"])
    except stores.StoreError:
        return {"result": {"error": "unavailable"}}
    assert calls[0]["operation"] == {"op": "get", "key": v["key"]}
    return {"result": result.to_dict()}


LANE = [p for p in FILES if load(p)["kind"] == "lane"]
OTHER = [p for p in FILES if load(p)["kind"] != "lane"]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("path", LANE, ids=[os.path.basename(p)[:-5] for p in LANE])
def test_lane_vector(path: str, mode: str) -> None:
    v = load(path)
    assert replay_lane(v, mode) == v["expect"]


@pytest.mark.parametrize("path", OTHER, ids=[os.path.basename(p)[:-5] for p in OTHER])
def test_other_vector(path: str) -> None:
    v = load(path)
    if v["kind"] == "force_release":
        assert replay_force_release(v) == v["expect"]
    else:
        assert v["kind"] == "owner_id"
        from writelane._lane import default_owner  # what a Lane with a store but no owner= uses

        assert {"owner": default_owner(v["host"], v["pid"], v["entropy"])} == v["expect"]
