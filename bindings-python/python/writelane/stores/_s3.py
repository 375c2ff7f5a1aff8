"""The S3 lease store (boto3).

Layout: one object per entity at ``prefix + key`` in one bucket, whose body is the
record's JSON text as the core writes it (compact, the fields in the order
``version, owner, epoch, rvn, lease_ms, committed_token, holder, beat, next_ticket,
hold_ms, queue``, each ticket's as ``owner, ticket, beat``, UTF-8), the same object the
Rust, Node and Go adapters read and write, so every language shares one bucket and
prefix.

The choice: the record's ``rvn`` lives inside the object (every binding reads the same
record) and the ETag is only the condition. ``get`` is ``GetObject`` (S3 reads are
strongly consistent; no object is no record). ``put_if_absent`` is ``PutObject`` with
``If-None-Match: *``. ``compare_and_swap(expected_rvn)`` is ``PutObject`` with
``If-Match: <etag>``, where the ETag is that of the object whose body holds
``expected_rvn``: the one this store last read or wrote for the key, or else read now (a
record at another rvn is refused without writing). An ETag names the exact body and every
write draws a fresh rvn, so the put lands only if the record still has the expected rvn.

Replies: a 412 ``PreconditionFailed`` is a refusal, reported with the record read right
after it (a 404 on ``If-Match``: refused, no record); a 409 ``ConditionalRequestConflict``
(a concurrent conditional write to the key) is :class:`StoreUnavailable`: nothing was
written, and the lease client tries again after a poll. Nothing is ever deleted (a release
is a compare-and-swap to a free record), so an old holder's epoch cannot come back. Other
failures: a failed read, a request never sent and a 4xx are unavailable; a write with no
reply (a timeout, a dropped connection, a 5xx) is lost. IAM: ``s3:GetObject`` and
``s3:PutObject`` on ``arn:aws:s3:::BUCKET/PREFIX*``.
"""

from __future__ import annotations

import importlib
import json
from typing import Any, Dict, Optional, Tuple

from . import (
    Record,
    StoreLost,
    StoreUnavailable,
    BotoClientBound,
    WriteResult,
    check_key,
    check_rvn,
    parse_record,
)
from .._errors import UsageError

#: The record's fields in the order the core writes them (``version`` and the fields
#: after ``holder`` only in version 2 records).
_FIELDS = ("version", "owner", "epoch", "rvn", "lease_ms", "committed_token", "holder",
           "beat", "next_ticket", "hold_ms", "queue")
#: A queue ticket's fields in the order the core writes them.
_TICKET_FIELDS = ("owner", "ticket", "beat")


def _in_order(value: Any, fields: Tuple[str, ...]) -> Any:
    """A dict with ``fields`` first, in that order, then any others; anything else as it
    is."""
    if not isinstance(value, dict):
        return value
    ordered = {name: value[name] for name in fields if name in value}
    ordered.update(value)
    return ordered


def record_body(record: Record) -> bytes:
    """The object body of ``record``: the core's JSON text of it (compact, fields and each
    ticket's fields in the core's order, UTF-8 unescaped), byte for byte what the other
    bindings write."""
    ordered = _in_order(record, _FIELDS)
    if isinstance(ordered.get("queue"), list):
        ordered["queue"] = [_in_order(t, _TICKET_FIELDS) for t in ordered["queue"]]
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _client(endpoint_url: Optional[str], region: Optional[str], timeout_ms: int, **kwargs: Any) -> Any:
    # Loaded by name: boto3 and botocore are optional and ship no type information.
    boto3 = importlib.import_module("boto3")
    options: Dict[str, Any] = dict(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=timeout_ms / 1000,
        read_timeout=timeout_ms / 1000,
        # A checksum only where S3 requires one, as the Rust adapter does: a lease
        # record is a few hundred bytes and S3-compatible servers differ on the rest.
        request_checksum_calculation="when_required",
    )
    if endpoint_url is not None:
        # Local servers (moto, MinIO) serve buckets by path, not by host name.
        options["s3"] = {"addressing_style": "path"}
    config = importlib.import_module("botocore.config").Config(**options)
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config, **kwargs)


