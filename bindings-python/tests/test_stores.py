"""One conformance suite for every lease store adapter (memory, file, Redis, DynamoDB, S3),
through :func:`writelane.stores.apply` as the engine uses them, against real servers
started here (``redis-server``, a moto server)."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from typing import Any, Dict, Iterator, List

import pytest
from storekit import MotoServer, RedisServer, open_store

import writelane
from writelane import stores

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = ["memory", "file", "redis", "dynamodb", "s3"]
TABLE = "writelane-leases"
BUCKET = "writelane-leases"
#: What the S3 tests keep their objects under (a fresh folder per test below it).
S3_PREFIX = "writelane/leases/"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer(sys.executable)
    store = open_store({"kind": "dynamodb", "endpoint": server.endpoint, "table": TABLE})
    store.create_table()
    open_store(s3_spec(server)).client.create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


def make_spec(kind: str, request: Any, tmp_path: Any) -> Dict[str, Any]:
    """A fresh store of ``kind`` for one test."""
    if kind == "memory":
        return {"kind": "memory"}
    if kind == "file":
        return {"kind": "file", "path": str(tmp_path / "leases.json")}
    if kind == "redis":
        server = request.getfixturevalue("redis_server")
        return {"kind": "redis", "url": server.url, "prefix": f"t-{uuid.uuid4().hex[:8]}:"}
    server = request.getfixturevalue("moto_server")
    if kind == "s3":
        return s3_spec(server)
    return {"kind": "dynamodb", "endpoint": server.endpoint, "table": TABLE}


def s3_spec(server: MotoServer, **fields: Any) -> Dict[str, Any]:
    """An S3 store in the test bucket, under a prefix of its own."""
    return {"kind": "s3", "endpoint": server.endpoint, "bucket": BUCKET,
            "prefix": f"{S3_PREFIX}{uuid.uuid4().hex[:8]}/", **fields}


def kind_id(kind: str) -> str:
    """A test id per kind that ``-k`` can tell apart ("s3" alone matches "kwargs3")."""
    return "s3_store" if kind == "s3" else kind


@pytest.fixture(params=KINDS, ids=kind_id)
def spec(request: Any, tmp_path: Any) -> Dict[str, Any]:
    return make_spec(request.param, request, tmp_path)


@pytest.fixture(params=KINDS[1:], ids=kind_id)
def shared_spec(request: Any, tmp_path: Any) -> Dict[str, Any]:
    """A store that several processes can open."""
    return make_spec(request.param, request, tmp_path)


@pytest.fixture
def store(spec: Dict[str, Any]) -> Any:
    return open_store(spec)


def record(**fields: Any) -> Dict[str, Any]:
    base: Dict[str, Any] = {"owner": "host-a:1:x", "epoch": 1, "rvn": 11, "lease_ms": 10000,
                            "committed_token": None, "holder": None}
    base.update(fields)
    return base


def key() -> str:
    return f"role/{uuid.uuid4().hex[:12]}"


def get(s: Any, k: str) -> Dict[str, Any]:
    return stores.apply(s, {"op": "get", "key": k})


def put(s: Any, k: str, r: Dict[str, Any]) -> Dict[str, Any]:
    return stores.apply(s, {"op": "put_if_absent", "key": k, "record": r})


def cas(s: Any, k: str, rvn: int, r: Dict[str, Any]) -> Dict[str, Any]:
    return stores.apply(s, {"op": "compare_and_swap", "key": k, "expected_rvn": rvn, "record": r})


# -- the same expectations for every adapter ------------------------------------------------


def test_get_of_a_missing_key_finds_none(store: Any) -> None:
    assert get(store, key()) == {"reply": "found", "record": None}


def test_put_if_absent_twice_refuses_the_second_with_the_first(store: Any) -> None:
    k = key()
    first, second = record(rvn=1, owner="a"), record(rvn=2, owner="b")
    assert put(store, k, first) == {"reply": "done"}
    assert put(store, k, second) == {"reply": "refused", "current": first}
    assert get(store, k) == {"reply": "found", "record": first}


def test_compare_and_swap_with_the_right_and_a_wrong_rvn(store: Any) -> None:
    k = key()
    first, second, third = record(rvn=5), record(rvn=6, epoch=2), record(rvn=7, epoch=3)
    assert put(store, k, first) == {"reply": "done"}
    assert cas(store, k, 5, second) == {"reply": "done"}
    assert get(store, k)["record"] == second
    assert cas(store, k, 5, third) == {"reply": "refused", "current": second}
    assert get(store, k)["record"] == second


def test_compare_and_swap_on_a_missing_key_is_refused_with_none(store: Any) -> None:
    k = key()
    assert cas(store, k, 1, record()) == {"reply": "refused", "current": None}
    assert get(store, k) == {"reply": "found", "record": None}


@pytest.mark.parametrize(
    "fields",
    [
        {"owner": "", "committed_token": None, "holder": None},
        {"owner": "h:42:ab", "committed_token": "c1:sha256:" + "ab" * 32, "holder": "pipeline deploy #7 / run 9 — ü"},
        {"epoch": (1 << 53) - 1, "rvn": (1 << 53) - 1, "lease_ms": 1, "committed_token": "", "holder": ""},
        {"epoch": 1, "rvn": 1, "lease_ms": 86_400_000, "owner": "o" * 256, "holder": "h" * 1024},
    ],
)
def test_records_round_trip_all_six_fields(store: Any, fields: Dict[str, Any]) -> None:
    k = key()
    r = record(**fields)
    assert put(store, k, r) == {"reply": "done"}
    found = get(store, k)["record"]
    assert found == r and sorted(found) == sorted(r)
    assert type(found["epoch"]) is int and type(found["rvn"]) is int


#: A queue of three tickets, oldest first, as the core writes them.
QUEUE3 = [
    {"owner": "host-b:2:00000000000000b2", "ticket": 9, "beat": 3},
    {"owner": "host-c:3:00000000000000c3", "ticket": 10, "beat": 0},
    {"owner": "host-d:4:00000000000000d4", "ticket": 11, "beat": 7},
]


def v2_record(**fields: Any) -> Dict[str, Any]:
    """A version 2 record: a holder with a queue of three waiters."""
    base = {"version": 2, **record(), "beat": 4, "next_ticket": 12, "hold_ms": 350,
            "queue": [dict(t) for t in QUEUE3]}
    base.update(fields)
    return base


def test_version_2_records_with_a_queue_of_three_round_trip_unchanged(store: Any) -> None:
    k = key()
    first = v2_record(rvn=21)
    assert put(store, k, first) == {"reply": "done"}
    found = get(store, k)["record"]
    assert found == first and list(found) == list(first)
    assert found["queue"] == QUEUE3 and [list(t) for t in found["queue"]] == [["owner", "ticket", "beat"]] * 3
    # A swap to a record whose head was granted (beat 0, the head gone from the queue).
    # The core leaves a zero beat out of its JSON, so the dict has none.
    second = v2_record(rvn=22, owner=QUEUE3[0]["owner"], epoch=2, queue=[dict(t) for t in QUEUE3[1:]])
    del second["beat"]
    assert cas(store, k, 21, second) == {"reply": "done"}
    assert get(store, k)["record"] == second
    # A refusal carries the version 2 record found, queue and all.
    assert cas(store, k, 21, v2_record(rvn=23)) == {"reply": "refused", "current": second}
    # Zero counters and an empty queue: the core leaves them out; version 2 stays.
    bare = {"version": 2, **record(rvn=24)}
    assert cas(store, k, 22, bare) == {"reply": "done"}
    assert get(store, k)["record"] == bare
    # The engine's records pass through apply() as the core wrote them (parse_record is the
    # core's parser: its dict has the version 2 fields).
    assert stores.parse_record(json.dumps(first)) == first


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"epoch": 0}, "epoch"),
        ({"rvn": 0}, "rvn"),
        ({"rvn": 1 << 53}, "rvn"),
        ({"lease_ms": 0}, "lease_ms"),
        ({"owner": "o" * 257}, "owner"),
        ({"holder": "h" * 1025}, "holder"),
        ({"committed_token": "t" * 1025}, "committed_token"),
    ],
)
def test_the_core_refuses_a_record_it_did_not_write(fields: Dict[str, Any], field: str) -> None:
    # Going in through apply: a usage error naming the field (the core's rule).
    with pytest.raises(writelane.UsageError) as info:
        put(stores.MemoryStore(), key(), record(**fields))
    assert info.value.kind == "invalid_record" and f"operation.record.{field}:" in str(info.value)
    # Coming out of a store: the core's RecordError, as StoreCorrupt naming the field.
    with pytest.raises(stores.StoreCorrupt) as corrupt:
        stores.parse_record(json.dumps(record(**fields)), "role/x")
    assert corrupt.value.field == field and "'role/x'" in str(corrupt.value)
    with pytest.raises(writelane.RecordError) as direct:
        writelane._native.parse_record(json.dumps(record(**fields)).encode())
    assert direct.value.field == field and direct.value.rule


def test_concurrent_compare_and_swap_from_many_threads_has_one_winner(spec: Dict[str, Any], store: Any) -> None:
    k = key()
    assert put(store, k, record(rvn=100)) == {"reply": "done"}
    n = 12
    shared = spec["kind"] == "memory"
    adapters = [store if shared else open_store(spec) for _ in range(n)]
    barrier = threading.Barrier(n)
    replies: List[Dict[str, Any]] = [{}] * n

    def one(i: int) -> None:
        barrier.wait()
        replies[i] = cas(adapters[i], k, 100, record(rvn=200 + i, owner=f"w{i}"))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, r in enumerate(replies) if r == {"reply": "done"}]
    assert len(winners) == 1, replies
    final = get(store, k)["record"]
    assert final == record(rvn=200 + winners[0], owner=f"w{winners[0]}")
    for i, r in enumerate(replies):
        if i != winners[0]:
            # Refused with the record found: the winner's (or, raced, the original).
            assert r["reply"] == "refused" and r["current"]["rvn"] in (100, final["rvn"]), r


def test_concurrent_compare_and_swap_from_many_processes_has_one_winner(shared_spec: Dict[str, Any]) -> None:
    spec, store = shared_spec, open_store(shared_spec)
    k = key()
    assert put(store, k, record(rvn=100)) == {"reply": "done"}
    n = 6
    start = time.time() + 2.5
    procs = [
        subprocess.Popen(
            [sys.executable, os.path.join(HERE, "storeworker.py"), "cas", json.dumps(spec), k, "100", f"p-{i}", str(start)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=HERE,
        )
        for i in range(n)
    ]
    replies = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    winners = [i for i, r in enumerate(replies) if r == {"reply": "done"}]
    assert len(winners) == 1, replies
    assert get(store, k)["record"]["owner"] == f"p-{winners[0]}"
    assert sum(r["reply"] == "refused" for r in replies) == n - 1


# -- failures become replies, never exceptions ----------------------------------------------


def all_ops(s: Any) -> List[Dict[str, Any]]:
    k = key()
    return [get(s, k), put(s, k, record()), cas(s, k, 11, record(rvn=12))]


def test_a_stopped_redis_server_gives_unavailable() -> None:
    server = RedisServer()
    s = open_store({"kind": "redis", "url": server.url, "timeout_ms": 500})
    k = key()
    assert put(s, k, record()) == {"reply": "done"}
    server.stop()
    assert all_ops(s) == [{"reply": "unavailable"}] * 3


def test_a_stopped_dynamodb_server_gives_unavailable() -> None:
    server = MotoServer(sys.executable)
    s = open_store({"kind": "dynamodb", "endpoint": server.endpoint, "table": TABLE, "timeout_ms": 500})
    s.create_table()
    assert put(s, key(), record()) == {"reply": "done"}
    server.stop()
    assert all_ops(s) == [{"reply": "unavailable"}] * 3


def test_a_stopped_s3_store_server_gives_unavailable() -> None:
    server = MotoServer(sys.executable)
    s = open_store(s3_spec(server, timeout_ms=500))
    s.client.create_bucket(Bucket=BUCKET)
    assert put(s, key(), record()) == {"reply": "done"}
    server.stop()
    assert all_ops(s) == [{"reply": "unavailable"}] * 3


def test_a_missing_bucket_of_an_s3_store_gives_unavailable(moto_server: MotoServer) -> None:
    s = open_store({"kind": "s3", "endpoint": moto_server.endpoint, "bucket": "no-such-bucket", "prefix": "p/"})
    assert all_ops(s) == [{"reply": "unavailable"}] * 3


def test_the_s3_store_layout_is_one_object_per_entity_holding_the_core_record(moto_server: MotoServer) -> None:
    spec = s3_spec(moto_server)
    s = open_store(spec)
    k = "arn:aws:iam::123456789012:role/deploy"
    r = record(rvn=5, committed_token="c1:sha256:01", holder="deploy pipeline — run 7")
    assert put(s, k, r) == {"reply": "done"}
    got = s.client.get_object(Bucket=BUCKET, Key=spec["prefix"] + k)
    body = got["Body"].read()
    # The core's JSON text of the record, byte for byte (what the Rust, Node and Go
    # adapters write), and nothing else under the prefix.
    assert stores.parse_record(body) == r
    assert body.decode("utf-8") == (
        '{"owner":"host-a:1:x","epoch":1,"rvn":5,"lease_ms":10000,'
        '"committed_token":"c1:sha256:01","holder":"deploy pipeline — run 7"}'
    )
    assert got["ContentType"] == "application/json"
    listed = s.client.list_objects_v2(Bucket=BUCKET, Prefix=spec["prefix"])
    assert [o["Key"] for o in listed["Contents"]] == [spec["prefix"] + k]
    # Another prefix in the same bucket is another namespace.
    other = open_store(s3_spec(moto_server))
    assert get(other, k) == {"reply": "found", "record": None}


def test_the_s3_store_writes_a_version_2_record_as_the_core_does(moto_server: MotoServer) -> None:
    spec = s3_spec(moto_server)
    s = open_store(spec)
    k = key()
    # Fields given in another order come out in the core's.
    r = dict(reversed(list(v2_record(rvn=5, queue=[dict(reversed(list(t.items()))) for t in QUEUE3]).items())))
    assert put(s, k, r) == {"reply": "done"}
    body = s.client.get_object(Bucket=BUCKET, Key=spec["prefix"] + k)["Body"].read()
    assert body.decode("utf-8") == (
        '{"version":2,"owner":"host-a:1:x","epoch":1,"rvn":5,"lease_ms":10000,'
        '"committed_token":null,"holder":null,"beat":4,"next_ticket":12,"hold_ms":350,"queue":['
        '{"owner":"host-b:2:00000000000000b2","ticket":9,"beat":3},'
        '{"owner":"host-c:3:00000000000000c3","ticket":10,"beat":0},'
        '{"owner":"host-d:4:00000000000000d4","ticket":11,"beat":7}]}'
    )
    assert get(s, k)["record"] == r


def test_the_dynamodb_store_keeps_the_queue_as_json_text_as_the_rust_adapter_does(moto_server: MotoServer) -> None:
    s = open_store({"kind": "dynamodb", "endpoint": moto_server.endpoint, "table": TABLE})

    def item(k: str) -> Dict[str, Any]:
        found = s.client.get_item(TableName=TABLE, Key={"key": {"S": k}}, ConsistentRead=True)["Item"]
        return {name: value for name, value in found.items() if name != "key"}

    k = key()
    assert put(s, k, v2_record(rvn=5)) == {"reply": "done"}
    got = item(k)
    assert got["queue"] == {"S": '[{"owner":"host-b:2:00000000000000b2","ticket":9,"beat":3},'
                                 '{"owner":"host-c:3:00000000000000c3","ticket":10,"beat":0},'
                                 '{"owner":"host-d:4:00000000000000d4","ticket":11,"beat":7}]'}
    assert {n: got[n] for n in ("version", "beat", "next_ticket", "hold_ms")} == {
        "version": {"N": "2"}, "beat": {"N": "4"}, "next_ticket": {"N": "12"}, "hold_ms": {"N": "350"}}
    # A version 2 record with zero counters and no queue: every version 2 attribute is
    # written all the same (zeros, "[]"), as lane/src/store/dynamodb.rs writes it.
    bare = {"version": 2, **record(rvn=6)}
    assert cas(s, k, 5, bare) == {"reply": "done"}
    got = item(k)
    assert {n: got[n] for n in ("version", "beat", "next_ticket", "hold_ms", "queue")} == {
        "version": {"N": "2"}, "beat": {"N": "0"}, "next_ticket": {"N": "0"}, "hold_ms": {"N": "0"}, "queue": {"S": "[]"}}
    assert get(s, k)["record"] == bare
    # A version 1 record keeps exactly its six attributes.
    assert cas(s, k, 6, record(rvn=7)) == {"reply": "done"}
    assert sorted(item(k)) == sorted(record())


def test_an_s3_store_swap_behind_a_stale_etag_is_refused_with_the_record_found(moto_server: MotoServer) -> None:
    spec = s3_spec(moto_server)
    mine, theirs = open_store(spec), open_store(spec)
    k = key()
    assert put(mine, k, record(rvn=5)) == {"reply": "done"}  # mine keeps the ETag of rvn 5
    # Another writer (another process) swaps first: its own read finds rvn 5.
    assert cas(theirs, k, 5, record(rvn=6, owner="b")) == {"reply": "done"}
    # Mine still holds the ETag of rvn 5: S3 answers 412 and the refusal carries what
    # is there now; nothing was written over it.
    assert cas(mine, k, 5, record(rvn=7, owner="a")) == {"reply": "refused", "current": record(rvn=6, owner="b")}
    assert get(theirs, k)["record"] == record(rvn=6, owner="b")
    # Having read rvn 6, mine swaps from it.
    assert cas(mine, k, 6, record(rvn=8, owner="a")) == {"reply": "done"}


def test_an_s3_store_object_gone_behind_a_cached_etag_is_refused_with_none(moto_server: MotoServer) -> None:
    spec = s3_spec(moto_server)
    s = open_store(spec)
    k = key()
    assert put(s, k, record(rvn=5)) == {"reply": "done"}
    # Removed by hand (writelane itself never deletes): If-Match finds no object.
    s.client.delete_object(Bucket=BUCKET, Key=spec["prefix"] + k)
    assert cas(s, k, 5, record(rvn=6)) == {"reply": "refused", "current": None}


class S3Answers:
    """An S3 client whose puts fail with a given error, as S3 can answer and moto does
    not (409 ConditionalRequestConflict), reads passing through to a real client."""

    def __init__(self, real: Any, code: str, status: int) -> None:
        self.real, self.code, self.status = real, code, status

    def get_object(self, **kwargs: Any) -> Any:
        return self.real.get_object(**kwargs)

    def put_object(self, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        raise ClientError(
            {"Error": {"Code": self.code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": self.status}},
            "PutObject",
        )


@pytest.mark.parametrize(
    "code, status, reply",
    [
        ("ConditionalRequestConflict", 409, "unavailable"),
        ("SlowDown", 503, "lost"),
        ("InternalError", 500, "lost"),
        ("AccessDenied", 403, "unavailable"),
    ],
)
def test_s3_store_write_errors_map_to_unavailable_or_lost(moto_server: MotoServer, code: str, status: int, reply: str) -> None:
    spec = s3_spec(moto_server)
    real = open_store(spec)
    k = key()
    assert put(real, k, record(rvn=5)) == {"reply": "done"}
    s = stores.S3Store(BUCKET, spec["prefix"], client=S3Answers(real.client, code, status))
    assert put(s, key(), record()) == {"reply": reply}
    assert cas(s, k, 5, record(rvn=6)) == {"reply": reply}
    assert get(s, k) == {"reply": "found", "record": record(rvn=5)}


def test_s3store_refuses_a_bad_bucket_or_prefix() -> None:
    with pytest.raises(writelane.UsageError, match="bucket"):
        stores.S3Store("", client=object())
    with pytest.raises(writelane.UsageError, match="prefix"):
        stores.S3Store("b", 3, client=object())  # type: ignore[arg-type]
    # A botocore too old to send the conditions: refused up front, not a failure per write.
    from types import SimpleNamespace

    model = SimpleNamespace(input_shape=SimpleNamespace(members={"Bucket": None, "Key": None, "IfMatch": None}))
    old = SimpleNamespace(meta=SimpleNamespace(service_model=SimpleNamespace(operation_model=lambda name: model)))
    with pytest.raises(writelane.UsageError, match="IfNoneMatch on PutObject.*botocore 1.36"):
        stores.S3Store("b", client=old)
    # The botocore installed here sends both.
    assert stores.S3Store("b", region="us-east-1").client.meta.service_model.operation_model("PutObject")


def test_a_missing_dynamodb_table_gives_unavailable(moto_server: MotoServer) -> None:
    s = open_store({"kind": "dynamodb", "endpoint": moto_server.endpoint, "table": "no-such-table"})
    assert all_ops(s) == [{"reply": "unavailable"}] * 3


def test_an_unwritable_file_store_gives_unavailable(tmp_path: Any) -> None:
    s = stores.FileStore(str(tmp_path / "missing-dir" / "leases.json"))
    assert all_ops(s) == [{"reply": "unavailable"}] * 3


def test_a_file_store_locked_too_long_gives_unavailable(tmp_path: Any) -> None:
    s = stores.FileStore(str(tmp_path / "leases.json"))
    s.use_timeout_ms(200)  # a lane hands over its policy's lease.store_timeout_ms
    with open(s.lock_path, "w") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        t0 = time.monotonic()
        assert all_ops(s) == [{"reply": "unavailable"}] * 3
        assert time.monotonic() - t0 >= 0.5
    assert get(s, key()) == {"reply": "found", "record": None}


class Blackhole:
    """A TCP server that reads a request and closes the connection without replying."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                conn.settimeout(2)
                conn.recv(65536)
            except OSError:
                pass
            conn.close()


