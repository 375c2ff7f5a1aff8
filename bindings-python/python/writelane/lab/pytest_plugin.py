"""The pytest plugin of ``writelane[lab]``: the ``iam_lab`` fixture.

``iam_lab`` is a lab started once per test session (a child process, 20 ms service time)::

    def test_my_automation(iam_lab):
        iam = iam_lab.client()                  # boto3 IAM client aimed at the lab
        iam_lab.reset()                         # zero the counters
        run_my_automation(endpoint=iam_lab.endpoint)
        assert iam_lab.conflicts == 0           # or .writes, or .stats() for everything
        assert iam_lab.lost_statements("deploy", "inline", ["A", "B"]) == []

The lab's IAM state lasts the whole session: use names of your own per test.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from .control import LabProcess
from .server import LabError


@pytest.fixture(scope="session")
def iam_lab() -> Iterator[LabProcess]:
    """A running IAM contention lab for the session: ``endpoint``, ``client(service="iam",
    access_key="testing")``, ``stats()``, ``writes``, ``conflicts``, ``reset()``,
    ``config(service_ms=, inject_conflicts=)``, ``statements(role, policy)`` and
    ``lost_statements(role, policy, sids)``."""
    try:
        lab = LabProcess(service_ms=20)
    except LabError as exc:
        pytest.fail(f"iam_lab: {exc}", pytrace=False)
    try:
        yield lab
    finally:
        lab.stop()