def _error(exc: BaseException) -> Tuple[str, int]:
    """The error code and HTTP status of a botocore ClientError (``""``, 0 otherwise)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return "", 0
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return code, int(status or 0)


def _check_conditional_puts(client: Any) -> None:
    """Refuse a boto3 client whose PutObject cannot send ``If-Match``/``If-None-Match``
    (botocore before 1.36): every write would fail before it is sent."""
    try:
        members = client.meta.service_model.operation_model("PutObject").input_shape.members
    except AttributeError:
        return  # not a boto3 client (a test double): its puts say what they do
    missing = [name for name in ("IfMatch", "IfNoneMatch") if name not in members]
    if missing:
        botocore = importlib.import_module("botocore")
        raise UsageError(
            "invalid_argument",
            f"client: this botocore ({botocore.__version__}) cannot send {' or '.join(missing)} on PutObject;"
            " the S3 store needs botocore 1.36 or later (pip install -U boto3)",
        )


class S3Store(BotoClientBound):
    """A lease store in the S3 bucket ``bucket``, one object per entity at
    ``prefix + key`` (``prefix`` defaults to none; end it with ``/`` to keep the objects
    in a folder).

    Pass ``endpoint_url``/``region`` (and any other ``boto3.client`` arguments): the
    adapter builds a client that makes one attempt per request, with connect and read
    timeouts of the store timeout (``timeout_ms``: the core's default until a lane hands
    over its policy's ``lease.store_timeout_ms``), checksums only where S3 requires them,
    and path-style addressing when ``endpoint_url`` is given. Or pass your own ``client``;
    configure it without retries and with timeouts no longer than the lane's store
    timeout. The bucket must exist.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any = None,
        endpoint_url: Optional[str] = None,
        region: Optional[str] = None,
        **client_args: Any,
    ) -> None:
        if not isinstance(bucket, str) or not bucket:
            raise UsageError("invalid_argument", f"bucket: expected a non-empty str, found {bucket!r}")
        if not isinstance(prefix, str):
            raise UsageError("invalid_argument", f"prefix: expected a str, found {prefix!r}")
        self.bucket = bucket
        self.prefix = prefix
        self._exc = importlib.import_module("botocore.exceptions")
        self._init_client(client, _client, endpoint_url, region, client_args)
        # Per key: the rvn and ETag of the object as last read or written here.
        self._etags: Dict[str, Tuple[int, str]] = {}
        _check_conditional_puts(self.client)  # fail early on bad client arguments, or an old one

    def object_key(self, key: str) -> str:
        """The object that holds the record of ``key``: ``prefix + key``."""
        return self.prefix + key

    def _remember(self, key: str, rvn: Any, etag: Optional[str]) -> None:
        with self._lock:
            if etag and isinstance(rvn, int):
                self._etags[key] = (rvn, etag)
            else:
                self._etags.pop(key, None)

    def _cached(self, key: str, rvn: int) -> Optional[str]:
        with self._lock:
            found = self._etags.get(key)
        return found[1] if found is not None and found[0] == rvn else None

    def _fail(self, exc: BaseException, wrote: bool) -> Exception:
        e = self._exc
        if isinstance(exc, e.ClientError):
            code, status = _error(exc)
            # A 4xx answer did nothing; after a 5xx the service may have written.
            if 400 <= status < 500 or not wrote:
                return StoreUnavailable(f"{code or status}: {exc}")
            return StoreLost(f"{code or status}: {exc}")
        if isinstance(exc, (e.EndpointConnectionError, e.ConnectTimeoutError, e.ParamValidationError)):
            return StoreUnavailable(str(exc))
        return StoreLost(str(exc)) if wrote else StoreUnavailable(str(exc))

    def _read(self, key: str) -> Tuple[Optional[Record], Optional[str]]:
        """The record at ``key`` and its ETag (``(None, None)`` without an object)."""
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
            body = reply["Body"].read()
        except Exception as exc:  # noqa: BLE001 - mapped to unavailable
            code, status = _error(exc)
            if code == "NoSuchKey" or (status == 404 and code != "NoSuchBucket"):
                with self._lock:
                    self._etags.pop(key, None)
                return None, None
            raise self._fail(exc, False) from exc
        record = parse_record(body, key)
        etag = reply.get("ETag")
        self._remember(key, record.get("rvn"), etag)
        return record, etag

    def get(self, key: str) -> Optional[Record]:
        """The record at ``key``, or ``None`` (S3 reads are strongly consistent)."""
        check_key(key)
        return self._read(key)[0]

    def _refused(self, key: str) -> WriteResult:
        """A refused write: the record found now."""
        try:
            return False, self._read(key)[0]
        except StoreUnavailable as exc:
            # The condition failed, so nothing was written; only the record is unknown.
            raise StoreUnavailable(f"refused, and the record could not be read: {exc}") from exc

    def _put(self, key: str, record: Record, if_match: Optional[str]) -> WriteResult:
        args: Dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self.object_key(key),
            "Body": record_body(record),
            "ContentType": "application/json",
        }
        if if_match is None:
            args["IfNoneMatch"] = "*"
        else:
            args["IfMatch"] = if_match
        try:
            reply = self.client.put_object(**args)
        except Exception as exc:  # noqa: BLE001 - mapped to refused/lost/unavailable
            code, status = _error(exc)
            if status == 412 or code == "PreconditionFailed":
                return self._refused(key)
            if status == 404 or code == "NoSuchKey":
                if code == "NoSuchBucket":
                    raise self._fail(exc, True) from exc
                return False, None  # If-Match on an object that is gone
            if code == "ConditionalRequestConflict":
                raise StoreUnavailable(f"{code}: a concurrent conditional write; nothing was written") from exc
            raise self._fail(exc, True) from exc
        self._remember(key, record.get("rvn"), reply.get("ETag"))
        return True, None

    def put_if_absent(self, key: str, record: Record) -> WriteResult:
        """Create the record if there is none (``If-None-Match: *``); refused with the
        record found."""
        check_key(key)
        return self._put(key, record, None)

    def compare_and_swap(self, key: str, expected_rvn: int, record: Record) -> WriteResult:
        """Replace the record if its ``rvn`` is ``expected_rvn`` (``If-Match`` on the ETag
        of the object that holds it); refused with the record found (``None`` if there is
        none)."""
        check_key(key)
        check_rvn(expected_rvn)
        etag = self._cached(key, expected_rvn)
        if etag is None:
            current, etag = self._read(key)
            if current is None:
                return False, None
            if current["rvn"] != expected_rvn:
                return False, current
            if not etag:
                raise StoreUnavailable(f"{key!r}: the object came back without an ETag; nothing was written")
        return self._put(key, record, etag)

    def __repr__(self) -> str:
        return f"S3Store({self.bucket!r}, {self.prefix!r})"