def test_a_write_whose_reply_is_dropped_gives_lost() -> None:
    hole = Blackhole()
    r = open_store({"kind": "redis", "url": f"redis://127.0.0.1:{hole.port}/0", "timeout_ms": 1000})
    d = open_store({"kind": "dynamodb", "endpoint": f"http://127.0.0.1:{hole.port}", "table": TABLE, "timeout_ms": 1000})
    b = open_store({"kind": "s3", "endpoint": f"http://127.0.0.1:{hole.port}", "bucket": BUCKET, "timeout_ms": 1000})
    for s in (r, d, b):
        k = key()
        assert get(s, k) == {"reply": "unavailable"}
        assert put(s, k, record()) == {"reply": "lost"}
        # S3 reads the object's ETag before a swap it has none cached for: that read got
        # no reply, so nothing was sent (the S3 answer tests cover a lost swap).
        assert cas(s, k, 11, record(rvn=12)) == {"reply": "unavailable" if s is b else "lost"}
    hole.sock.close()


def test_a_corrupt_stored_value_gives_unavailable(spec: Dict[str, Any], store: Any) -> None:
    k = key()
    kind = spec["kind"]
    if kind == "memory":
        store._records[k] = '{"owner": 5}'
    elif kind == "file":
        with open(spec["path"], "w") as f:
            json.dump({k: {"owner": "x"}}, f)
    elif kind == "redis":
        store.client.set(spec["prefix"] + k, b"not json")
    elif kind == "s3":
        store.client.put_object(Bucket=BUCKET, Key=spec["prefix"] + k, Body=b'{"owner": "x"}')
    else:
        store.client.put_item(TableName=TABLE, Item={"key": {"S": k}, "owner": {"S": "x"}})
    # Every adapter hands what it holds to the core, which refuses it.
    assert all_ops_at(store, k) == [{"reply": "unavailable"}] * 3


