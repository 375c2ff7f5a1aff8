"""writelane.otel with the real OpenTelemetry SDK (in-memory metric reader and span
exporter), after runs against the IAM contention lab: conflicts counted, a spike raised by
a conflict storm, writes equal to what the lab counted, spans carrying the entity and the
events."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional

import pytest
from botocore.exceptions import ClientError
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import writelane
import writelane.otel
from conftest import Lab

POLICY = "inline"
#: runs through the lane during the conflict storm
RUNS = 4
#: small backoffs and a spike after 3 conflicts in a minute, cooled down for 50 ms
FAST = {"preset": "iam", "retry": {"conflict": {"base_ms": 5, "cap_ms": 20}},
        "spike": {"threshold": 3, "window_ms": 60000, "cooldown_ms": 50}}


class Otel:
    """A meter provider with an in-memory reader and a tracer provider with an in-memory
    exporter, and what they collected."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meters = MeterProvider(metric_readers=[self.reader])
        self.exporter = InMemorySpanExporter()
        self.tracers = TracerProvider()
        self.tracers.add_span_processor(SimpleSpanProcessor(self.exporter))

    def instrument(self, lane: writelane.Lane, **kwargs: Any) -> writelane.otel.Telemetry:
        return writelane.otel.instrument(lane, meter_provider=self.meters, tracer_provider=self.tracers, **kwargs)

    def metrics(self) -> Dict[str, Any]:
        """The writelane scope's metrics by name."""
        out: Dict[str, Any] = {}
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                if sm.scope.name == "writelane":
                    assert sm.scope.version == writelane.__version__
                    for m in sm.metrics:
                        out[m.name] = m
        return out

    def points(self, name: str) -> List[Any]:
        metric = self.metrics().get(name)
        return [] if metric is None else list(metric.data.data_points)

    def total(self, name: str, **attrs: Any) -> float:
        """Sum of a counter's points whose attributes include ``attrs`` (or a
        histogram's count)."""
        total = 0.0
        for p in self.points(name):
            if all(p.attributes.get(k) == v for k, v in attrs.items()):
                total += p.count if hasattr(p, "bucket_counts") else p.value
        return total

    def spans(self) -> List[Any]:
        return [s for s in self.exporter.get_finished_spans() if s.name == "writelane.run"]


def _statement(sid: str) -> Dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::b/{sid}"}


