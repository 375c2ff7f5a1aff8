"""`Lane.update` and `update_async` (group commit): batches through one lane, a refused
change, misuse, the `writelane.iam` helpers, and end to end against the IAM lab (8 threads
and 8 tasks x 5 appends of a statement to one role's inline policy)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import pytest
from botocore.exceptions import ClientError
from conftest import Lab

import writelane
from writelane import iam

THREADS = 8
ROUNDS = 5
POLICY_NAME = "grouped"


class Store:
    """An in-memory document with a token; every write takes ``write_s`` seconds, so that
    updates queue behind it. ``max_items``: a longer document is refused as IAM refuses a
    policy over its size limit."""

    def __init__(self, write_s: float = 0.02, max_items: Optional[int] = None) -> None:
        self.items: List[str] = []
        self.version = 0
        self.writes = 0
        self.reads = 0
        self.write_s, self.max_items = write_s, max_items
        self.lock = threading.Lock()

    def read(self) -> Tuple[List[str], str]:
        with self.lock:
            self.reads += 1
            return list(self.items), f"v{self.version}"

    def write(self, doc: List[str], attempt: writelane.Attempt) -> None:
        time.sleep(self.write_s)
        with self.lock:
            assert attempt.base_token == f"v{self.version}", "a batch writes on what it read"
            self.writes += 1
            if self.max_items is not None and len(doc) > self.max_items:
                raise ClientError({"Error": {"Code": "LimitExceeded", "Message": "too large"},
                                   "ResponseMetadata": {"HTTPStatusCode": 409}}, "PutRolePolicy")
            self.items = list(doc)
            self.version += 1
            attempt.set_token(f"v{self.version}")


def add(item: str) -> Any:
    return lambda doc: doc if item in doc else doc + [item]


def run_threads(n: int, body: Any) -> List[BaseException]:
    barrier = threading.Barrier(n)
    errors: List[BaseException] = []

    def main(t: int) -> None:
        barrier.wait()
        try:
            body(t)
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=main, args=(t,)) for t in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    return errors


def test_threads_batch_their_updates() -> None:
    store = Store()
    lane = writelane.Lane("iam", seed=1)
    tokens: Dict[str, Optional[str]] = {}

    def body(t: int) -> None:
        for n in range(ROUNDS):
            tokens[f"T{t}N{n}"] = lane.update("doc/1", read=store.read, change=add(f"T{t}N{n}"), write=store.write)

    assert run_threads(THREADS, body) == []
    assert sorted(store.items) == sorted(tokens) and len(store.items) == THREADS * ROUNDS
    assert store.writes < THREADS * ROUNDS // 2, f"{store.writes} writes: updates were not batched"
    assert set(tokens.values()) <= {f"v{i}" for i in range(1, store.version + 1)}
    g = lane.stats()["global"]
    assert g["committed"] == THREADS * ROUNDS and g["gave_up"] == 0 and g["conflicts"] == 0


def test_a_refused_change_fails_alone_with_its_own_exception() -> None:
    store = Store(write_s=0.05)
    lane = writelane.Lane("iam", seed=2)

    class Nope(Exception):
        pass

    def refuse(doc: List[str]) -> List[str]:
        raise Nope("not this one")

    results: Dict[int, Any] = {}

    def body(t: int) -> None:
        time.sleep(0.01 * t)  # 0 holds the lane; 1, 2, 3 queue behind it and batch
        change = refuse if t == 2 else add(str(t))
        try:
            results[t] = lane.update("doc/2", read=store.read, change=change, write=store.write)
        except writelane.GaveUp as exc:
            results[t] = exc

    assert run_threads(4, body) == []
    err = results[2]
    assert isinstance(err, writelane.GaveUp) and err.reason == "fatal" and err.code == "Nope"
    assert isinstance(err.__cause__, Nope) and err.last_error is err.__cause__
    assert sorted(store.items) == ["0", "1", "3"]
    assert results[0] == "v1" and results[3] == f"v{store.version}", results
    # The first update alone, then (unless a loaded machine started a thread late) the
    # three queued behind it in one write.
    assert store.writes <= 3, store.writes


def test_a_write_too_large_fails_only_the_change_that_breaks_it() -> None:
    store = Store(write_s=0.02, max_items=4)
    lane = writelane.Lane("iam", seed=3)
    results: Dict[int, Any] = {}

    def body(t: int) -> None:
        time.sleep(0.005 * t)
        try:
            results[t] = lane.update("doc/3", read=store.read, change=add(str(t)), write=store.write)
        except writelane.GaveUp as exc:
            results[t] = exc

    assert run_threads(6, body) == []
    failed = [t for t, r in results.items() if isinstance(r, writelane.GaveUp)]
    assert len(failed) == 2, results  # six items, at most four fit
    for t in failed:
        assert results[t].code == "LimitExceeded" and results[t].reason == "fatal"
        assert isinstance(results[t].last_error, ClientError)
    assert len(store.items) == 4 and not set(store.items) & {str(t) for t in failed}


def test_update_async_batches_tasks() -> None:
    store = Store(write_s=0)
    lane = writelane.Lane("iam", seed=4)

    async def read() -> Tuple[List[str], str]:
        return store.read()

    async def write(doc: List[str], attempt: writelane.Attempt) -> str:
        await asyncio.sleep(0.02)
        store.write(doc, attempt)
        return "ignored: set_token came first"

    async def writer(t: int) -> None:
        for n in range(ROUNDS):
            token = await lane.update_async("doc/4", read=read, change=add(f"T{t}N{n}"), write=write)
            assert token is not None and token.startswith("v")

    async def main() -> None:
        await asyncio.gather(*(writer(t) for t in range(THREADS)))

    asyncio.run(main())
    assert len(store.items) == THREADS * ROUNDS
    assert store.writes <= THREADS * ROUNDS // 2, store.writes


def test_write_may_return_its_token() -> None:
    lane = writelane.Lane("iam", seed=5)
    assert lane.update("doc/5", read=lambda: ([], None), change=add("x"), write=lambda doc, a: "t1") == "t1"
    assert lane.update("doc/5", read=lambda: ([], "t1"), change=add("y"), write=lambda doc, a: {"response": 1}) is None


def test_update_misuse_names_the_argument() -> None:
    lane = writelane.Lane("iam", seed=6)
    with pytest.raises(writelane.UsageError, match="change"):
        lane.update("e", read=lambda: ([], None), change=None, write=lambda d, a: None)  # type: ignore[arg-type]
    with pytest.raises(writelane.UsageError, match="read"):
        lane.update("e", read=None, change=add("x"), write=lambda d, a: None)  # type: ignore[arg-type]
    with pytest.raises(writelane.UsageError, match="read: an update's read must return"):
        lane.update("e", read=lambda: "v1", change=add("x"), write=lambda d, a: None)  # type: ignore[arg-type, return-value]
    with pytest.raises(writelane.UsageError, match="invalid_entity|entity"):
        lane.update("", read=lambda: ([], None), change=add("x"), write=lambda d, a: None)
    # The lane goes on after misuse.
    assert lane.update("e", read=lambda: ([], None), change=add("x"), write=lambda d, a: "t") == "t"
    assert lane.stats()["active_ops"] == 0


def test_batch_policy_fields() -> None:
    policy = writelane.Policy.from_dict({"preset": "iam", "batch": {"max_changes": 2, "linger_ms": 5}}).to_dict()
    assert policy["batch"] == {"max_changes": 2, "linger_ms": 5}
    with pytest.raises(writelane.PolicyError) as info:
        writelane.Policy.from_dict({"preset": "iam", "batch": {"max_changes": 0}})
    assert info.value.path == "batch.max_changes"


def test_max_changes_bounds_a_batch() -> None:
    store = Store(write_s=0.03)
    lane = writelane.Lane({"preset": "iam", "batch": {"max_changes": 2}}, seed=7)
    assert run_threads(6, lambda t: (time.sleep(0.002 * t), lane.update(
        "doc/6", read=store.read, change=add(str(t)), write=store.write))) == []
    assert len(store.items) == 6 and store.writes >= 3, store.writes  # 1, then batches of at most 2


# -- writelane.iam ------------------------------------------------------------------------

def _statement(sid: str) -> Dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::b/{sid}"}


def test_iam_helpers_wrap_the_core() -> None:
    doc = iam.put_statement(None, _statement("A"))
    assert doc == {"Version": "2012-10-17", "Statement": [_statement("A")]}
    assert iam.put_statement(doc, _statement("A")) == doc, "idempotent"
    doc = iam.put_statement(doc, _statement("B"))
    replaced = dict(_statement("A"), Action="s3:*")
    doc = iam.put_statement(doc, replaced)
    assert doc["Statement"] == [replaced, _statement("B")]
    assert iam.remove_statement(doc, "A")["Statement"] == [_statement("B")]
    trust = iam.add_trust_principal(None, "Trust", "Service", "lambda.amazonaws.com")
    trust = iam.add_trust_principal(trust, "Trust", "Service", "ec2.amazonaws.com")
    assert iam.add_trust_principal(trust, "Trust", "Service", "ec2.amazonaws.com") == trust
    assert trust["Statement"][0]["Principal"] == {"Service": ["lambda.amazonaws.com", "ec2.amazonaws.com"]}
    tags = iam.set_tags(None, {"team": "a", "env": "prod"})
    assert iam.set_tags(tags, [("team", "b")]) == [{"Key": "team", "Value": "b"}, {"Key": "env", "Value": "prod"}]
    assert doc["Statement"][1] == _statement("B") and _statement("B") == iam.put_statement(None, _statement("B"))["Statement"][0]


def test_iam_helpers_name_the_field() -> None:
    with pytest.raises(writelane.DocumentError) as info:
        iam.put_statement(None, {"Effect": "Allow"})
    assert info.value.path == "statement.Sid" and isinstance(info.value, ValueError)
    with pytest.raises(writelane.DocumentError) as info:
        iam.put_statement({"Statement": [1]}, _statement("A"))
    assert info.value.path == "Statement[0]"
    with pytest.raises(writelane.DocumentError) as info:
        iam.add_trust_principal(None, "T", "Root", "x")
    assert info.value.path == "kind"
    with pytest.raises(writelane.DocumentError) as info:
        iam.set_tags([{"Value": "x"}], {"a": "b"})
    assert info.value.path == "[0].Key"
    with pytest.raises(writelane.DocumentError) as info:
        iam.put_statement({"x": object()}, _statement("A"))
    assert info.value.path == "doc"


# -- end to end against the IAM lab -------------------------------------------------------

def _role(lab: Lab, name: str) -> Any:
    client = lab.client()
    client.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    client.put_role_policy(RoleName=name, PolicyName=POLICY_NAME,
                           PolicyDocument=json.dumps(iam.put_statement(None, _statement("Initial"))))
    lab.reset()
    return client


def _reader(client: Any, role: str) -> Any:
    def read() -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
        try:
            doc = client.get_role_policy(RoleName=role, PolicyName=POLICY_NAME)["PolicyDocument"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchEntity":
                return None, None
            raise
        doc = json.loads(doc) if isinstance(doc, str) else doc
        return doc, writelane.policy_token(doc)
    return read


def _writer(client: Any, role: str) -> Any:
    def write(doc: Dict[str, Any], attempt: writelane.Attempt) -> str:
        client.put_role_policy(RoleName=role, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(doc))
        return writelane.policy_token(doc)
    return write


def _check_lab(lab: Lab, client: Any, role: str, lane: writelane.Lane, label: str) -> None:
    stats = lab.stats()
    entity = stats["entities"][f"role/{role}"]
    sids = sorted(s["Sid"] for s in _reader(client, role)()[0]["Statement"])
    want = sorted(["Initial"] + [f"T{t}N{n}" for t in range(THREADS) for n in range(ROUNDS)])
    print(f"\n{label}: {len(sids)} statements, {stats['conflicts']} conflicts, {entity['writes']} IAM writes "
          f"for {THREADS * ROUNDS} updates (+1 initial put before the counters were reset)")
    assert sids == want
    assert stats["conflicts"] == 0, stats
    assert entity["writes"] <= 10, stats
    assert stats["writes"] == entity["writes"]
    g = lane.stats()["global"]
    assert g["committed"] == THREADS * ROUNDS and g["gave_up"] == 0 and g["conflicts"] == 0


def test_e2e_threads_append_through_update(lab: Lab) -> None:
    role = "grouped-threads"
    client = _role(lab, role)
    lane = writelane.Lane("iam", seed=11)
    read, write = _reader(client, role), _writer(client, role)

    def body(t: int) -> None:
        for n in range(ROUNDS):
            lane.update(f"role/{role}", read=read, change=iam.statement_putter(_statement(f"T{t}N{n}")), write=write)

    assert run_threads(THREADS, body) == []
    _check_lab(lab, client, role, lane, "python threads")


def test_e2e_tasks_append_through_update_async(lab: Lab) -> None:
    role = "grouped-tasks"
    client = _role(lab, role)
    lane = writelane.Lane("iam", seed=12)
    read, write = _reader(client, role), _writer(client, role)

    async def writer(t: int) -> None:
        for n in range(ROUNDS):
            await lane.update_async(f"role/{role}", read=lambda: asyncio.to_thread(read),
                                    change=iam.statement_putter(_statement(f"T{t}N{n}")),
                                    write=lambda doc, a: asyncio.to_thread(write, doc, a))

    async def main() -> None:
        await asyncio.gather(*(writer(t) for t in range(THREADS)))

    asyncio.run(main())
    _check_lab(lab, client, role, lane, "python tasks")


def test_engine_updates_with_poll_action() -> None:
    engine = writelane.Engine("iam", seed=1)
    first = engine.submit_update("role/a", 0)
    assert engine.poll_action() == {"type": "read", "op": first}
    second = engine.submit_update("role/a", 1, deadline_ms=5000)
    third = engine.submit_update("role/a", 2, holder="me")
    engine.handle(10, {"type": "read_done", "op": first, "token": "v0"})
    apply = engine.poll_action()
    assert apply == {"type": "apply", "op": first, "ops": [first, second, third]}
    assert engine.poll_command() is None, "poll_command never returns an apply"
    results = [{"op": first, "applied": True}, {"op": second, "applied": False, "code": "ValueError"},
               {"op": third, "applied": True}]
    with pytest.raises(writelane.UsageError) as info:
        engine.handle(10, {"type": "apply_done", "op": first, "results": results[:2]})
    assert info.value.kind == "unexpected_input"
    engine.handle(10, {"type": "apply_done", "op": first, "results": results})
    finished: Dict[int, Any] = {}
    write = None
    while (action := engine.poll_action()) is not None:
        if action["type"] == "finish":
            finished[action["op"]] = action["outcome"]
        else:
            write = action
    assert write is not None and write["type"] == "write" and write["op"] == first and write["base_token"] == "v0"
    assert finished[second]["status"] == "gave_up" and finished[second]["code"] == "ValueError"
    engine.handle(20, {"type": "write_done", "op": first, "token": "v1"})
    while (action := engine.poll_action_for(third) or engine.poll_action()) is not None:
        finished[action["op"]] = action["outcome"]
    assert finished[first] == finished[third] == {"status": "committed", "token": "v1", "attempts": 1}


def test_e2e_a_change_iam_refuses_fails_only_its_writer(lab: Lab) -> None:
    """One of eight changes makes the document one IAM refuses (fatal): the batch's write is
    bisected, that writer alone fails with IAM's own error, the other seven commit."""
    role = "grouped-malformed"
    client = _role(lab, role)
    lane = writelane.Lane("iam", seed=13)
    read, write = _reader(client, role), _writer(client, role)
    results: Dict[int, Any] = {}

    def body(t: int) -> None:
        statement = _statement(f"T{t}")
        if t == 5:
            statement["Effect"] = "Perhaps"  # IAM: MalformedPolicyDocument
        try:
            results[t] = lane.update(f"role/{role}", read=read, change=iam.statement_putter(statement), write=write)
        except writelane.GaveUp as exc:
            results[t] = exc

    assert run_threads(THREADS, body) == []
    err = results.pop(5)
    assert isinstance(err, writelane.GaveUp) and err.reason == "fatal" and err.code == "MalformedPolicyDocument", err
    assert isinstance(err.last_error, ClientError)
    assert all(isinstance(r, str) for r in results.values()), results
    sids = sorted(s["Sid"] for s in read()[0]["Statement"])
    assert sids == sorted(["Initial"] + [f"T{t}" for t in range(THREADS) if t != 5])
    stats = lab.stats()
    print(f"\npython malformed change: {stats['entities'][f'role/{role}']['writes']} IAM writes (those IAM refused "
          "while the batch was bisected among them), 7/7 other statements present")
    assert stats["conflicts"] == 0


