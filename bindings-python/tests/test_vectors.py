"""Every conformance vector in tests/vectors (and the shared-lane vectors while they wait
in tests/vectors-lease), run through the Python API."""

from __future__ import annotations

import glob
import json
import os
from typing import Any, Dict, List

import pytest

import writelane
from conftest import VECTORS

LEASE_VECTORS = os.path.join(os.path.dirname(VECTORS), "vectors-lease")
FILES = sorted(glob.glob(os.path.join(VECTORS, "*.json"))) + sorted(
    glob.glob(os.path.join(LEASE_VECTORS, "*.json"))
)


def test_vectors_exist() -> None:
    assert len(FILES) > 0, f"no conformance vectors found in {VECTORS}"


def _load(path: str) -> Dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)  # type: ignore[no-any-return]


def _drain(engine: writelane.Engine) -> Dict[str, Any]:
    commands: List[Any] = []
    while (cmd := engine.poll_command()) is not None:
        commands.append(cmd)
    events: List[Any] = []
    while (ev := engine.poll_event()) is not None:
        events.append(ev)
    return {"commands": commands, "events": events, "next_timeout": engine.poll_timeout()}


def run_engine(v: Dict[str, Any]) -> None:
    engine = writelane.Engine(json.dumps(v["policy"]), seed=v["seed"], owner=v.get("owner"))
    if "import_state" in v:
        engine.import_state(v["import_state"])
    for i, step in enumerate(v["steps"]):
        at = step["at"]
        error = None
        try:
            if "submit" in step:
                s = step["submit"]
                op = engine.submit(
                    s["entity"],
                    at,
                    expected=s.get("expected"),
                    deadline_ms=s.get("deadline_ms"),
                    holder=s.get("holder"),
                    no_read=s.get("no_read", False),
                )
                assert op == step.get("op"), f"step {i}: op id"
            elif "input" in step:
                engine.handle(at, step["input"])
            elif step.get("timeout"):
                engine.handle_timeout(at)
            else:
                raise AssertionError(f"step {i}: no action in {step}")
        except writelane.UsageError as exc:
            error = exc.kind
        assert error == step.get("error"), f"step {i}: error"
        got = _drain(engine)
        assert got["commands"] == step["commands"], f"step {i}: commands"
        assert got["events"] == step["events"], f"step {i}: events"
        assert got["next_timeout"] == step["next_timeout"], f"step {i}: next_timeout"
    stats = engine.stats()
    assert {"global": stats["global"], "budget": stats["budget"]} == v["final_stats"]


def run_strategy(v: Dict[str, Any]) -> None:
    strategy = writelane.RetryStrategy(json.dumps(v["policy"]), seed=v["seed"])
    tokens: Dict[str, Any] = {}
    for i, step in enumerate(v["steps"]):
        at = step["at"]
        if "acquire" in step:
            a = step["acquire"]
            tokens[a["token"]] = strategy.acquire(a["scope"], now_ms=at)
        elif "refresh" in step:
            r = step["refresh"]
            f = r["failure"]
            try:
                plan = strategy.refresh_plan(
                    tokens[r["token"]],
                    code=f.get("code"),
                    status=f.get("status"),
                    retry_after_ms=f.get("retry_after_ms"),
                    unknown_outcome=f.get("outcome_unknown", False),
                    now_ms=at,
                )
                got: Dict[str, Any] = {"delay_ms": plan.delay_ms, "cost": plan.cost, "class": plan.error_class}
            except writelane.RetryRefused as exc:
                got = {"refused": exc.reason}
            assert got == step["result"], f"step {i}: result"
        elif "success" in step:
            strategy.record_success(tokens[step["success"]["token"]])
        else:
            raise AssertionError(f"step {i}: no action in {step}")
        cap = step["capacity"]
        assert strategy.capacity(cap["scope"]) == cap["level"], f"step {i}: capacity"


def run_policy_error(v: Dict[str, Any]) -> None:
    with pytest.raises(writelane.PolicyError) as info:
        writelane.Policy.from_json(json.dumps(v["policy"]))
    assert info.value.path == v["error"]["path"]
    assert v["error"]["rule"] in str(info.value)
    # The same refusal through every door that takes a policy.
    with pytest.raises(writelane.PolicyError) as info2:
        writelane.Lane(json.dumps(v["policy"]))
    assert info2.value.path == v["error"]["path"]


def run_token(v: Dict[str, Any]) -> None:
    if "token" in v:
        assert writelane.policy_token(v["document"]) == v["token"]
    else:
        with pytest.raises(writelane.TokenError) as info:
            writelane.policy_token(v["document"])
        assert info.value.path == v["error"]["path"]


RUNNERS = {
    "engine": run_engine,
    "strategy": run_strategy,
    "policy_error": run_policy_error,
    "token": run_token,
}


@pytest.mark.parametrize("path", FILES, ids=[os.path.relpath(p, os.path.dirname(VECTORS)) for p in FILES])
def test_vector(path: str) -> None:
    v = _load(path)
    RUNNERS[v["kind"]](v)
