"""Real boto3 against the local IAM contention lab: lost updates without writelane, none
with it."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from typing import Any, Dict, List, Optional

import pytest
from botocore.exceptions import ClientError

import writelane
import writelane.botocore
from conftest import Lab

THREADS = 8
ROUNDS = 5
POLICY_NAME = "appended"


def _statement(sid: str) -> Dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::b/{sid}"}


def _document(client: Any, role: str) -> Optional[Dict[str, Any]]:
    try:
        doc = client.get_role_policy(RoleName=role, PolicyName=POLICY_NAME)["PolicyDocument"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NoSuchEntity":
            return None
        raise
    if isinstance(doc, str):
        doc = json.loads(doc)
    return doc  # type: ignore[no-any-return]


def _append(client: Any, role: str, sid: str) -> None:
    """One read-modify-write of the role's inline policy."""
    doc = _document(client, role) or {"Version": "2012-10-17", "Statement": []}
    statements = doc["Statement"]
    if isinstance(statements, dict):
        statements = [statements]
    statements.append(_statement(sid))
    doc["Statement"] = statements
    client.put_role_policy(RoleName=role, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(doc))


def _sids(client: Any, role: str) -> List[str]:
    doc = _document(client, role) or {"Statement": []}
    statements = doc["Statement"]
    if isinstance(statements, dict):
        statements = [statements]
    return sorted(s["Sid"] for s in statements)


def _expected() -> List[str]:
    return sorted(f"T{t}N{n}" for t in range(THREADS) for n in range(ROUNDS))


def _new_role(lab: Lab, name: str) -> Any:
    client = lab.client()
    client.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    lab.reset()
    return client


def _threads(target: Any) -> None:
    barrier = threading.Barrier(THREADS)
    errors: List[BaseException] = []

    def body(t: int) -> None:
        barrier.wait()
        try:
            target(t)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors, errors


def test_without_writelane_updates_are_lost(lab: Lab) -> None:
    role = "naive"
    client = _new_role(lab, role)
    rng = random.Random(7)

    def writer(t: int) -> None:
        for n in range(ROUNDS):
            for _ in range(20):  # the usual hand-written retry loop
                try:
                    _append(client, role, f"T{t}N{n}")
                    break
                except ClientError as exc:
                    if exc.response["Error"]["Code"] != "ConcurrentModification":
                        raise
                    time.sleep(rng.uniform(0.001, 0.01))

    _threads(writer)
    stats = lab.stats()
    assert stats["conflicts"] > 0, stats
    sids = _sids(client, role)
    assert len(sids) < THREADS * ROUNDS, "the lab should lose updates without a discipline"


def test_shared_lane_loses_nothing(lab: Lab) -> None:
    role = "laned"
    client = _new_role(lab, role)
    lane = writelane.Lane("iam", seed=1)
    entity = f"role/{role}"

    def read() -> Optional[str]:
        doc = _document(client, role)
        return None if doc is None else writelane.policy_token(doc)

    def writer(t: int) -> None:
        for n in range(ROUNDS):
            lane.run(entity, lambda attempt: _append(client, role, f"T{t}N{n}"), read=read)

    _threads(writer)
    stats = lab.stats()
    assert stats["conflicts"] == 0, stats
    assert stats["entities"][entity]["writes"] == THREADS * ROUNDS
    assert _sids(client, role) == _expected()
    g = lane.stats()["global"]
    assert g["committed"] == THREADS * ROUNDS and g["gave_up"] == 0 and g["conflicts"] == 0
    assert g["lane_waits"] > 0, "the threads really contended for the lane"


