"""The IAM contention lab: a local IAM that answers overlapping writes to one role, user,
group or policy with IAM's real ``ConcurrentModification`` (HTTP 409), for testing
automation under contention.

* ``python -m writelane.lab serve --port P [--service-ms 20] [--trail DIR]``: the lab
  (moto behind the conflict front); ``--trail`` writes every call as CloudTrail records for
  ``writelane trail DIR``.
* ``python -m writelane.lab stress [-n N] -- COMMAND...``: a command run N times at once
  against a lab, checked for conflicts, failed runs and lost changes.
* the pytest fixture ``iam_lab`` (plugin ``writelane.lab.pytest_plugin``, loaded by pytest
  once ``writelane[lab]`` is installed).

Needs ``writelane[lab]`` (moto's server). The modules of this package import only the
standard library and each other (moto and boto3 when a lab starts or a client is made), so
they also run from a checkout without the compiled extension (``tests/iamlab/iamlab.py``
loads them by path).
"""

from .control import Lab, LabProcess, start_lab
from .server import LabError, LabServer

__all__ = ["Lab", "LabError", "LabProcess", "LabServer", "start_lab"]
