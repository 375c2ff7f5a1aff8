"""The wheel: abi3 tag, typing files, and the installed package is the wheel's."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import zipfile

import writelane
from conftest import HERE

PKG = os.path.abspath(os.path.join(HERE, ".."))


def _wheel() -> str:
    path = os.environ.get("WRITELANE_WHEEL")
    if not path:
        found = sorted(glob.glob(os.path.join(PKG, "dist", "writelane-*.whl")), key=os.path.getmtime)
        assert found, "no wheel in bindings-python/dist: build one with test.sh (maturin build)"
        path = found[-1]
    return path


def test_wheel_is_abi3_and_typed() -> None:
    path = _wheel()
    name = os.path.basename(path)
    assert "-cp39-abi3-" in name, name
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
    assert "writelane/py.typed" in names
    assert "writelane/_native.pyi" in names
    assert any(n.startswith("writelane/_native") and n.endswith(".so") for n in names), names
    assert {"writelane/__init__.py", "writelane/botocore.py", "writelane/events.py"} <= names
    assert {"writelane/stores/__init__.py", "writelane/stores/_file.py", "writelane/stores/_redis.py",
            "writelane/stores/_dynamodb.py"} <= names
    with zipfile.ZipFile(path) as z:
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "Requires-Python: >=3.9" in meta
    # writelane.lab: the extra that pulls moto's server, and the pytest plugin's entry point
    assert {f"writelane/lab/{m}.py" for m in ("__init__", "__main__", "cli", "control", "pytest_plugin",
                                              "server", "stress", "trail")} <= names
    assert "Provides-Extra: lab" in meta
    assert any(line.startswith("Requires-Dist: moto[server]>=") and "extra == 'lab'" in line
               for line in meta.splitlines()), meta
    assert entry_points.split() == ["[pytest11]", "writelane-lab=writelane.lab.pytest_plugin"]
    # writelane.otel: the extra that pulls the OpenTelemetry API (and nothing else)
    assert "writelane/otel.py" in names and "Provides-Extra: otel" in meta
    assert [line for line in meta.splitlines() if "extra == 'otel'" in line] == [
        "Requires-Dist: opentelemetry-api>=1.20 ; extra == 'otel'"], meta


def test_installed_package_is_abi3() -> None:
    assert writelane._native.__file__.endswith(".abi3.so"), writelane._native.__file__
    if os.environ.get("WRITELANE_WHEEL"):
        # test.sh installed the wheel it built: that is what these tests import.
        assert "site-packages" in writelane.__file__, writelane.__file__


def test_botocore_stays_optional() -> None:
    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name.split('.')[0] in ('botocore', 'boto3'):\n"
        "        raise ImportError('no ' + name)\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        "import writelane\n"
        "lane = writelane.Lane(seed=1)\n"
        "try:\n"
        "    lane.run('role/a', lambda a: 1 / 0)\n"
        "except writelane.GaveUp as e:\n"
        "    assert e.reason == 'fatal' and isinstance(e.__cause__, ZeroDivisionError)\n"
        "assert 'botocore' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok", out.stderr
