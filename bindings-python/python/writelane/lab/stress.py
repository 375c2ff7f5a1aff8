"""``python -m writelane.lab stress``: a command run N times at once against the lab.

Each run gets the lab in ``AWS_ENDPOINT_URL_IAM`` (the variable every current AWS SDK and
the AWS CLI read for IAM's endpoint), dummy credentials with an access key of its own (so
the lab's trail tells the runs apart), ``us-east-1``, no profile or config file (nothing
can reach a real account through them), and:

* ``WRITELANE_LAB_RUN``: the run's name, ``Run1`` ... ``RunN``; the run's change is a
  statement with that ``Sid`` in the role's inline policy;
* ``WRITELANE_LAB_ROLE``, ``WRITELANE_LAB_POLICY``: the role and its inline policy, created
  before the runs with one statement (``Sid`` ``Seed``);
* ``WRITELANE_LAB_ENDPOINT``: the lab's endpoint, for code that builds its client itself;
* ``WRITELANE_LAB_DIR``: a scratch directory shared by the runs of one stress (a
  ``writelane.stores.FileStore`` there stands in for a shared lease store).

Afterwards the harness reads the inline policy: every run's ``Sid`` (and ``Seed``) must be
in it. The exit status is 0 when every run exited 0 and no change was lost, 1 otherwise,
2 when the stress could not be carried out.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .control import Lab, LabProcess
from .server import LabError

SEED = {"Sid": "Seed", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}
#: variables removed from the runs' environment: they could point a run at a real account
_CLEARED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
            "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ENDPOINT_URL")


#: the version of ``stress --json``'s report (fields are only added within a major version)
SCHEMA = "writelane-lab-stress/1"
#: the access key of the harness's own calls (the role's set-up and the final check)
HARNESS_KEY = "AKIALABHARNESS000000"


def access_key(run: int) -> str:
    """The dummy access key of run ``run`` (1-based): 20 characters like a real one."""
    return f"AKIALAB{run:013d}"


def run_env(base: Dict[str, str], lab: Lab, run: int, role: str, policy: str, scratch: str) -> Dict[str, str]:
    """The environment of one run."""
    env = {k: v for k, v in base.items() if k not in _CLEARED}
    env.update(
        {
            "AWS_ENDPOINT_URL_IAM": lab.endpoint,
            "AWS_ACCESS_KEY_ID": access_key(run),
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "WRITELANE_LAB_RUN": f"Run{run}",
            "WRITELANE_LAB_ROLE": role,
            "WRITELANE_LAB_POLICY": policy,
            "WRITELANE_LAB_ENDPOINT": lab.endpoint,
            "WRITELANE_LAB_DIR": scratch,
        }
    )
    return env


def prepare(lab: Lab, role: str, policy: str) -> None:
    """Create ``role`` if missing and give it the inline ``policy`` with the seed only."""
    iam = lab.client(access_key=HARNESS_KEY)
    try:
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(TRUST))
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    doc = {"Version": "2012-10-17", "Statement": [SEED]}
    iam.put_role_policy(RoleName=role, PolicyName=policy, PolicyDocument=json.dumps(doc))


def _kill(proc: "subprocess.Popen[bytes]") -> None:
    """End a run and everything it started (its own session)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def _tail(path: str, limit: int = 2000) -> str:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - limit))
        return f.read().decode("utf-8", "replace")


