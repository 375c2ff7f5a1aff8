"""Lane behaviour beyond the happy path: botocore error mapping, unknown outcomes,
retry-after hints, asyncio cancellation, telemetry, logging and state."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Dict, List, Optional

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

import writelane

NO_JITTER = {
    "preset": "iam",
    "retry": {c: {"jitter": "none", "base_ms": 2, "cap_ms": 50} for c in ("conflict", "throttle", "transient", "unknown")},
    "spike": {"enabled": False},
}


def client_error(code: str, status: int, headers: Optional[Dict[str, str]] = None) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"},
         "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}}},
        "PutRolePolicy",
    )


def failing_then(errors: List[BaseException], value: Any = "done") -> Any:
    def write(attempt: writelane.Attempt) -> Any:
        if attempt.number <= len(errors):
            raise errors[attempt.number - 1]
        return value

    return write


def test_client_errors_are_classified_by_code() -> None:
    lane = writelane.Lane(NO_JITTER, seed=1)
    write = failing_then([
        client_error("ConcurrentModification", 409),
        client_error("Throttling", 400),
        client_error("ServiceUnavailable", 503),
        client_error("EntityTemporarilyUnmodifiable", 409),
    ])
    assert lane.run("role/a", write) == "done"
    classes = [e.to_dict()["class"] for e in lane.events() if e.type == "retry_scheduled"]
    assert classes == ["conflict", "throttle", "transient", "conflict"]
    with pytest.raises(writelane.GaveUp) as info:
        lane.run("role/a", failing_then([client_error("LimitExceeded", 409)]))
    assert info.value.reason == "fatal" and info.value.code == "LimitExceeded"
    assert info.value.outcome["http_status"] == 409


def test_retry_after_header_is_honoured() -> None:
    lane = writelane.Lane(NO_JITTER, seed=1)
    write = failing_then([client_error("Throttling", 400, {"x-amz-retry-after": "30"})])
    assert lane.run("role/a", write) == "done"
    delays = [e.to_dict()["delay_ms"] for e in lane.events() if e.type == "retry_scheduled"]
    assert delays == [30]


def test_read_timeout_is_an_unknown_outcome_and_reads_back() -> None:
    lane = writelane.Lane(NO_JITTER, seed=1)
    reads: List[int] = []

    def read() -> Optional[str]:
        reads.append(1)
        return "v1"

    write = failing_then([ReadTimeoutError(endpoint_url="https://iam.amazonaws.com/")])
    assert lane.run("role/a", write, read=read) == "done"
    assert len(reads) == 3, "read, read back after the lost reply, read before the retry"
    g = lane.stats()["global"]
    assert g["writes"] == 2 and g["retries"] == 1


def test_connect_failures_are_transient() -> None:
    lane = writelane.Lane(NO_JITTER, seed=1)
    write = failing_then([
        ConnectTimeoutError(endpoint_url="https://iam.amazonaws.com/"),
        EndpointConnectionError(endpoint_url="https://iam.amazonaws.com/"),
    ])
    assert lane.run("role/a", write) == "done"
    classes = [e.to_dict()["class"] for e in lane.events() if e.type == "retry_scheduled"]
    assert classes == ["transient", "transient"]


def test_read_failures_are_retried() -> None:
    lane = writelane.Lane(NO_JITTER, seed=1)
    calls = [0]

    def read() -> Optional[str]:
        calls[0] += 1
        if calls[0] == 1:
            raise client_error("Throttling", 400)
        return "v1"

    assert lane.run("role/a", lambda a: a.base_token, read=read) == "v1"


def test_async_cancellation_releases_the_lane() -> None:
    policy = {"preset": "iam", "retry": {"conflict": {"base_ms": 5000, "cap_ms": 5000, "jitter": "none"}}}
    lane = writelane.Lane(policy, seed=1)

    async def main() -> float:
        async def stuck(attempt: writelane.Attempt) -> None:
            raise client_error("ConcurrentModification", 409)

        task = asyncio.ensure_future(lane.run_async("role/a", stuck))
        await asyncio.sleep(0.05)

        async def other(attempt: writelane.Attempt) -> str:
            return "second"

        second = asyncio.ensure_future(lane.run_async("role/a", other))
        await asyncio.sleep(0.05)
        assert not second.done(), "the second write waits for the lane"
        task.cancel()
        started = time.monotonic()
        assert await asyncio.wait_for(second, 2) == "second"
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - started

    assert asyncio.run(main()) < 1.0
    assert lane.stats()["global"]["gave_up"] == 1


def test_async_backoff_does_not_block_the_loop() -> None:
    lane = writelane.Lane({"preset": "iam", "retry": {"conflict": {"base_ms": 200, "cap_ms": 200, "jitter": "none"}}}, seed=1)
    ticks: List[float] = []

    async def ticker() -> None:
        for _ in range(10):
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def main() -> Any:
        write = failing_then([client_error("ConcurrentModification", 409)])
        return await asyncio.gather(lane.run_async("role/a", write), ticker())

    started = time.monotonic()
    result, _ = asyncio.run(main())
    assert result == "done"
    assert len(ticks) == 10 and ticks[-1] - started < 0.19, "the loop ran during the back-off"
    assert time.monotonic() - started >= 0.2, "the back-off was waited out"


def test_events_are_typed_and_round_trip() -> None:
    lane = writelane.Lane(NO_JITTER, seed=1)
    lane.run("role/a", failing_then([client_error("ConcurrentModification", 409)]), read=lambda: "v1")
    events = lane.events()
    assert [type(e).__name__ for e in events] == [
        "Submitted", "Conflict", "RetryScheduled", "Committed"]
    conflict = events[1]
    assert isinstance(conflict, writelane.events.Conflict)
    assert conflict.code == "ConcurrentModification" and conflict.attempt == 1
    for e in events:
        assert writelane.events.from_dict(e.to_dict()) == e
    assert lane.events() == [], "events() drains"


def test_logging_integration(caplog: pytest.LogCaptureFixture) -> None:
    lane = writelane.Lane(NO_JITTER, seed=1, log=True)
    with caplog.at_level(logging.DEBUG, logger="writelane"):
        lane.run("role/a", failing_then([client_error("ConcurrentModification", 409)]))
    messages = [(r.levelno, r.getMessage().split()[0]) for r in caplog.records if r.name == "writelane"]
    assert (logging.INFO, "conflict") in messages
    assert (logging.INFO, "retry_scheduled") in messages
    assert (logging.DEBUG, "committed") in messages


def test_state_export_and_import() -> None:
    lane = writelane.Lane(NO_JITTER, seed=1)
    lane.run("role/a", lambda a: None)
    state = lane.export_state()
    assert state["version"] == 1
    other = writelane.Lane(NO_JITTER, seed=2)
    other.import_state({"version": 1, "entities": {"role/b": {"committed_token": "v9"}}})
    assert other.stats()["entities"]["role/b"]["committed_token"] == "v9"
    with pytest.raises(writelane.UsageError):
        other.import_state({"version": 2})


def test_never_waits_for_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import writelane._driver as lane_mod

    waits: List[Optional[float]] = []

    class Recording(threading.Event):
        def wait(self, timeout: Optional[float] = None) -> bool:
            waits.append(timeout)
            return super().wait(timeout)

    monkeypatch.setattr(lane_mod.threading, "Event", Recording)
    # Full jitter over [0, 1] ms: many retries are scheduled with no delay at all.
    policy = {"preset": "iam", "retry": {"conflict": {"base_ms": 1, "cap_ms": 1, "max_attempts": 40}},
              "spike": {"enabled": False}, "budget": {"enabled": False}}
    lane = writelane.Lane(policy, seed=3)
    write = failing_then([client_error("ConcurrentModification", 409)] * 30)
    assert lane.run("role/a", write) == "done"
    delays = [e.to_dict()["delay_ms"] for e in lane.events() if e.type == "retry_scheduled"]
    assert 0 in delays and 1 in delays
    assert all(t is not None and t > 0 for t in waits), waits
    assert len(waits) <= delays.count(1) * 3, "waits only where the engine set a delay"


# -- change tokens reported by the write ----------------------------------------------------


def run_mode(lane: writelane.Lane, mode: str, entity: str, write: Any, **kwargs: Any) -> Any:
    """``lane.run`` (``sync``) or ``lane.run_async`` with a coroutine ``write`` (``async``)."""
    if mode == "sync":
        return lane.run(entity, write, **kwargs)

    async def awrite(attempt: writelane.Attempt) -> Any:
        await asyncio.sleep(0)
        return write(attempt)

    return asyncio.run(lane.run_async(entity, awrite, **kwargs))


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("a_reads", [True, False], ids=["a-reads", "a-no-read"])
def test_a_reported_token_is_handed_to_the_next_writer_without_a_read(mode: str, a_reads: bool) -> None:
    lane = writelane.Lane(NO_JITTER, seed=1)
    reads: List[str] = []

    def read() -> str:
        reads.append("read")
        return "t0"

    def write_a(attempt: writelane.Attempt) -> Optional[str]:
        attempt.set_token("t1")
        return attempt.token

    assert run_mode(lane, mode, "role/a", write_a, read=read if a_reads else None) == "t1"
    assert reads == (["read"] if a_reads else [])
    del reads[:]
    assert lane.stats()["entities"]["role/a"]["committed_token"] == "t1"
    # B finds the token A reported: it writes on it at once, without calling read.
    assert run_mode(lane, mode, "role/a", lambda a: (a.number, a.base_token), read=read) == (1, "t1")
    assert reads == []
    # B reported nothing: the next writer reads first.
    assert run_mode(lane, mode, "role/a", lambda a: a.base_token, read=read) == "t0"
    assert reads == ["read"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_only_the_token_of_the_attempt_that_landed_counts(mode: str) -> None:
    lane = writelane.Lane(NO_JITTER, seed=1)
    reads: List[str] = []

    def read() -> str:
        reads.append("read")
        return "t0"

    def write(attempt: writelane.Attempt) -> int:
        if attempt.number == 1:
            attempt.set_token("never-written")
            raise client_error("ConcurrentModification", 409)
        attempt.set_token("first")
        attempt.set_token("t2")  # the last report wins
        return attempt.number

    assert run_mode(lane, mode, "role/a", write, read=read) == 2
    assert reads == ["read", "read"]
    # The token of a write that failed is dropped: the last commit's stands.
    with pytest.raises(writelane.GaveUp):
        run_mode(lane, mode, "role/a", lambda a: (a.set_token("t3"), 1 / 0), read=read)
    assert run_mode(lane, mode, "role/a", lambda a: a.base_token, read=read) == "t2"
    assert reads == ["read", "read"]
