"""Bad input gets a typed error naming the field; failures are typed and chained; an
interrupted write releases its entity's lane."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from typing import Any, List, Optional

import pytest

import writelane

FAST = {"preset": "iam", "retry": {"conflict": {"base_ms": 1, "cap_ms": 2, "jitter": "none"}}}


class Conflicted(Exception):
    """A stand-in for a conflict raised by a non-AWS client."""


def conflict_classifier(exc: BaseException) -> Optional[str]:
    return "ConcurrentModification" if isinstance(exc, Conflicted) else None


# -- policies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build, path",
    [
        (lambda: writelane.Policy.from_json("{not json"), "$"),
        (lambda: writelane.Lane("{\"preset\": "), "$"),
        (lambda: writelane.Lane("no-such-preset"), "preset"),
        (lambda: writelane.Policy.preset("nope"), "preset"),
        (lambda: writelane.Policy.preset("iam", retry={"conflict": {"base_ms": -1}}), "retry.conflict.base_ms"),
        (lambda: writelane.Policy.preset("iam", deadline_ms=-5), "deadline_ms"),
        (lambda: writelane.Policy.preset("iam", deadline_ms="soon"), "deadline_ms"),
        (lambda: writelane.Policy.preset("iam", budget={"capacity": 1.5}), "budget.capacity"),
        (lambda: writelane.Policy.preset("iam", retry={"conflict": {"jitter": "lots"}}), "retry.conflict.jitter"),
        (lambda: writelane.Policy.preset("iam", bogus=1), "bogus"),
        (lambda: writelane.Policy.preset(5), "preset"),  # type: ignore[arg-type]
        (lambda: writelane.Policy.from_dict({"deadline_ms": object()}), "deadline_ms"),
        (lambda: writelane.Policy.from_dict([1, 2]), "$"),  # type: ignore[arg-type]
        (lambda: writelane.Lane(42), "policy"),  # type: ignore[arg-type]
        (lambda: writelane.Lane(seed=-1), "seed"),
        (lambda: writelane.Lane(seed="x"), "seed"),  # type: ignore[arg-type]
        (lambda: writelane.RetryStrategy("iam", seed=2**64), "seed"),
        (lambda: writelane.RetryStrategy({"preset": "aws-standard", "budget": {"cost": {"throttle": -5}}}), None),
        (lambda: writelane.Engine({"lanes": {"mode": "sideways"}}), "lanes.mode"),
    ],
)
def test_bad_policy_is_a_policy_error_naming_the_field(build: Any, path: Optional[str]) -> None:
    with pytest.raises(writelane.PolicyError) as info:
        build()
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, writelane.Error)
    if path is not None:
        assert err.path == path
        assert f"`{path}`" in str(err)
    assert err.rule


def test_policy_round_trip() -> None:
    p = writelane.Policy.preset("iam", deadline_ms=30_000)
    assert writelane.Policy.from_json(p.to_json()) == p
    assert p.to_dict()["deadline_ms"] == 30_000 and p.name == "iam"
    assert writelane.Lane(p).policy == p
    assert writelane.Lane({"preset": "iam", "deadline_ms": 30_000}).policy == p
    assert writelane.Lane('"aws-standard"').policy == writelane.Policy.preset("aws-standard")
    assert set(writelane.PRESETS) == {"iam", "aws-standard"}


# -- run arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, kind, field",
    [
        ({"entity": 5}, "invalid_argument", "entity"),
        ({"entity": ""}, "invalid_entity", None),
        ({"entity": "x" * 5000}, "invalid_entity", None),
        ({"write": "not callable"}, "invalid_argument", "write"),
        ({"read": 3}, "invalid_argument", "read"),
        ({"expected": "v1"}, "expected_needs_read", "expected"),
        ({"expected": 1, "read": lambda: None}, "invalid_argument", "expected"),
        ({"deadline_ms": -1}, "invalid_argument", "deadline_ms"),
        ({"deadline_ms": 1.5}, "invalid_argument", "deadline_ms"),
        ({"deadline_ms": True}, "invalid_argument", "deadline_ms"),
        ({"entity": "role/\ud800"}, "invalid_argument", "entity"),
        ({"read": lambda: "v\udc00"}, "invalid_argument", "read"),
    ],
)
def test_bad_run_arguments_are_usage_errors(kwargs: Any, kind: str, field: Optional[str]) -> None:
    lane = writelane.Lane(seed=1)
    args = {"entity": "role/a", "write": lambda a: None, **kwargs}
    entity, write = args.pop("entity"), args.pop("write")
    with pytest.raises(writelane.UsageError) as info:
        lane.run(entity, write, **args)
    assert info.value.kind == kind
    if field:
        assert str(info.value).startswith(field)
    assert lane.stats()["active_ops"] == 0
    assert lane.run("role/a", lambda a: "fine") == "fine", "nothing was left holding a lane"


def test_read_returning_a_non_token_is_refused_and_releases_the_lane() -> None:
    lane = writelane.Lane(seed=1)
    with pytest.raises(writelane.UsageError):
        lane.run("role/a", lambda a: None, read=lambda: 42)  # type: ignore[arg-type, return-value]
    assert lane.run("role/a", lambda a: 7, read=lambda: "v1") == 7


@pytest.mark.parametrize(
    "token, kind",
    [
        (1, "invalid_argument"),
        (None, "invalid_argument"),
        (b"t1", "invalid_argument"),
        ("t\ud800", "invalid_argument"),
        ("x" * 1025, "invalid_token"),
    ],
)
def test_set_token_with_a_non_token_is_a_usage_error_and_releases_the_lane(token: Any, kind: str) -> None:
    attempt = writelane.Attempt(1, None, "role/a")
    with pytest.raises(writelane.UsageError) as info:
        attempt.set_token(token)
    assert info.value.kind == kind and str(info.value).startswith("token")
    assert attempt.token is None
    lane = writelane.Lane(seed=1)

    def write(a: writelane.Attempt) -> None:
        a.set_token(token)

    async def awrite(a: writelane.Attempt) -> None:
        a.set_token(token)

    # Misuse propagates as it is, from the write called at submit, from the driver's
    # loop (after a read) and from the asyncio driver; no run holds the lane afterwards.
    for run in (
        lambda: lane.run("role/a", write),
        lambda: lane.run("role/a", write, read=lambda: "v1"),
        lambda: asyncio.run(lane.run_async("role/a", awrite)),
    ):
        with pytest.raises(writelane.UsageError) as info:
            run()
        assert info.value.kind == kind
        assert lane.stats()["active_ops"] == 0
    assert lane.stats()["global"]["committed"] == 0
    assert lane.run("role/a", lambda a: "fine", read=lambda: "v1") == "fine"


def test_set_token_takes_a_token_up_to_the_engine_limit() -> None:
    attempt = writelane.Attempt(1, None, "role/a")
    attempt.set_token("x" * 1024)
    assert attempt.token == "x" * 1024


# -- failures --------------------------------------------------------------------------------


def test_non_aws_exception_is_fatal_and_chained() -> None:
    lane = writelane.Lane(seed=1)
    boom = KeyError("missing")

    def write(attempt: writelane.Attempt) -> None:
        raise boom

    with pytest.raises(writelane.GaveUp) as info:
        lane.run("role/a", write)
    err = info.value
    assert err.reason == "fatal" and err.attempts == 1
    assert err.last_error is boom and err.__cause__ is boom
    assert lane.stats()["global"]["gave_up"] == 1


def test_classify_makes_a_custom_exception_retryable() -> None:
    lane = writelane.Lane(FAST, seed=1, classify=conflict_classifier)
    calls: List[int] = []

    def write(attempt: writelane.Attempt) -> int:
        calls.append(attempt.number)
        if attempt.number < 3:
            raise Conflicted()
        return attempt.number

    assert lane.run("role/a", write, read=lambda: "v1") == 3
    assert calls == [1, 2, 3]
    for verdict in (writelane.ErrorClass.CONFLICT, "conflict", writelane.Failure(code="ConcurrentModification", status=409)):
        calls.clear()
        assert lane.run("role/b", write, classify=lambda e, v=verdict: v) == 3  # type: ignore[misc]
    with pytest.raises(writelane.GaveUp) as info:
        lane.run("role/c", write, classify=lambda e: writelane.ErrorClass.FATAL)
    assert info.value.reason == "fatal"


def test_attempts_exhausted() -> None:
    lane = writelane.Lane({**FAST, "retry": {"conflict": {"base_ms": 1, "cap_ms": 1, "max_attempts": 3}}}, seed=1)

    def write(attempt: writelane.Attempt) -> None:
        raise Conflicted()

    with pytest.raises(writelane.GaveUp) as info:
        lane.run("role/a", write, classify=conflict_classifier)
    err = info.value
    assert (err.reason, err.attempts, err.code, err.error_class) == ("attempts_exhausted", 3, "ConcurrentModification", "conflict")
    assert isinstance(err.__cause__, Conflicted)


def test_stale_revision() -> None:
    lane = writelane.Lane(seed=1)
    with pytest.raises(writelane.StaleRevision) as info:
        lane.run("role/a", lambda a: None, read=lambda: "v2", expected="v1")
    assert (info.value.expected, info.value.found) == ("v1", "v2")
    assert lane.run("role/a", lambda a: a.base_token, read=lambda: "v2", expected="v2") == "v2"


def test_deadline_exceeded() -> None:
    lane = writelane.Lane({"preset": "iam", "retry": {"conflict": {"base_ms": 500, "cap_ms": 500, "jitter": "none"}}}, seed=1)
    t0 = time.monotonic()
    with pytest.raises(writelane.GaveUp) as info:
        lane.run("role/a", lambda a: (_ for _ in ()).throw(Conflicted()), classify=conflict_classifier, deadline_ms=100)
    assert info.value.reason == "deadline_exceeded"
    assert time.monotonic() - t0 < 0.4, "refused at once, not after sleeping"


def test_engine_misuse_is_a_usage_error() -> None:
    e = writelane.Engine(seed=1)
    with pytest.raises(writelane.UsageError) as info:
        e.handle(0, {"type": "read_done", "op": 99})
    assert info.value.kind == "unknown_op"
    with pytest.raises(writelane.UsageError) as info:
        e.handle(0, {"type": "bogus", "op": 1})
    assert info.value.kind == "invalid_input"
    with pytest.raises(writelane.UsageError) as info:
        e.import_state({"version": 99})
    assert info.value.kind == "invalid_state"
    with pytest.raises(writelane.UsageError):
        e.submit("role/a", -1)
    with pytest.raises(writelane.TokenError) as tinfo:
        writelane.policy_token("{\"Statement\": [], \"Statement\": []}")
    assert isinstance(tinfo.value, ValueError)
    with pytest.raises(writelane.TokenError):
        writelane.policy_token(12)


def test_policy_token_forms_agree() -> None:
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
    import json
    from urllib.parse import quote

    text = json.dumps(doc)
    token = writelane.policy_token(text)
    assert token.startswith("c1:sha256:")
    assert writelane.policy_token(doc) == token
    assert writelane.policy_token(quote(text)) == token
    assert writelane.policy_token(json.dumps({**doc, "Statement": doc["Statement"][0]})) == token


# -- interrupts ------------------------------------------------------------------------------


@pytest.fixture
def ctrl_c_raises() -> Any:
    """SIGINT raises KeyboardInterrupt, as at a terminal. A shell starting the tests as a
    background job (`cmd &` without job control) makes SIGINT ignored, and Python then
    installs no handler of its own."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_keyboard_interrupt_during_backoff_releases_the_lane(ctrl_c_raises: None) -> None:
    policy = {"preset": "iam", "retry": {"conflict": {"base_ms": 3000, "cap_ms": 3000, "jitter": "none"}}}
    lane = writelane.Lane(policy, seed=1, classify=conflict_classifier)
    entity = "role/interrupted"
    in_backoff = threading.Event()
    other_done: List[float] = []

    def failing(attempt: writelane.Attempt) -> None:
        in_backoff.set()
        raise Conflicted()

    def other() -> None:
        in_backoff.wait(5)
        lane.run(entity, lambda a: None)
        other_done.append(time.monotonic())

    worker = threading.Thread(target=other)
    worker.start()
    main = threading.main_thread().ident
    assert main is not None
    # Ctrl-C: SIGINT delivered to the main thread while it waits out the back-off.
    timer = threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT))
    started = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        lane.run(entity, failing)
    interrupted = time.monotonic()
    assert interrupted - started < 2.0, "the back-off was interrupted, not slept through"
    worker.join(5)
    assert not worker.is_alive(), "the other thread was not starved"
    assert other_done and other_done[0] - interrupted < 1.0
    g = lane.stats()["global"]
    assert (g["committed"], g["gave_up"]) == (1, 1)
    assert any(e.type == "gave_up" and e.to_dict()["reason"] == "cancelled" for e in lane.events())


def test_keyboard_interrupt_inside_write_releases_the_lane() -> None:
    lane = writelane.Lane(seed=1)

    def write(attempt: writelane.Attempt) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lane.run("role/a", write)
    assert lane.stats()["entities"]["role/a"]["busy"] is False
    assert lane.run("role/a", lambda a: 1) == 1
