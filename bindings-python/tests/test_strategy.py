"""RetryStrategy("aws-standard") against the AWS SDK standard retry rules, step by step."""

from __future__ import annotations

from typing import Any, Dict

import pytest

import writelane

NO_JITTER: Dict[str, Any] = {
    "preset": "aws-standard",
    "retry": {c: {"jitter": "none"} for c in ("conflict", "throttle", "transient", "unknown")},
}


def strategy(**overrides: Any) -> writelane.RetryStrategy:
    policy = {**NO_JITTER, **overrides}
    if "retry" in overrides:
        policy["retry"] = {c: {"jitter": "none", **overrides["retry"].get(c, {})} for c in NO_JITTER["retry"]}
    return writelane.RetryStrategy(policy, seed=0)


def test_transient_steps_quota_and_refund() -> None:
    s = strategy()
    assert s.capacity("iam") == 500
    t = s.acquire("iam", now_ms=0)
    assert t.attempts == 1
    assert s.refresh(t, code="InternalFailure", status=500, now_ms=0) == 50
    assert s.capacity("iam") == 486
    assert s.refresh(t, code="InternalFailure", status=500, now_ms=50) == 100
    assert s.capacity("iam") == 472
    with pytest.raises(writelane.RetryRefused) as info:
        s.refresh(t, code="InternalFailure", status=500, now_ms=150)
    assert info.value.reason == "attempts_exhausted"
    assert s.capacity("iam") == 472, "a refusal charges nothing"
    assert t.attempts == 3, "max attempts 3"
    s.record_success(t)
    assert s.capacity("iam") == 486, "success refunds the last retry's cost"


def test_throttling_base_one_second_costs_five() -> None:
    s = strategy()
    t = s.acquire("x", now_ms=0)
    plan = s.refresh_plan(t, code="Throttling", status=400, now_ms=0)
    assert plan == writelane.RetryPlan(1000, 5, "throttle")
    assert s.refresh(t, code="ThrottlingException", status=400, now_ms=1000) == 2000
    assert s.capacity("x") == 490


def test_delay_doubles_up_to_the_20s_cap() -> None:
    s = strategy(retry={"throttle": {"max_attempts": 10}, "transient": {"max_attempts": 12}})
    t = s.acquire("x", now_ms=0)
    delays = [s.refresh(t, status=429, now_ms=0) for _ in range(9)]
    assert delays == [min(1000 * 2**i, 20_000) for i in range(9)]
    u = s.acquire("y", now_ms=0)
    delays = [s.refresh(u, code="ServiceUnavailable", now_ms=0) for _ in range(11)]
    assert delays == [min(50 * 2**i, 20_000) for i in range(11)]


def test_first_try_success_adds_one_up_to_capacity() -> None:
    s = strategy(budget={"initial": 100})
    t = s.acquire("x", now_ms=0)
    s.record_success(t)
    assert s.capacity("x") == 101
    full = strategy()
    full.record_success(full.acquire("x", now_ms=0))
    assert full.capacity("x") == 500, "never above the quota"


def test_quota_drains_and_refusal_is_free() -> None:
    s = strategy(budget={"initial": 20})
    t = s.acquire("x", now_ms=0)
    assert s.refresh(t, code="InternalError", now_ms=0) == 50
    assert s.capacity("x") == 6
    with pytest.raises(writelane.RetryRefused) as info:
        s.refresh(t, code="InternalError", now_ms=50)
    assert info.value.reason == "budget_exhausted"
    assert info.value.detail["needed"] == 14 and info.value.detail["available"] == 6
    assert s.capacity("x") == 6
    # A throttling retry costs only 5 and still fits.
    u = s.acquire("x", now_ms=60)
    assert s.refresh(u, code="Throttling", now_ms=60) == 1000
    assert s.capacity("x") == 1


def test_not_retryable_is_refused_and_free() -> None:
    s = strategy()
    t = s.acquire("x", now_ms=0)
    for kwargs in ({"code": "AccessDenied", "status": 403}, {"status": 404}, {"code": "LimitExceeded", "status": 409}):
        with pytest.raises(writelane.RetryRefused) as info:
            s.refresh(t, now_ms=0, **kwargs)  # type: ignore[arg-type]
        assert info.value.reason == "not_retryable"
    assert s.capacity("x") == 500


def test_scopes_have_separate_quotas() -> None:
    s = strategy()
    s.refresh(s.acquire("a", now_ms=0), code="InternalError", now_ms=0)
    assert (s.capacity("a"), s.capacity("b")) == (486, 500)


def test_retry_after_hint_is_honoured_and_clamped() -> None:
    s = strategy()
    t = s.acquire("x", now_ms=0)
    assert s.refresh(t, code="InternalError", retry_after_ms="300", now_ms=0) == 300
    assert s.refresh(t, code="InternalError", retry_after_ms=60_000, now_ms=300) == 100 + 5000
    u = s.acquire("x", now_ms=400)
    assert s.refresh(u, code="InternalError", retry_after_ms="soon", now_ms=400) == 50, "text that is not ms is ignored"


def test_full_jitter_stays_under_the_ceiling() -> None:
    s = writelane.RetryStrategy("aws-standard", seed=5)
    seen = set()
    for i in range(200):
        t = s.acquire(f"s{i % 50}", now_ms=0)
        d = s.refresh(t, code="InternalError", now_ms=0)
        assert 0 <= d <= 50
        seen.add(d)
        s.record_success(t)
    assert len(seen) > 10, "delays are jittered"


def test_iam_retries_conflicts() -> None:
    iam = writelane.RetryStrategy("iam", seed=1)
    assert iam.refresh(iam.acquire(), code="ConcurrentModification", status=409) >= 0


def test_unknown_outcome_and_clock() -> None:
    s = writelane.RetryStrategy(writelane.Policy.preset("aws-standard"), seed=3)
    t = s.acquire()
    d = s.refresh(t, unknown_outcome=True)
    assert 0 <= d <= 50
    with pytest.raises(writelane.UsageError) as info:
        s.acquire("x", now_ms=-1)
    assert info.value.kind == "invalid_argument" and "now_ms" in str(info.value)
    c = writelane.RetryStrategy("aws-standard")
    c.acquire("x", now_ms=100)
    with pytest.raises(writelane.UsageError) as info:
        c.acquire("x", now_ms=50)
    assert info.value.kind == "time_went_backwards"
