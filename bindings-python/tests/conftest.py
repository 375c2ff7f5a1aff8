"""Shared fixtures: the repository paths and the local IAM contention lab.

The lab is the package's own ``writelane.lab``: its pytest plugin (entry point
``pytest11``, installed with the wheel) provides the ``iam_lab`` fixture, which ``lab``
names for these tests.
"""

from __future__ import annotations

import os

import pytest
from writelane.lab import Lab, LabProcess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
VECTORS = os.path.join(ROOT, "tests", "vectors")

__all__ = ["HERE", "Lab", "ROOT", "VECTORS"]


@pytest.fixture(scope="session")
def lab(iam_lab: LabProcess) -> Lab:
    """The lab, started once for the session with a 20 ms service time (``iam_lab``)."""
    return iam_lab
