"""The lane middleware of ``writelane.botocore.install(client, lane=lane)`` with real
boto3 against the IAM lab: plain SDK calls serialised per entity, with no call-site
changes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.stub import Stubber

import writelane
import writelane.botocore
from conftest import Lab
from storekit import MotoServer, open_store

THREADS = 8
#: fast backoff so a test's retries cost milliseconds
FAST = {"retry": {"conflict": {"base_ms": 5, "cap_ms": 40}}}


def _client(lab: Lab) -> Any:
    return lab.client(config=Config(max_pool_connections=THREADS))


def _doc(sid: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": sid, "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})


def _together(n: int, target: Callable[[int], None]) -> List[BaseException]:
    barrier = threading.Barrier(n)
    errors: List[BaseException] = []

    def body(i: int) -> None:
        barrier.wait()
        try:
            target(i)
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def _role(lab: Lab, name: str) -> None:
    lab.client().create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))


def _put_eight(client: Any, role: str) -> List[BaseException]:
    return _together(THREADS, lambda i: client.put_role_policy(RoleName=role, PolicyName=f"P{i}", PolicyDocument=_doc(f"S{i}")))


def test_eight_threads_of_put_role_policy_are_serialised(lab: Lab) -> None:
    _role(lab, "mw-eight")
    # Without lanes (retries only), the eight writes collide at the lab.
    plain = _client(lab)
    writelane.botocore.install(plain, {"preset": "iam", **FAST})
    lab.reset()
    retry_failures = len(_put_eight(plain, "mw-eight"))
    retry_only = lab.stats()
    assert retry_only["conflicts"] > 0, retry_only
    # With lanes: one at a time, no conflict, no failure, one IAM write per call.
    lane = writelane.Lane(writelane.Policy.preset("iam", **FAST))
    client = _client(lab)
    hook = writelane.botocore.install(client, lane=lane)
    lab.reset()
    assert _put_eight(client, "mw-eight") == []
    stats = lab.stats()
    print(f"\npython 8 threads x put_role_policy on one role: retry only {retry_only['conflicts']} conflicts, "
          f"{retry_only['calls']} calls, {retry_failures} failures; with lanes {stats['conflicts']} conflicts, {stats['calls']} calls")
    assert stats["conflicts"] == 0 and stats["writes"] == THREADS and stats["calls"] == THREADS
    assert hook.serialised == THREADS and hook.unserialised == {}
    names = client.list_role_policies(RoleName="mw-eight")["PolicyNames"]
    assert sorted(names) == [f"P{i}" for i in range(THREADS)]
    entities = {e.entity for e in lane.events() if e.type == "submitted"}
    assert entities == {"role/mw-eight"}


def test_conflicts_are_retried_inside_the_lane(lab: Lab) -> None:
    _role(lab, "mw-retry")
    lane = writelane.Lane(writelane.Policy.preset("iam", **FAST))
    client = _client(lab)
    hook = writelane.botocore.install(client, lane=lane)
    lab.reset()
    lab.config(inject_conflicts=2)
    client.tag_role(RoleName="mw-retry", Tags=[{"Key": "k", "Value": "v"}])
    stats = lab.stats()
    assert stats["conflicts"] == 2 and stats["writes"] == 1
    # The lane retried (two conflicts in one op), botocore's loop did not.
    kinds = [e.type for e in lane.events()]
    assert kinds == ["submitted", "conflict", "retry_scheduled", "conflict", "retry_scheduled", "committed"], kinds
    assert hook.retries == 0
    # A fatal error reaches the caller as the SDK's own error.
    with pytest.raises(ClientError) as info:
        client.tag_role(RoleName="nobody", Tags=[{"Key": "k", "Value": "v"}])
    assert info.value.response["Error"]["Code"] == "NoSuchEntity"
    assert isinstance(info.value.__cause__, writelane.GaveUp)


def test_add_user_to_group_and_put_user_policy_are_serialised(lab: Lab) -> None:
    admin = lab.client()
    admin.create_user(UserName="mw-user")
    for g in range(4):
        admin.create_group(GroupName=f"mw-group{g}")

    def race(client: Any) -> List[BaseException]:
        def body(i: int) -> None:
            if i % 2 == 0:
                client.add_user_to_group(UserName="mw-user", GroupName=f"mw-group{i // 2}")
            else:
                client.put_user_policy(UserName="mw-user", PolicyName=f"P{i}", PolicyDocument=_doc(f"S{i}"))
        return _together(THREADS, body)

    # Without lanes the two kinds of call collide on the user.
    plain = _client(lab)
    writelane.botocore.install(plain, {"preset": "iam", **FAST})
    lab.reset()
    race(plain)
    unlaned = lab.stats()["conflicts"]
    assert unlaned > 0
    for group in admin.list_groups_for_user(UserName="mw-user")["Groups"]:
        admin.remove_user_from_group(UserName="mw-user", GroupName=group["GroupName"])
    lane = writelane.Lane(writelane.Policy.preset("iam", **FAST))
    client = _client(lab)
    hook = writelane.botocore.install(client, lane=lane)
    lab.reset()
    assert race(client) == []
    assert lab.stats()["conflicts"] == 0
    assert hook.serialised == THREADS
    submitted = [e.entity for e in lane.events() if e.type == "submitted"]
    # AddUserToGroup takes the group's lane, then the user's (canonical order); PutUserPolicy
    # the user's only.
    assert submitted.count("user/mw-user") == THREADS
    assert sorted(k for k in submitted if k.startswith("group/")) == [f"group/mw-group{g}" for g in range(4)]
    groups = admin.list_groups_for_user(UserName="mw-user")["Groups"]
    assert len(groups) == 4


def test_reads_other_services_and_unknown_operations_take_no_lane(lab: Lab) -> None:
    _role(lab, "mw-read")
    lane = writelane.Lane()
    client = _client(lab)
    hook = writelane.botocore.install(client, lane=lane)
    client.get_role(RoleName="mw-read")
    client.list_roles()
    client.list_role_policies(RoleName="mw-read")
    assert lane.events() == [] and hook.serialised == 0 and hook.unserialised == {}
    # A write whose entity cannot be determined goes through, counted: CreateAccessKey
    # without UserName acts on the calling user, whom the client does not know.
    try:
        client.create_access_key()
    except ClientError as exc:  # the lab's moto knows no caller user: the call reached it
        assert exc.response["Error"]["Code"] == "NoSuchEntity"
    assert hook.unserialised == {"CreateAccessKey": 1}
    assert "calling user" in (hook.last_unserialised or "")
    # An operation the table does not know is handed to botocore as it is, and counted.
    with pytest.raises(Exception) as info:
        client._make_api_call("FrobnicateRole", {"RoleName": "mw-read"})
    assert not isinstance(info.value, writelane.Error)
    assert hook.unserialised == {"CreateAccessKey": 1, "FrobnicateRole": 1}
    assert lane.events() == []
    # Another service's client gets no lane (no table): its writes are untouched.
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    s3_hook = writelane.botocore.install(s3, lane=lane)
    assert s3_hook.lane is None and "_make_api_call" not in vars(s3)
    with Stubber(s3) as stub:
        stub.add_response("put_object", {}, {"Bucket": "b", "Key": "k", "Body": b"x"})
        s3.put_object(Bucket="b", Key="k", Body=b"x")
    assert lane.events() == []
    # uninstall removes the wrapper.
    hook.uninstall()
    client.tag_role(RoleName="mw-read", Tags=[{"Key": "k", "Value": "v"}])
    assert lane.events() == [] and "_make_api_call" not in vars(client)


def test_keys_and_bad_arguments() -> None:
    client = boto3.client("iam", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    hook = writelane.botocore.install(client, lane=writelane.Lane(), account="123456789012")
    assert hook.keys("PutRolePolicy", {"RoleName": "r", "PolicyName": "p", "PolicyDocument": "{}"}) == (
        "write", ["arn:aws:iam::123456789012:role/r"])
    assert hook.keys("AddRoleToInstanceProfile", {"RoleName": "r", "InstanceProfileName": "ip"}) == (
        "write", ["arn:aws:iam::123456789012:instance-profile/ip", "arn:aws:iam::123456789012:role/r"])
    assert hook.keys("GetRole", {"RoleName": "r"}) == ("read", [])
    with pytest.raises(writelane.EntityError) as info:
        hook.keys("PutRolePolicy", {"PolicyName": "p"})
    assert info.value.parameter == "RoleName" and info.value.operation == "PutRolePolicy"
    with pytest.raises(writelane.EntityError) as info:
        hook.keys("PutRolePolicy", {"RoleName": 5, "PolicyName": "p"})
    assert info.value.parameter == "RoleName" and "not a non-empty string" in info.value.reason
    # The JSON form gives the same keys (the form the other bindings use).
    from writelane import _native
    assert _native.entity_keys("iam", "AddUserToGroup", json.dumps({"UserName": "u", "GroupName": "g"})) == (
        "write", ["group/g", "user/u"])
    assert _native.entity_keys("iam", "AddUserToGroup", {"UserName": "u", "GroupName": "g"}) == (
        "write", ["group/g", "user/u"])
    with pytest.raises(writelane.UsageError, match="params"):
        _native.entity_keys("iam", "PutRolePolicy", "{")
    with pytest.raises(writelane.UsageError, match="service"):
        _native.entity_keys("s3", "PutObject", {})
    with pytest.raises(writelane.UsageError, match="already runs in a lane"):
        writelane.botocore.install(client, lane=writelane.Lane())
    hook.uninstall()
    assert writelane.botocore.install(client, lane=writelane.Lane()).lane is not None
    with pytest.raises(writelane.UsageError, match="lane"):
        writelane.botocore.install(client, lane="not a lane")  # type: ignore[arg-type]
    with pytest.raises(writelane.UsageError, match="account"):
        writelane.botocore.install(client, lane=writelane.Lane(), account=12)  # type: ignore[arg-type]
    with pytest.raises(writelane.UsageError, match="deadline_ms"):
        writelane.botocore.install(client, lane=writelane.Lane(), deadline_ms=-1)


def test_interrupted_call_releases_the_lane(lab: Lab) -> None:
    _role(lab, "mw-cancel")
    lane = writelane.Lane(writelane.Policy.preset("iam", **FAST))
    client = _client(lab)
    writelane.botocore.install(client, lane=lane)

    def interrupt(**_: Any) -> None:
        raise KeyboardInterrupt

    client.meta.events.register("before-send.iam.TagRole", interrupt)
    with pytest.raises(KeyboardInterrupt):
        client.tag_role(RoleName="mw-cancel", Tags=[{"Key": "k", "Value": "v"}])
    client.meta.events.unregister("before-send.iam.TagRole", interrupt)
    # The lane is free again: the next write runs at once.
    started = time.monotonic()
    client.tag_role(RoleName="mw-cancel", Tags=[{"Key": "k", "Value": "v"}])
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("kind", ["file", "dynamodb"])
def test_four_processes_on_a_shared_lease(lab: Lab, tmp_path: Any, kind: str, request: Any) -> None:
    role = f"mw-shared-{kind}"
    _role(lab, role)
    if kind == "file":
        spec: Dict[str, Any] = {"kind": "file", "path": str(tmp_path / "leases.json")}
    else:
        server = MotoServer(sys.executable)
        request.addfinalizer(server.stop)
        spec = {"kind": "dynamodb", "endpoint": server.endpoint, "table": "mw-leases"}
        open_store(spec).create_table()
    lab.reset()
    here = os.path.dirname(os.path.abspath(__file__))
    start = time.time() + 3
    procs = [subprocess.Popen(
        [sys.executable, os.path.join(here, "botoworker.py"), json.dumps({
            "spec": spec, "endpoint": lab.endpoint, "role": role, "threads": 2, "count": 5, "id": i,
            "start": start, "policy": FAST})],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=here) for i in range(4)]
    done = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 0, stderr[-3000:]
        done.append(json.loads(stdout.strip().splitlines()[-1]))
    assert all(d["failed"] == [] and d["ok"] == 10 and d["serialised"] == 10 for d in done), done
    stats = lab.stats()
    print(f"\npython 4 processes x 2 threads x 5 put_role_policy on a shared {kind} lease: "
          f"{stats['conflicts']} conflicts, {stats['writes']} IAM writes")
    assert stats["conflicts"] == 0 and stats["entities"][f"role/{role}"]["writes"] == 40
    names = lab.client().list_role_policies(RoleName=role)["PolicyNames"]
    assert len(names) == 40


def test_two_entity_write_takes_both_leases_in_canonical_order() -> None:
    from writelane import stores

    lane = writelane.Lane(store=stores.MemoryStore())
    client = boto3.client("iam", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    writelane.botocore.install(client, lane=lane)
    with Stubber(client) as stub:
        stub.add_response("add_user_to_group", {}, {"UserName": "u", "GroupName": "g"})
        client.add_user_to_group(UserName="u", GroupName="g")
    steps = [(e.type, getattr(e, "entity", None)) for e in lane.events()
             if e.type in ("submitted", "lease_acquired", "committed", "lease_released")]
    # group/g sorts first: its lease is taken first and its write finishes last.
    assert steps[:4] == [("submitted", "group/g"), ("lease_acquired", "group/g"),
                         ("submitted", "user/u"), ("lease_acquired", "user/u")], steps
    assert [s for s in steps if s[0] == "committed"] == [("committed", "user/u"), ("committed", "group/g")]


def test_a_wrapped_client_inside_lane_run_on_the_same_entity_does_not_wait_for_itself(lab: Lab) -> None:
    _role(lab, "mw-nested")
    lane = writelane.Lane(writelane.Policy.preset("iam", **FAST))
    client = _client(lab)
    hook = writelane.botocore.install(client, lane=lane, deadline_ms=5000)
    started = time.monotonic()

    def write(_attempt: Any) -> None:
        client.put_role_policy(RoleName="mw-nested", PolicyName="P", PolicyDocument=_doc("S"))

    lane.run("role/mw-nested", write)
    assert time.monotonic() - started < 2, "the inner call did not wait for the lane its caller holds"
    assert hook.serialised == 1
    # The caller's lane is the only one taken, and it retries the inner call's conflict.
    lab.config(inject_conflicts=1)
    lane.events()
    lane.run("role/mw-nested", write)
    kinds = [e.type for e in lane.events()]
    assert kinds == ["submitted", "conflict", "retry_scheduled", "committed"], kinds

    async def main() -> None:
        async def awrite(_attempt: Any) -> None:
            client.put_role_policy(RoleName="mw-nested", PolicyName="P", PolicyDocument=_doc("S"))

        await asyncio.wait_for(lane.run_async("role/mw-nested", awrite), 5)

    asyncio.run(main())
    # Outside any write, the same call takes the lane as before.
    lane.events()
    client.put_role_policy(RoleName="mw-nested", PolicyName="P", PolicyDocument=_doc("S"))
    assert [e.entity for e in lane.events() if e.type == "submitted"] == ["role/mw-nested"]