def _document(client: Any, role: str) -> Optional[Dict[str, Any]]:
    try:
        doc = client.get_role_policy(RoleName=role, PolicyName=POLICY)["PolicyDocument"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NoSuchEntity":
            return None
        raise
    return json.loads(doc) if isinstance(doc, str) else doc  # type: ignore[no-any-return]


def _append(client: Any, role: str, sid: str) -> None:
    doc = _document(client, role) or {"Version": "2012-10-17", "Statement": []}
    statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
    doc["Statement"] = statements + [_statement(sid)]
    client.put_role_policy(RoleName=role, PolicyName=POLICY, PolicyDocument=json.dumps(doc))


def _role(lab: Lab, name: str) -> Any:
    client = lab.client()
    client.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    lab.reset()
    return client


def _reader(client: Any, role: str) -> Any:
    def read() -> Optional[str]:
        doc = _document(client, role)
        return None if doc is None else writelane.policy_token(doc)
    return read


def _events(span: Any) -> List[str]:
    return [e.name for e in span.events]


def test_injected_conflicts_are_counted_and_raise_a_spike(lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    role = "otel-injected"
    client = _role(lab, role)
    entity = f"role/{role}"
    otel = Otel()
    lane = writelane.Lane(FAST, seed=11)
    otel.instrument(lane)
    lab.config(inject_conflicts=3)
    with caplog.at_level(logging.WARNING, logger="writelane"):
        attempts = lane.run(entity, lambda a: (_append(client, role, "X"), a.number)[1], read=_reader(client, role))
    assert attempts == 4
    stats = lab.stats()
    assert stats["conflicts"] == 3 and stats["writes"] == 1
    # Every attempt the engine commanded reached the lab: accepted or refused.
    assert otel.total("writelane.writes") == stats["writes"] + stats["conflicts"] == 4
    assert otel.total("writelane.conflicts") == 3
    assert otel.total("writelane.retries") == 3
    assert otel.total("writelane.spikes") == 1
    assert otel.total("writelane.give_ups") == 0 and otel.total("writelane.budget.refusals") == 0
    assert otel.total("writelane.write.duration") == 4
    durations = otel.points("writelane.write.duration")[0]
    assert durations.max >= 0.020, "the lab holds the accepted write 20 ms"
    assert durations.explicit_bounds[:3] == (0.005, 0.01, 0.025), "buckets in seconds"
    assert otel.total("writelane.lane.wait.duration") == 1
    # No entity on metrics by default.
    assert all(not p.attributes for p in otel.points("writelane.conflicts"))
    (level,) = otel.points("writelane.budget.level")
    assert level.value == lane.stats()["budget"] < 500
    assert any(r.levelno == logging.WARNING and "spike_started" in r.getMessage() and entity in r.getMessage()
               for r in caplog.records)

    (span,) = otel.spans()
    assert span.kind == SpanKind.INTERNAL and span.status.status_code == StatusCode.UNSET
    assert span.instrumentation_scope.name == "writelane"
    assert span.attributes["writelane.entity"] == entity and span.attributes["writelane.attempts"] == 4
    names = _events(span)
    assert names.count("writelane.attempt") == 4 and names.count("writelane.conflict") == 3
    assert names.count("writelane.backoff") == 3 and names.count("writelane.spike_started") == 1
    assert [e.attributes["writelane.attempt"] for e in span.events if e.name == "writelane.attempt"] == [1, 2, 3, 4]
    assert all(e.attributes["writelane.backoff.delay_ms"] >= 0 for e in span.events if e.name == "writelane.backoff")
    # Each conflict and its backoff come between the attempt they follow and the next.
    attempts_at = [i for i, n in enumerate(names) if n == "writelane.attempt"]
    conflicts_at = [i for i, n in enumerate(names) if n == "writelane.conflict"]
    assert all(attempts_at[k] < conflicts_at[k] < attempts_at[k + 1] for k in range(3)), names
    assert all(span.start_time <= e.timestamp <= span.end_time for e in span.events)


def test_conflict_storm_from_writers_without_a_lane(lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    role = "otel-storm"
    client = _role(lab, role)
    entity = f"role/{role}"
    otel = Otel()
    lane = writelane.Lane({**FAST, "spike": {"threshold": 2, "window_ms": 60000, "cooldown_ms": 20}}, seed=12)
    otel.instrument(lane)
    stop = threading.Event()
    naive_attempts: List[int] = []

    def naive(t: int) -> None:  # hammers the role with no discipline at all
        count = 0
        while not stop.is_set():
            count += 1
            try:
                client.put_role_policy(RoleName=role, PolicyName="naive",
                                       PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [_statement(f"N{t}")]}))
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "ConcurrentModification"
            time.sleep(0.01)  # paced, so the lab keeps answering everyone
        naive_attempts.append(count)

    outcomes: List[str] = []

    def laned() -> None:
        # One writer through the lane, run after run, while the storm goes on (lanes
        # contending with each other are the async test's business).
        for n in range(RUNS):
            try:
                lane.run(entity, lambda a: _append(client, role, f"L{n}"), read=_reader(client, role))
                outcomes.append("committed")
            except writelane.GaveUp as exc:
                outcomes.append(exc.reason)

    hammers = [threading.Thread(target=naive, args=(t,)) for t in range(4)]
    with caplog.at_level(logging.WARNING, logger="writelane"):
        for th in hammers:
            th.start()
        time.sleep(0.1)
        try:
            laned()
        finally:
            stop.set()
            for th in hammers:
                th.join(30)
    assert len(outcomes) == RUNS and len(naive_attempts) == 4
    g = lane.stats()["global"]
    stats = lab.stats()["entities"][entity]
    assert g["conflicts"] > 0, "the storm must hit the lane's writes"
    assert otel.total("writelane.conflicts") == g["conflicts"]
    assert otel.total("writelane.writes") == g["writes"]
    assert otel.total("writelane.retries") == g["retries"]
    assert otel.total("writelane.spikes") == g["spikes"] >= 1
    # The lab saw every attempt of both kinds of writer, accepted or refused.
    assert stats["writes"] + stats["conflicts"] == otel.total("writelane.writes") + sum(naive_attempts)
    gave_up = [o for o in outcomes if o != "committed"]
    assert otel.total("writelane.give_ups") == len(gave_up) == g["gave_up"]
    for reason in set(gave_up):
        assert otel.total("writelane.give_ups", **{"error.type": reason}) == gave_up.count(reason)
    # One writer: every run had the lane at once.
    assert otel.total("writelane.lane.wait.duration") == RUNS
    assert any("spike_started" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)

    spans = otel.spans()
    assert len(spans) == RUNS and all(s.attributes["writelane.entity"] == entity for s in spans)
    assert sum(_events(s).count("writelane.attempt") for s in spans) == g["writes"]
    assert sum(_events(s).count("writelane.conflict") for s in spans) == g["conflicts"]
    assert sum(s.attributes["writelane.attempts"] for s in spans) == g["writes"]
    assert any("writelane.spike_started" in _events(s) for s in spans)


def test_give_up_is_the_span_error(lab: Lab) -> None:
    client = lab.client()
    otel = Otel()
    lane = writelane.Lane("iam", seed=13)
    otel.instrument(lane, entity_attribute="name")
    with pytest.raises(writelane.GaveUp) as info:
        lane.run("role/otel-absent", lambda a: client.put_role_policy(
            RoleName="otel-absent", PolicyName="p", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [_statement("A")]})))
    assert info.value.reason == "fatal"
    assert otel.total("writelane.give_ups", **{"error.type": "fatal", "writelane.entity": "role/otel-absent"}) == 1
    assert otel.total("writelane.writes", **{"writelane.entity": "role/otel-absent"}) == 1
    (span,) = otel.spans()
    assert span.status.status_code == StatusCode.ERROR and span.status.description == str(info.value)
    assert span.attributes["error.type"] == "fatal" and span.attributes["writelane.attempts"] == 1


