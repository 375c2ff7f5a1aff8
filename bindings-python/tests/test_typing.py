"""The package and its stubs pass `mypy --strict`, and the stubs match the extension."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import HERE

PKG = os.path.abspath(os.path.join(HERE, ".."))

USAGE = '''
import asyncio
from typing import Optional
import writelane

lane = writelane.Lane("iam", seed=1)

def read() -> Optional[str]:
    return "v1"

def write(attempt: writelane.Attempt) -> int:
    attempt.set_token("v2")
    reported: Optional[str] = attempt.token
    return attempt.number

n: int = lane.run("role/a", write, read=read, expected="v1", deadline_ms=1000)

async def awrite(attempt: writelane.Attempt) -> str:
    return attempt.entity

s: str = asyncio.run(lane.run_async("role/a", awrite))
strategy = writelane.RetryStrategy("aws-standard")
token = strategy.acquire("iam")
delay: int = strategy.refresh(token, code="Throttling", status=400)
strategy.record_success(token)
level: int = strategy.capacity("iam")
policy = writelane.Policy.preset("iam", deadline_ms=5000)
text: str = policy.to_json()
events: list[writelane.events.Event] = lane.events()
t: str = writelane.policy_token({"Statement": []})
clock = writelane.ManualClock()
virtual = writelane.Lane("iam", clock=clock, store=writelane.stores.MemoryStore())
m: int = virtual.run("role/a", write)
now: int = clock.now_ms()
released = writelane.stores.force_release(writelane.stores.MemoryStore(), "role/a", expected_rvn=1)
outcome: str = released.result
freed: bool = released.released
shared_policy: writelane.Policy = policy.for_store()

def uread() -> tuple[list[str], Optional[str]]:
    return [], "v1"

def uchange(doc: list[str]) -> list[str]:
    return doc + ["x"]

def uwrite(doc: list[str], attempt: writelane.Attempt) -> None:
    attempt.set_token("v2")

committed: Optional[str] = lane.update("role/a", read=uread, change=uchange, write=uwrite)

async def aread() -> tuple[list[str], Optional[str]]:
    return [], None

committed = asyncio.run(lane.update_async("role/a", read=aread, change=uchange, write=uwrite))
policy_doc: dict[str, object] = writelane.iam.put_statement(None, {"Sid": "A", "Effect": "Allow"})
tags: list[dict[str, str]] = writelane.iam.set_tags(None, {"team": "a"})
'''


def test_mypy_strict(tmp_path: "os.PathLike[str]") -> None:
    usage = os.path.join(str(tmp_path), "usage.py")
    with open(usage, "w", encoding="utf-8") as f:
        f.write(USAGE)
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--python-version", "3.10",
         os.path.join(PKG, "python", "writelane"), usage],
        capture_output=True, text=True, env={**os.environ, "MYPYPATH": os.path.join(PKG, "python")},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Success" in out.stdout


def test_stubtest_native() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "writelane._native", "--mypy-config-file", os.devnull],
        capture_output=True, text=True, cwd=str(PKG),
    )
    assert out.returncode == 0, out.stdout + out.stderr