def all_ops_at(s: Any, k: str) -> List[Dict[str, Any]]:
    return [get(s, k), put(s, k, record()), cas(s, k, 11, record(rvn=12))]


class Broken:
    """An adapter that fails in ways adapters should not."""

    def __init__(self, answer: Any = None, exc: Any = None) -> None:
        self.answer, self.exc = answer, exc

    def _do(self, *args: Any) -> Any:
        if self.exc is not None:
            raise self.exc
        return self.answer

    get = put_if_absent = compare_and_swap = _do


@pytest.mark.parametrize(
    "adapter, expected",
    [
        (Broken(exc=stores.StoreLost("x")), ["lost", "lost", "lost"]),
        (Broken(exc=stores.StoreUnavailable("x")), ["unavailable"] * 3),
        (Broken(exc=KeyError("bug")), ["unavailable", "lost", "lost"]),
        (Broken(answer="nonsense"), ["unavailable", "lost", "lost"]),
        (Broken(answer=(False, {"owner": 1})), ["unavailable", "lost", "lost"]),
    ],
)
def test_no_adapter_failure_escapes_apply(adapter: Any, expected: List[str]) -> None:
    assert [r["reply"] for r in all_ops(adapter)] == expected


@pytest.mark.parametrize(
    "operation, kind, words",
    [
        ("nope", "invalid_argument", "operation"),
        ({"op": "get"}, "invalid_input", "`key`"),
        ({"op": "delete", "key": "k"}, "invalid_input", "`delete`"),
        ({"op": "put_if_absent", "key": "k", "record": {}}, "invalid_input", "`owner`"),
        ({"op": "put_if_absent", "key": "k", "record": record(extra=1)}, "invalid_input", "`extra`"),
        ({"op": "put_if_absent", "key": "k", "record": record(epoch=-1)}, "invalid_input", "`-1`"),
        ({"op": "put_if_absent", "key": "k", "record": record(rvn=True)}, "invalid_input", "boolean"),
        ({"op": "put_if_absent", "key": "k", "record": record(holder=3)}, "invalid_input", "expected a string"),
        ({"op": "compare_and_swap", "key": "k", "record": record()}, "invalid_input", "`expected_rvn`"),
        ({"op": "put_if_absent", "key": "k", "record": record(epoch=0)}, "invalid_record", "operation.record.epoch"),
    ],
)
def test_a_malformed_operation_is_a_usage_error(operation: Any, kind: str, words: str) -> None:
    # The core parses the operation (serde names missing and unknown fields, not the field
    # of a wrong type) and validates its record (naming the field).
    with pytest.raises(writelane.UsageError) as info:
        stores.apply(stores.MemoryStore(), operation)
    assert info.value.kind == kind and words in str(info.value), str(info.value)