def test_async_runs_contend_and_are_counted(lab: Lab) -> None:
    role = "otel-async"
    client = _role(lab, role)
    entity = f"role/{role}"
    otel = Otel()
    lane = writelane.Lane("iam", seed=14)
    otel.instrument(lane)

    async def read() -> Optional[str]:
        doc = await asyncio.to_thread(_document, client, role)
        return None if doc is None else writelane.policy_token(doc)

    async def writer(t: int) -> None:
        async def write(attempt: writelane.Attempt) -> None:
            await asyncio.to_thread(_append, client, role, f"A{t}")
        await lane.run_async(entity, write, read=read)

    async def main() -> None:
        await asyncio.gather(*(writer(t) for t in range(4)))

    asyncio.run(main())
    stats = lab.stats()
    assert otel.total("writelane.writes") == stats["writes"] + stats["conflicts"] == 4
    assert otel.total("writelane.conflicts") == 0
    (waits,) = otel.points("writelane.lane.wait.duration")
    assert waits.count == 4 and waits.sum > 0, "three of the four runs waited for the lane"
    spans = otel.spans()
    assert len(spans) == 4 and all(_events(s) == ["writelane.attempt"] for s in spans)


def test_entity_attribute_modes_and_allowlist() -> None:
    otel = Otel()
    named, hashed, plain = writelane.Lane(seed=1), writelane.Lane(seed=2), writelane.Lane(seed=3)
    otel.instrument(named, entity_attribute="name")
    otel.instrument(hashed, entity_attribute="hash")
    otel.instrument(plain, entity_allowlist=["role/vip"])
    named.run("role/a", lambda a: None)
    hashed.run("role/a", lambda a: None)
    plain.run("role/vip", lambda a: None)
    plain.run("role/other", lambda a: None)
    digest = hashlib.sha256(b"role/a").hexdigest()[:16]
    assert otel.total("writelane.writes") == 4
    assert otel.total("writelane.writes", **{"writelane.entity": "role/a"}) == 1
    assert otel.total("writelane.writes", **{"writelane.entity.hash": digest}) == 1
    assert otel.total("writelane.writes", **{"writelane.entity": "role/vip"}) == 1
    attrs = [dict(p.attributes) for p in otel.points("writelane.writes")]
    assert {} in attrs and len(attrs) == 4
    # Spans carry the entity whatever the metrics mode.
    assert sorted(s.attributes["writelane.entity"] for s in otel.spans()) == ["role/a", "role/a", "role/other", "role/vip"]
    # One gauge for the provider: the lowest level of the lanes on it.
    (level,) = otel.points("writelane.budget.level")
    assert level.value == min(lane.stats()["budget"] for lane in (named, hashed, plain))


def test_the_run_span_is_current_inside_write() -> None:
    otel = Otel()
    lane = writelane.Lane(seed=4)
    otel.instrument(lane)
    tracer = otel.tracers.get_tracer("user")

    def write(attempt: writelane.Attempt) -> None:
        with tracer.start_as_current_span("put_role_policy"):
            pass

    lane.run("role/ctx", write)
    (run,) = otel.spans()
    (child,) = [s for s in otel.exporter.get_finished_spans() if s.name == "put_role_policy"]
    assert child.parent is not None and child.parent.span_id == run.context.span_id