def stress(
    command: Sequence[str],
    runs: int = 8,
    role: str = "lab-stress",
    policy: str = "lab",
    endpoint: Optional[str] = None,
    service_ms: int = 20,
    trail: Optional[str] = None,
    timeout_s: float = 300.0,
    check: bool = True,
) -> Dict[str, Any]:
    """Run ``command`` ``runs`` times at once against a lab and report (see the module)."""
    if not command:
        raise LabError("no command given: python -m writelane.lab stress [OPTIONS] -- COMMAND...")
    if runs < 1:
        raise LabError("-n must be at least 1")
    if endpoint is not None and trail is not None:
        raise LabError("--trail is a setting of the lab this command starts; with --endpoint, "
                       "start that lab with --trail instead")
    if shutil.which(command[0]) is None:
        why = "not executable" if os.path.isfile(command[0]) else "no such command"
        raise LabError(f"cannot start {command[0]!r}: {why}")
    started = None
    lab: Lab
    if endpoint is None:
        started = LabProcess(service_ms=service_ms, trail=trail)
        lab = started
    else:
        lab = Lab(endpoint)
    scratch = tempfile.mkdtemp(prefix="writelane-lab-")
    try:
        lab.stats()  # a lab answers there (LabError otherwise)
        try:
            prepare(lab, role, policy)
        except Exception as exc:  # noqa: BLE001 - botocore's errors, for one line
            raise LabError(f"cannot give role {role!r} its inline policy {policy!r} in the lab: {exc}") from None
        lab.reset()
        procs: List[Tuple[int, "subprocess.Popen[bytes]", str]] = []
        t0 = time.monotonic()
        for run in range(1, runs + 1):
            out = os.path.join(scratch, f".run{run}.out")
            with open(out, "wb") as sink:
                try:
                    proc = subprocess.Popen(
                        list(command),
                        env=run_env(dict(os.environ), lab, run, role, policy, scratch),
                        stdin=subprocess.DEVNULL,
                        stdout=sink,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                except OSError as exc:
                    for _, p, _o in procs:
                        _kill(p)
                    raise LabError(f"cannot start {command[0]!r}: {exc.strerror or exc}") from None
            procs.append((run, proc, out))
        deadline = t0 + timeout_s
        results: List[Dict[str, Any]] = []
        try:
            for run, proc, out in procs:
                try:
                    code: Optional[int] = proc.wait(max(0.0, deadline - time.monotonic()))
                    timed_out = False
                except subprocess.TimeoutExpired:
                    _kill(proc)
                    code, timed_out = None, True
                results.append({"run": f"Run{run}", "access_key": access_key(run), "exit": code,
                                "timed_out": timed_out, "output": _tail(out)})
        except BaseException:
            # Ctrl-C or an error here: the runs are in sessions of their own, so end them.
            for _, proc, _ in procs:
                _kill(proc)
            raise
        elapsed = time.monotonic() - t0
        stats = lab.stats()
        sids = [f"Run{run}" for run in range(1, runs + 1)]
        lost = lab.lost_statements(role, policy, ["Seed"] + sids, HARNESS_KEY) if check else []
        failures = [r for r in results if r["exit"] != 0]
        failed = {r["run"] for r in failures}
        report = {
            "schema": SCHEMA,
            "command": list(command),
            "runs": runs,
            "role": role,
            "policy": policy,
            "endpoint": lab.endpoint,
            "seconds": round(elapsed, 3),
            "writes": stats["writes"],
            "conflicts": stats["conflicts"],
            "calls": stats["calls"],
            "failures": len(failures),
            "failed_runs": [{k: r[k] for k in ("run", "access_key", "exit", "timed_out", "output")}
                            for r in failures],
            "checked": check,
            "present": (runs + 1 - len(lost)) if check else None,
            "lost": lost,
            "lost_silently": [sid for sid in lost if sid != "Seed" and sid not in failed],
            "ok": not failures and not lost,
        }
        return report
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if started is not None:
            started.stop()


def render(report: Dict[str, Any]) -> str:
    """The report for a terminal."""
    lines = [
        f"{report['runs']} runs of {' '.join(report['command'])} in {report['seconds']} s "
        f"against {report['endpoint']}",
        f"  IAM writes {report['writes']}, conflicts (ConcurrentModification) {report['conflicts']}",
        f"  runs that failed: {report['failures']}",
    ]
    for r in report["failed_runs"]:
        why = "timed out" if r["timed_out"] else f"exit {r['exit']}"
        last = [line for line in r["output"].strip().splitlines() if line.strip()][-1:] or ["(no output)"]
        lines.append(f"    {r['run']} ({r['access_key']}): {why}: {last[0][:200]}")
    if report["checked"]:
        total = report["runs"] + 1
        lines.append(
            f"  role {report['role']} inline policy {report['policy']}: {report['present']} of "
            f"{total} statements present (Seed, Run1..Run{report['runs']})"
        )
        if report["lost"]:
            lines.append(f"  LOST: {', '.join(report['lost'])}")
        if report["lost_silently"]:
            lines.append(f"  lost although their run exited 0 (overwritten): "
                         f"{', '.join(report['lost_silently'])}")
    lines.append("ok: every change is there" if report["ok"] else "NOT OK: changes lost or runs failed")
    return "\n".join(lines)