def test_shared_lane_async_loses_nothing(lab: Lab) -> None:
    role = "laned-async"
    client = _new_role(lab, role)
    lane = writelane.Lane("iam", seed=2)
    entity = f"role/{role}"

    async def read() -> Optional[str]:
        doc = await asyncio.to_thread(_document, client, role)
        return None if doc is None else writelane.policy_token(doc)

    async def writer(t: int) -> None:
        for n in range(ROUNDS):

            async def write(attempt: writelane.Attempt) -> int:
                await asyncio.to_thread(_append, client, role, f"T{t}N{n}")
                return attempt.number

            await lane.run_async(entity, write, read=read)

    async def main() -> None:
        await asyncio.gather(*(writer(t) for t in range(THREADS)))

    asyncio.run(main())
    stats = lab.stats()
    assert stats["conflicts"] == 0, stats
    assert _sids(client, role) == _expected()
    assert lane.stats()["global"]["committed"] == THREADS * ROUNDS


def test_lane_retries_injected_conflicts_and_rereads(lab: Lab) -> None:
    role = "injected"
    client = _new_role(lab, role)
    lane = writelane.Lane({"preset": "iam", "retry": {"conflict": {"base_ms": 5, "cap_ms": 20}}}, seed=3)
    reads: List[int] = []

    def read() -> Optional[str]:
        reads.append(1)
        doc = _document(client, role)
        return None if doc is None else writelane.policy_token(doc)

    lab.post("/_lab/config", {"inject_conflicts": 2})
    attempts = lane.run(f"role/{role}", lambda a: (_append(client, role, "X"), a.number)[1], read=read)
    assert attempts == 3
    assert len(reads) == 3, "one read before the first write and before each retry"
    assert lab.stats()["conflicts"] == 2
    kinds = [e.type for e in lane.events()]
    assert kinds.count("conflict") == 2 and kinds.count("retry_scheduled") == 2 and kinds[-1] == "committed"


def test_lane_gives_up_with_the_client_error(lab: Lab) -> None:
    client = lab.client()
    lane = writelane.Lane("iam", seed=4)
    with pytest.raises(writelane.GaveUp) as info:
        lane.run("role/absent", lambda a: client.put_role_policy(
            RoleName="absent", PolicyName="p", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [_statement("A")]})))
    err = info.value
    assert err.reason == "fatal" and err.code == "NoSuchEntity" and err.attempts == 1
    assert isinstance(err.last_error, ClientError) and err.__cause__ is err.last_error


def test_botocore_install_retries_conflicts(lab: Lab) -> None:
    role = "hooked"
    client = _new_role(lab, role)
    lab.post("/_lab/config", {"inject_conflicts": 2})
    with pytest.raises(ClientError):
        client.tag_role(RoleName=role, Tags=[{"Key": "k", "Value": "v"}])
    hook = writelane.botocore.install(client, {"preset": "iam", "retry": {"conflict": {"base_ms": 5, "cap_ms": 20}}})
    client.tag_role(RoleName=role, Tags=[{"Key": "k", "Value": "v"}])
    assert hook.retries == 1
    assert lab.stats()["conflicts"] == 2
    # A fatal error is not retried and reaches the caller unchanged.
    with pytest.raises(ClientError) as info:
        client.get_role(RoleName="nobody")
    assert info.value.response["Error"]["Code"] == "NoSuchEntity"
    assert hook.refusals.get("not_retryable") == 1
    # Budgets: an exhausted budget refuses the retry and the conflict reaches the caller.
    lab.post("/_lab/config", {"inject_conflicts": 50})
    tight = writelane.botocore.install(
        lab.client(), {"preset": "iam", "budget": {"capacity": 10, "initial": 10},
                       "retry": {"conflict": {"base_ms": 1, "cap_ms": 2}}})
    with pytest.raises(ClientError) as info:
        tight.client.tag_role(RoleName=role, Tags=[{"Key": "k", "Value": "v"}])
    assert info.value.response["Error"]["Code"] == "ConcurrentModification"
    assert tight.refusals == {"budget_exhausted": 1} and tight.retries == 2
    assert tight.strategy.capacity("iam") < 5
    lab.post("/_lab/reset", {})