def test_updates_get_a_span_and_their_writes_are_counted() -> None:
    otel = Otel()
    lane = writelane.Lane(seed=6)
    otel.instrument(lane)
    doc: Dict[str, Any] = {"Statement": []}

    def write(document: Dict[str, Any], attempt: writelane.Attempt) -> str:
        doc["Statement"] = list(document["Statement"])
        return f"v{attempt.number}"

    async def main() -> None:
        await asyncio.gather(*(
            lane.update_async("role/u", read=lambda: (dict(doc), None),
                              change=lambda d, i=i: {"Statement": d["Statement"] + [i]}, write=write)
            for i in range(3)))

    lane.update("role/u", read=lambda: (dict(doc), None), change=lambda d: {"Statement": d["Statement"] + ["s"]},
                write=write)
    asyncio.run(main())
    assert sorted(map(str, doc["Statement"])) == ["0", "1", "2", "s"]
    spans = otel.spans()
    assert len(spans) == 4 and all(s.attributes["writelane.entity"] == "role/u" for s in spans)
    # Batched updates share writes: at least one per batch, at most one per update.
    assert 2 <= otel.total("writelane.writes") <= 4


def test_log_and_telemetry_share_the_events(caplog: pytest.LogCaptureFixture) -> None:
    otel = Otel()
    lane = writelane.Lane(FAST, seed=5, log=True, classify=lambda exc: "ConcurrentModification")
    otel.instrument(lane)
    calls: List[int] = []

    def write(attempt: writelane.Attempt) -> int:
        calls.append(attempt.number)
        if attempt.number < 3:
            raise OSError("refused")
        return attempt.number

    with caplog.at_level(logging.DEBUG, logger="writelane"):
        assert lane.run("role/both", write) == 3
    assert otel.total("writelane.conflicts") == 2 and otel.total("writelane.writes") == 3
    logged = [r.getMessage().split(" ")[0] for r in caplog.records]
    assert logged.count("conflict") == 2 and logged.count("committed") == 1


def test_bad_arguments_name_the_argument() -> None:
    otel = Otel()
    lane = writelane.Lane(seed=6)
    with pytest.raises(writelane.UsageError, match="entity_attribute"):
        otel.instrument(lane, entity_attribute="names")
    with pytest.raises(writelane.UsageError, match="entity_allowlist"):
        otel.instrument(lane, entity_allowlist="role/a")
    with pytest.raises(writelane.UsageError, match="lane"):
        writelane.otel.instrument(object())  # type: ignore[arg-type]
    otel.instrument(lane)
    with pytest.raises(writelane.UsageError, match="already on"):
        otel.instrument(lane)


_GLOBAL = """
import sys
import writelane
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

reader, exporter = InMemoryMetricReader(), InMemorySpanExporter()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
tracers = TracerProvider()
tracers.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(tracers)
lane = writelane.Lane(seed=1, telemetry=True)
lane.run("role/g", lambda a: None)
names = {m.name for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
spans = [s.name for s in exporter.get_finished_spans()]
print(sorted(names), spans)
"""

_OFF = """
import sys
import writelane
lane = writelane.Lane(seed=1)
lane.run("role/off", lambda a: None)
print(sorted(m for m in sys.modules if m.startswith("opentelemetry") or m == "writelane.otel"))
"""


def test_telemetry_true_uses_the_global_providers() -> None:
    out = subprocess.run([sys.executable, "-c", _GLOBAL], check=True, capture_output=True, text=True).stdout
    assert "'writelane.writes'" in out and "'writelane.budget.level'" in out and "['writelane.run']" in out, out


def test_telemetry_off_imports_nothing() -> None:
    out = subprocess.run([sys.executable, "-c", _OFF], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]", out


def test_shared_lanes_time_the_wait_to_the_lease() -> None:
    from writelane import stores

    otel = Otel()
    store = stores.MemoryStore()
    first = writelane.Lane(seed=8, store=store, owner="first:1:a")
    second = writelane.Lane(seed=9, store=store, owner="second:1:b")
    otel.instrument(first)
    otel.instrument(second)
    held = threading.Event()
    release = threading.Event()

    def slow(attempt: writelane.Attempt) -> None:
        held.set()
        release.wait(10)

    holder = threading.Thread(target=first.run, args=("role/shared", slow))
    holder.start()
    assert held.wait(10)
    waiter = threading.Thread(target=second.run, args=("role/shared", lambda a: None))
    waiter.start()
    time.sleep(0.3)  # the second lane finds the lease held and queues for it
    release.set()
    holder.join(10)
    waiter.join(30)
    (waits,) = otel.points("writelane.lane.wait.duration")
    assert waits.count == 2, "one wait per lease acquired"
    assert waits.max >= 0.25, "the second lane waited for the first lane's lease"
    assert otel.total("writelane.writes") == 2 and len(otel.spans()) == 2
