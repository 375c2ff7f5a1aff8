"""writelane.lab as users get it: the iam_lab fixture, the stress harness over the README's
example scripts, the CloudTrail trail read by `writelane trail`, and bad input."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
import threading
from typing import Any, Dict, List

import pytest
from conftest import ROOT
from writelane.lab import LabProcess

EXAMPLES = os.path.join(ROOT, "bindings-python", "examples", "lab")


def _stress(*args: str) -> "tuple[int, Dict[str, Any]]":
    out = subprocess.run(
        [sys.executable, "-m", "writelane.lab", "stress", "--json", *args],
        capture_output=True, text=True, timeout=300,
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, json.loads(out.stdout)


def test_fixture_counts_conflicts_and_finds_lost_statements(iam_lab: LabProcess) -> None:
    from botocore.exceptions import ClientError

    iam = iam_lab.client()
    iam.create_role(RoleName="fixture-role", AssumeRolePolicyDocument="{}")
    doc = {"Version": "2012-10-17", "Statement": [{"Sid": "Seed", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}
    iam.put_role_policy(RoleName="fixture-role", PolicyName="p", PolicyDocument=json.dumps(doc))
    iam_lab.reset()
    barrier = threading.Barrier(6)
    outcomes: List[str] = []

    def naive(i: int) -> None:  # read-modify-write with no discipline, from 6 threads
        client = iam_lab.client(access_key=f"AKIATHREAD{i:010d}")
        cur = client.get_role_policy(RoleName="fixture-role", PolicyName="p")["PolicyDocument"]
        cur["Statement"].append({"Sid": f"T{i}", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
        barrier.wait()
        try:
            client.put_role_policy(RoleName="fixture-role", PolicyName="p", PolicyDocument=json.dumps(cur))
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])

    threads = [threading.Thread(target=naive, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert iam_lab.writes == outcomes.count("ok")
    assert iam_lab.conflicts == outcomes.count("ConcurrentModification") > 0
    lost = iam_lab.lost_statements("fixture-role", "p", ["Seed"] + [f"T{i}" for i in range(6)])
    # every writer read the seed only, so at most one T statement survives
    assert "Seed" not in lost and len(lost) >= 5, lost
    assert iam_lab.lost_statements("fixture-role", "p", ["Seed"]) == []
    assert iam_lab.statements("fixture-role", "no-such-policy") == []


def test_stress_naive_script_loses_changes() -> None:
    # Writes held 200 ms (not the default 20) so the 8 runs' writes overlap however unevenly
    # a loaded machine starts the processes.
    code, report = _stress("-n", "8", "--service-ms", "200", "--", sys.executable, os.path.join(EXAMPLES, "naive.py"))
    assert code == 1 and report["ok"] is False and report["schema"] == "writelane-lab-stress/1"
    assert report["runs"] == 8 and report["checked"] is True
    # overlapping writes were refused, and changes are missing from the final policy
    assert report["conflicts"] > 0 or report["lost"], report
    assert report["lost"] and report["present"] < 9
    assert report["failures"] == len(report["failed_runs"])
    for run in report["failed_runs"]:
        assert "ConcurrentModification" in run["output"], run
    assert "Seed" not in report["lost_silently"]


def test_stress_script_with_lane_keeps_every_change() -> None:
    code, report = _stress("-n", "8", "--", sys.executable, os.path.join(EXAMPLES, "with_lane.py"))
    assert code == 0 and report["ok"] is True, report
    assert report["failures"] == 0 and report["lost"] == [] and report["present"] == 9
    assert report["writes"] >= 8


def _writelane_bin() -> str:
    path = os.environ.get("WRITELANE_BIN") or os.path.join(ROOT, "target", "debug", "writelane")
    if not os.path.exists(path):
        subprocess.run(["cargo", "build", "-q", "-p", "writelane-cli"], cwd=ROOT, check=True)
    return path


def test_trail_of_a_stress_names_the_colliding_writers(tmp_path: Any) -> None:
    trail = str(tmp_path / "trail")
    code, report = _stress("-n", "6", "--service-ms", "200", "--trail", trail, "--",
                           sys.executable, os.path.join(EXAMPLES, "naive.py"))
    assert code == 1 and report["conflicts"] > 0, report
    files = os.listdir(trail)
    assert files and all(f.startswith("123456789012_CloudTrail_us-east-1_") and f.endswith(".json.gz") for f in files)
    out = subprocess.run([_writelane_bin(), "trail", "--json", trail], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout)
    assert found["reading"]["records_skipped"] == 0 and not found["reading"]["problems"]
    assert found["totals"]["conflicts"] == report["conflicts"]
    entity = next(e for e in found["entities"] if e["id"] == "123456789012:role/lab-stress")
    assert entity["conflicts"] == report["conflicts"]
    by_key = {w["writer"].rsplit("/", 1)[1]: w for w in entity["writers"]}
    # the runs that got ConcurrentModification are the writers trail finds conflicted
    conflicted = {k for k, w in by_key.items() if w["conflicts"] > 0}
    assert conflicted == {r["access_key"] for r in report["failed_runs"]}
    assert {f"AKIALAB{n:013d}" for n in range(1, 7)} <= set(by_key)
    assert entity["incidents"] and found["pairs"]
    assert all(p["a"].startswith("arn:aws:iam::123456789012:user/AKIALAB") for p in found["pairs"])


def test_stress_bad_input_is_one_line() -> None:
    for args, want in (
        (["--", "no-such-command-writelane"], "cannot start 'no-such-command-writelane': no such command"),
        ([], "no command given"),
        (["-n", "0", "--", "true"], "-n must be at least 1"),
        (["--endpoint", "http://127.0.0.1:9", "--", "true"], "no IAM lab answers at http://127.0.0.1:9"),
    ):
        out = subprocess.run([sys.executable, "-m", "writelane.lab", "stress", *args],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, (args, out)
        assert want in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)


def test_stress_reports_failed_runs_of_a_running_lab(iam_lab: LabProcess) -> None:
    code, report = _stress("--endpoint", iam_lab.endpoint, "-n", "3", "--role", "exit-role", "--",
                           sys.executable, "-c", "import os, sys; sys.exit(int(os.environ['WRITELANE_LAB_RUN'][3:]) % 2)")
    assert code == 1
    assert [r["run"] for r in report["failed_runs"]] == ["Run1", "Run3"]
    assert [r["exit"] for r in report["failed_runs"]] == [1, 1]
    assert report["lost"] == ["Run1", "Run2", "Run3"] and report["lost_silently"] == ["Run2"]


def test_readme_shows_the_example_scripts() -> None:
    with open(os.path.join(ROOT, "bindings-python", "README.md"), encoding="utf-8") as f:
        section = f.read().split("## Test your automation under contention\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    with open(os.path.join(EXAMPLES, "naive.py"), encoding="utf-8") as f:
        naive = f.read()
    with open(os.path.join(EXAMPLES, "with_lane.py"), encoding="utf-8") as f:
        with_lane = f.read()
    assert blocks == [naive, with_lane]


def test_serve_trail_records_look_like_cloudtrail(tmp_path: Any) -> None:
    import gzip

    from botocore.exceptions import ClientError

    trail = str(tmp_path / "t")
    with LabProcess(service_ms=1, trail=trail) as lab:
        iam = lab.client(access_key="AKIAEXAMPLE000000001")
        with pytest.raises(ClientError):
            iam.get_role(RoleName="missing")
        iam.create_role(RoleName="traced", AssumeRolePolicyDocument="{}", Path="/ci/")
        iam.tag_role(RoleName="traced", Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
        lab.config(inject_conflicts=1)
        with pytest.raises(ClientError):
            iam.delete_role(RoleName="traced")
    records: List[Dict[str, Any]] = []
    for name in sorted(os.listdir(trail)):
        with gzip.open(os.path.join(trail, name), "rt") as f:
            records += json.load(f)["Records"]
    by_name = {r["eventName"]: r for r in records}
    assert sorted(by_name) == ["CreateRole", "DeleteRole", "GetRole", "TagRole"]
    for r in records:
        assert r["eventSource"] == "iam.amazonaws.com" and r["recipientAccountId"] == "123456789012"
        assert r["userIdentity"]["accessKeyId"] == "AKIAEXAMPLE000000001"
        assert r["userIdentity"]["arn"] == "arn:aws:iam::123456789012:user/AKIAEXAMPLE000000001"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["eventTime"])
        assert r["userAgent"].startswith("Boto3/")
    assert by_name["GetRole"]["readOnly"] is True and by_name["GetRole"]["errorCode"] == "NoSuchEntity"
    assert by_name["CreateRole"]["readOnly"] is False and "errorCode" not in by_name["CreateRole"]
    assert by_name["CreateRole"]["requestParameters"] == {
        "roleName": "traced", "assumeRolePolicyDocument": "{}", "path": "/ci/"}
    assert by_name["TagRole"]["requestParameters"] == {
        "roleName": "traced", "tags": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]}
    assert by_name["DeleteRole"]["errorCode"] == "ConcurrentModification"


def test_stress_kills_runs_past_the_timeout(iam_lab: LabProcess, tmp_path: Any) -> None:
    import time

    script = tmp_path / "notexec.sh"
    script.write_text("#!/bin/sh\n")
    out = subprocess.run([sys.executable, "-m", "writelane.lab", "stress", "--", str(script)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "not executable" in out.stderr and "Traceback" not in out.stderr
    t0 = time.monotonic()
    code, report = _stress("--endpoint", iam_lab.endpoint, "-n", "2", "--role", "slow-role",
                           "--timeout", "1", "--no-check", "--", "sh", "-c", "sleep 30")
    assert time.monotonic() - t0 < 20
    assert code == 1 and report["checked"] is False and report["lost"] == []
    assert [(r["run"], r["timed_out"], r["exit"]) for r in report["failed_runs"]] == [
        ("Run1", True, None), ("Run2", True, None)]


def test_stress_report_into_a_closed_pipe_is_no_traceback(iam_lab: LabProcess) -> None:
    """`stress ... | head -1`: the reader leaves early; the harness ends without a traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "writelane.lab", "stress", "--endpoint", iam_lab.endpoint,
                             "-n", "2", "--role", "pipe-role", "--", sys.executable, "-c", "pass"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert "Traceback" not in err, err
