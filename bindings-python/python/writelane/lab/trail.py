"""CloudTrail records of the calls a lab served, for ``writelane trail``.

Every IAM call becomes one record shaped like CloudTrail's own (``eventVersion`` 1.09):
``eventTime`` is the lab's clock when the call completed, ``eventSource``
``iam.amazonaws.com``, ``eventName`` the action, ``requestParameters`` the Query
parameters spelled as CloudTrail spells them (``roleName``, ``policyName``,
``policyDocument``, lists under their lowered name), ``errorCode``/``errorMessage`` for a
failed call (``ConcurrentModification`` for a refused overlap, moto's code otherwise) and
``readOnly``. The caller is an IAM user named after the access key of the request's SigV4
``Authorization`` header (``userIdentity.accessKeyId``, ``userName`` and the user ARN in
moto's account 123456789012), so runs given distinct keys are distinct writers.

Records are written as CloudTrail delivers them: ``{"Records": [...]}`` gzip JSON, one file
per batch (every ``flush_s`` seconds, or ``max_records`` records, and at close), named
``ACCOUNT_CloudTrail_REGION_YYYYMMDDTHHMMZ_UNIQUE.json.gz`` and written by rename, so a
file is never seen half written.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import threading
import time
import uuid
from typing import Any, Dict, List, Optional

from .server import Call

#: moto's default account, which every lab call is made in
ACCOUNT = "123456789012"
REGION = "us-east-1"
#: Query parameters that are not the call's own
_PROTOCOL_PARAMS = {"Action", "Version"}


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def request_parameters(params: Dict[str, str]) -> Optional[Dict[str, Any]]:
    """The Query parameters as CloudTrail's ``requestParameters``.

    ``RoleName`` is ``roleName``; ``Tags.member.1.Key`` is ``tags: [{"key": ...}]``.
    None when the call has no parameters.
    """
    tree: Dict[str, Any] = {}
    for name, value in params.items():
        if name in _PROTOCOL_PARAMS:
            continue
        parts = [p for p in name.split(".") if p not in ("member", "entry")]
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[parts[-1]] = value
    return _shape(tree) or None


def _shape(node: Any) -> Any:
    """Dicts keyed 1, 2, ... become lists; other keys are lowered (``RoleName``: ``roleName``)."""
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        return [_shape(node[k]) for k in sorted(node, key=int)]
    return {_lower_first(k): _shape(v) for k, v in sorted(node.items())}


def _time(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def record_of(call: Call) -> Dict[str, Any]:
    """The CloudTrail record of one call."""
    key = call.access_key or "anonymous"
    principal = "AIDA" + hashlib.sha256(key.encode()).hexdigest()[:17].upper()
    record: Dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": principal,
            "arn": f"arn:aws:iam::{ACCOUNT}:user/{key}",
            "accountId": ACCOUNT,
            "accessKeyId": key,
            "userName": key,
        },
        "eventTime": _time(call.time),
        "eventSource": "iam.amazonaws.com",
        "eventName": call.action,
        "awsRegion": REGION,
        "sourceIPAddress": call.source_ip,
        "userAgent": call.user_agent,
    }
    if call.error_code is not None:
        record["errorCode"] = call.error_code
        if call.error_message is not None:
            record["errorMessage"] = call.error_message
    record.update(
        {
            "requestParameters": request_parameters(call.params),
            "responseElements": None,
            "requestID": call.request_id,
            "eventID": str(uuid.uuid4()),
            "readOnly": bool(call.read_only),
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": ACCOUNT,
            "eventCategory": "Management",
        }
    )
    return record


class TrailWriter:
    """Collects records and writes them to ``directory`` in CloudTrail's file shape."""

    def __init__(self, directory: str, flush_s: float = 1.0, max_records: int = 1000) -> None:
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.flush_s = flush_s
        self.max_records = max_records
        self.lock = threading.Lock()
        self.pending: List[Dict[str, Any]] = []
        self.files = 0
        self.records = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def add(self, call: Call) -> None:
        """Queue the record of one call (the lab's ``on_call``)."""
        record = record_of(call)
        with self.lock:
            self.pending.append(record)
            full = len(self.pending) >= self.max_records
        if full:
            self.flush()

    def flush(self) -> None:
        """Write the queued records as one file (nothing when none are queued)."""
        with self.lock:
            batch, self.pending = self.pending, []
            if not batch:
                return
            self.files += 1
            self.records += len(batch)
            name = "{}_CloudTrail_{}_{}_{}.json.gz".format(
                ACCOUNT,
                REGION,
                time.strftime("%Y%m%dT%H%MZ", time.gmtime()),
                f"{self.files:06d}{uuid.uuid4().hex[:10]}",
            )
            path = os.path.join(self.directory, name)
            partial = os.path.join(self.directory, "." + name + ".partial")
            with gzip.open(partial, "wt", encoding="utf-8") as out:
                json.dump({"Records": batch}, out, separators=(",", ":"))
            os.replace(partial, path)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_s):
            self.flush()

    def close(self) -> None:
        """Write what is queued and stop the periodic flush."""
        self._stop.set()
        self._thread.join()
        self.flush()