def test_e2e_four_processes_on_a_shared_lease_each_batch_their_own_queue(lab: Lab, tmp_path: Any) -> None:
    """4 processes x 2 threads x 5 updates through a lease store (a file): each process
    batches its own queue under the lease; all 41 statements land, no conflict, fewer
    writes than updates."""
    import os
    import subprocess
    import sys

    from test_multiprocess import FAST

    role = "grouped-processes"
    client = _role(lab, role)
    here = os.path.dirname(os.path.abspath(__file__))
    start = time.time() + 3.0  # every process imported by then
    procs = [subprocess.Popen(
        [sys.executable, os.path.join(here, "updateworker.py"), json.dumps({
            "spec": {"kind": "file", "path": str(tmp_path / "leases.json")}, "endpoint": lab.endpoint, "role": role,
            "threads": 2, "count": ROUNDS, "id": i, "start": start, "policy": FAST})],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=here) for i in range(4)]
    done = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr[-3000:]
        done.append(json.loads(stdout.strip().splitlines()[-1]))
    assert all(d["gave_up"] == [] and d["committed"] == 2 * ROUNDS for d in done), done
    sids = sorted(s["Sid"] for s in _reader(client, role)()[0]["Statement"])
    assert sids == sorted(["Initial"] + [f"W{i}T{t}N{n}" for i in range(4) for t in range(2) for n in range(ROUNDS)])
    stats = lab.stats()
    writes = stats["entities"][f"role/{role}"]["writes"]
    print(f"\npython 4 processes x 2 threads x 5 updates on a shared lease: {len(sids)} statements, "
          f"{stats['conflicts']} conflicts, {writes} IAM writes for 40 updates")
    assert stats["conflicts"] == 0
    assert writes < 4 * 2 * ROUNDS, "each process batched its own queue"
