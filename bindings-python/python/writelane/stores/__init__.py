"""Lease stores: where writers on different processes or machines share a lease.

A lease store keeps ONE record per key (the entity's name)::

    {"owner": str, "epoch": int, "rvn": int, "lease_ms": int,
     "committed_token": str | None, "holder": str | None}

and, in a version 2 record (the queue-like hand-off), ``"version": 2`` first and, when
not zero or empty, ``"beat": int``, ``"next_ticket": int``, ``"hold_ms": int`` and
``"queue": [{"owner": str, "ticket": int, "beat": int}, ...]`` (at most 64 tickets, oldest
first) after ``holder``: the fields of the core's JSON form, in its order. Adapters keep
every field they are given; one that dropped the version 2 fields would turn the record
back into version 1 (no queue forms).

and offers exactly three consistent primitives (see :class:`LeaseStore`): ``get``,
``put_if_absent`` and ``compare_and_swap``. The core decides everything else, the record's
format and validation included: adapters keep the record as the store holds it and hand
what they read to :func:`parse_record` (the core's parser), never checking a field
themselves. The engine sends store operations in the core's JSON form, and :func:`apply`
carries one out with an adapter and returns the reply, turning the adapter's failures into
``lost`` (the request may have been carried out, no reply came) or ``unavailable`` (it
surely was not). No exception escapes :func:`apply` for a failing store.

Adapters: :class:`MemoryStore` (one process, for tests), :class:`FileStore` (processes on
one host, an ``flock``-guarded JSON file), :class:`RedisStore` (redis-py),
:class:`DynamoDBStore` and :class:`S3Store` (boto3). Adapters never retry on their own,
and bound every request by the policy's ``lease.store_timeout_ms``, which a
:class:`writelane.Lane` hands them with ``use_timeout_ms`` (standalone, they use the
core's default).
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Protocol, Tuple, Union

from .. import _native
from .._errors import Error, RecordError, UsageError

#: A lease record as a dict of the fields of the core's JSON form: the six version 1
#: fields, and in a version 2 record ``version``, ``beat``, ``next_ticket``, ``hold_ms``
#: and ``queue`` (those the core writes: zeros and an empty queue are left out).
Record = Dict[str, Any]

#: What a conditional write returns: ``(True, None)`` when it was carried out, else
#: ``(False, record found)`` (``None`` when there is no record).
WriteResult = Tuple[bool, Optional[Record]]

#: The store timeout of an adapter no lane has configured: the core's default.
DEFAULT_TIMEOUT_MS: int = _native.DEFAULT_STORE_TIMEOUT_MS


class StoreError(Error):
    """A lease store could not carry out an operation (raised by adapters, caught by
    :func:`apply`)."""


class StoreUnavailable(StoreError):
    """The store could not be reached or refused the request outright: the operation
    surely did not take effect."""


class StoreLost(StoreError):
    """The request was sent and no reply came back: it may or may not have taken
    effect."""


class StoreCorrupt(StoreUnavailable):
    """The store holds a value under the key that the core does not accept as a lease
    record (someone wrote it by hand?); ``field`` and ``rule`` say why. Treated as
    unavailable: writers wait, then give up without writing."""

    def __init__(self, message: str, field: str = "$", rule: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.rule = rule


def parse_record(data: Union[bytes, str, Record], key: Optional[str] = None) -> Record:
    """The record as a store holds it — JSON text or bytes, or (DynamoDB) the object built
    from an item's attributes — parsed and validated by the core. A value the core refuses
    raises :class:`StoreCorrupt` naming the key, the field and the rule."""
    where = f"stored record at {key!r}" if key is not None else "stored record"
    if isinstance(data, dict):
        try:
            data = json.dumps(data)
        except (TypeError, ValueError) as exc:
            raise StoreCorrupt(f"{where}: not representable as JSON: {exc}") from None
    try:
        return _native.parse_record(data)
    except RecordError as exc:
        raise StoreCorrupt(f"{where}: {exc}", exc.field, exc.rule) from None
    except UsageError as exc:
        raise StoreCorrupt(f"{where}: {exc}") from None


def check_key(key: Any) -> str:
    """Check a store key (a non-empty str)."""
    if not isinstance(key, str) or not key:
        raise UsageError("invalid_argument", f"key: expected a non-empty str, found {key!r}")
    return key


def check_rvn(rvn: Any) -> int:
    """Check an expected record version number (an int in ``0..2**64``)."""
    if isinstance(rvn, bool) or not isinstance(rvn, int) or not 0 <= rvn < 1 << 64:
        raise UsageError("invalid_argument", f"expected_rvn: expected an int in 0..2**64, found {rvn!r}")
    return rvn


class TimeoutBound:
    """The store timeout of an adapter: the core's default until a lane hands over its
    policy's ``lease.store_timeout_ms`` with :meth:`use_timeout_ms` (several lanes: the
    shortest)."""

    timeout_ms: int = DEFAULT_TIMEOUT_MS
    _bound: bool = False

    def use_timeout_ms(self, timeout_ms: int) -> None:
        """Bound every request by ``timeout_ms`` milliseconds."""
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int) or timeout_ms <= 0:
            raise UsageError("invalid_argument", f"timeout_ms: expected a positive int, found {timeout_ms!r}")
        if self._bound and timeout_ms >= self.timeout_ms:
            return
        changed = timeout_ms != self.timeout_ms
        self.timeout_ms, self._bound = timeout_ms, True
        if changed:
            self._timeout_changed()

    def _timeout_changed(self) -> None:
        """Rebuild what depends on the timeout (a client)."""


class BotoClientBound(TimeoutBound):
    """An adapter over a boto3 client: the one given to the constructor (which keeps its own
    configuration), or one built on first use by ``make(endpoint_url, region, timeout_ms,
    **client_args)`` and built again after the store timeout changes."""

    def _init_client(self, client: Any, make: Callable[..., Any], endpoint_url: Optional[str],
                     region: Optional[str], client_args: Dict[str, Any]) -> None:
        self._given = client
        self._built: Any = None
        self._make = make
        self._make_args: Tuple[Optional[str], Optional[str], Dict[str, Any]] = (endpoint_url, region, client_args)
        self._lock = threading.Lock()

    def _build(self) -> Any:
        with self._lock:
            if self._built is None:
                endpoint_url, region, client_args = self._make_args
                self._built = self._make(endpoint_url, region, self.timeout_ms, **client_args)
            return self._built

    @property
    def client(self) -> Any:
        """The boto3 client."""
        if self._given is not None:
            return self._given
        return self._built if self._built is not None else self._build()

    def _timeout_changed(self) -> None:
        with self._lock:
            self._built = None


class LeaseStore(Protocol):
    """What a lease store adapter implements: three strongly consistent primitives.

    Each raises :class:`StoreUnavailable` when the store could not be reached (the
    operation surely did not happen) and :class:`StoreLost` when a request went out and no
    reply came back. Records go in as dicts; a record read back may be returned as the
    dict :func:`parse_record` gives, or as the JSON text or bytes the store holds. An
    adapter may also have ``use_timeout_ms(ms)``: a lane calls it with its policy's
    ``lease.store_timeout_ms``.
    """

    def get(self, key: str) -> Optional[Record]:
        """The record at ``key``, or ``None``."""
        ...

    def put_if_absent(self, key: str, record: Record) -> WriteResult:
        """Create the record if there is none; refused with the record found."""
        ...

    def compare_and_swap(self, key: str, expected_rvn: int, record: Record) -> WriteResult:
        """Replace the whole record if its ``rvn`` is ``expected_rvn``; refused with the
        record found (``None`` if there is none)."""
        ...


def _checked(found: Any) -> Optional[Record]:
    return None if found is None else parse_record(found)


def _carry_out(store: LeaseStore, kind: str, key: str, rvn: Optional[int], record: Optional[Record]) -> Dict[str, Any]:
    """Carry out one parsed operation; the reply in the core's JSON form."""
    call: Callable[[], Any]
    if kind == "get":
        call = lambda: store.get(key)  # noqa: E731
    elif kind == "put_if_absent":
        call = lambda: store.put_if_absent(key, record)  # type: ignore[arg-type]  # noqa: E731
    else:
        call = lambda: store.compare_and_swap(key, rvn, record)  # type: ignore[arg-type]  # noqa: E731
    unknown = {"reply": "lost" if kind != "get" else "unavailable"}
    try:
        result = call()
    except StoreLost:
        return {"reply": "lost"}
    except StoreUnavailable:
        return {"reply": "unavailable"}
    except Exception:  # noqa: BLE001 - an adapter bug or an unmapped client error
        # Whether a write went out is unknown: reading back is always safe.
        return unknown
    try:
        if kind == "get":
            return {"reply": "found", "record": _checked(result)}
        ok, current = result  # type: ignore[misc]
        if ok:
            return {"reply": "done"}
        return {"reply": "refused", "current": _checked(current)}
    except (StoreCorrupt, TypeError, ValueError):
        # The adapter answered something that is not a reply: treat as no reply.
        return unknown


def _operation(text: str) -> Tuple[str, str, Optional[int], Optional[Record]]:
    try:
        return _native.store_op(text)
    except RecordError as exc:
        raise UsageError("invalid_record", f"operation.record.{exc.field}: {exc.rule}") from None


def apply(store: LeaseStore, operation: Dict[str, Any]) -> Dict[str, Any]:
    """Carry out one store operation in the core's JSON form with ``store``; return the
    reply in the core's JSON form.

    ``{"op": "get", "key": K}`` -> ``{"reply": "found", "record": R | None}``;
    ``{"op": "put_if_absent", "key": K, "record": R}`` and
    ``{"op": "compare_and_swap", "key": K, "expected_rvn": N, "record": R}`` ->
    ``{"reply": "done"}`` or ``{"reply": "refused", "current": R | None}``. A store that
    fails gives ``{"reply": "lost"}`` or ``{"reply": "unavailable"}``; no exception the
    adapter raises escapes. The core parses the operation: a malformed one raises
    :class:`writelane.UsageError` (``invalid_input``, or ``invalid_record`` naming the
    record's field).
    """
    if not isinstance(operation, dict):
        raise UsageError("invalid_argument", f"operation: expected a dict, found {type(operation).__name__}")
    try:
        text = json.dumps(operation)
    except (TypeError, ValueError) as exc:
        raise UsageError("invalid_argument", f"operation: not representable as JSON: {exc}") from None
    return _carry_out(store, *_operation(text))


def apply_json(store: LeaseStore, operation: str) -> str:
    """:func:`apply` on the core's JSON text, giving the reply's JSON text (what a lane's
    driver exchanges with the engine)."""
    return json.dumps(_carry_out(store, *_operation(operation)))


@dataclass(frozen=True)
class ForceReleaseResult:
    """What a :func:`force_release` came to, decided by the core; one of four ``result``\\s:

    * ``"no_record"``: the store holds no record for the key; nothing to release;
    * ``"already_free"``: the record has no owner; ``record`` is the record found, left
      unchanged;
    * ``"released"``: ``record`` is the free record written (epoch bumped; a holder that
      still runs finds out at its next renewal and stops);
    * ``"changed"``: the record was not at the expected rvn, or changed between the read
      and the compare-and-swap; nothing was written; ``current`` is the record found
      (``None`` if gone). Read it again and decide again.
    """

    result: str
    record: Optional[Record] = None
    current: Optional[Record] = None

    @property
    def released(self) -> bool:
        """Whether this call freed the lease."""
        return self.result == "released"

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "ForceReleaseResult":
        """From the core's JSON form (``{"result": ..., "record"/"current": ...}``)."""
        return cls(str(data["result"]), data.get("record"), data.get("current"))

    def to_dict(self) -> Dict[str, Any]:
        """The core's JSON form."""
        out: Dict[str, Any] = {"result": self.result}
        if self.result in ("already_free", "released"):
            out["record"] = self.record
        elif self.result == "changed":
            out["current"] = self.current
        return out


def force_release(
    store: LeaseStore, key: str, *, expected_rvn: Optional[int] = None, entropy: Optional[int] = None
) -> ForceReleaseResult:
    """Free a stuck lease at ``key`` safely, as the core plans it: read the record, then
    replace it by compare-and-swap (never delete it) with a free one whose epoch is bumped
    (so the stuck holder's fence is stale) and whose committed token is cleared (the next
    writer reads the entity first). With ``expected_rvn`` only the holding you inspected is
    released (else the result is ``changed``). ``entropy`` (64 bits) draws the new rvn;
    by default it is random.

    Returns a :class:`ForceReleaseResult`. Raises :class:`StoreUnavailable` when the read
    gets no answer, and :class:`StoreLost` (or :class:`StoreUnavailable`) when the
    compare-and-swap's outcome is unknown: read the record again.
    """
    check_key(key)
    if expected_rvn is not None:
        check_rvn(expected_rvn)
    if entropy is None:
        entropy = secrets.randbits(64)
    elif isinstance(entropy, bool) or not isinstance(entropy, int) or not 0 <= entropy < 1 << 64:
        raise UsageError("invalid_argument", f"entropy: expected an int in 0..2**64, found {entropy!r}")
    read = _carry_out(store, "get", key, None, None)
    if read["reply"] != "found":
        raise StoreUnavailable(f"{key!r}: the store did not answer the read; nothing was written")
    found = read["record"]
    done, text = _native.plan_force_release(key, None if found is None else json.dumps(found), expected_rvn, entropy)
    if not done:
        reply = apply_json(store, text)
        finished = _native.finish_force_release(text, reply)
        if finished is None:
            lost = json.loads(reply)["reply"] == "lost"
            exc = StoreLost if lost else StoreUnavailable
            raise exc(f"{key!r}: the compare-and-swap got no answer ({'lost' if lost else 'unavailable'}); read the record again")
        text = finished
    return ForceReleaseResult.from_dict(json.loads(text))


class MemoryStore:
    """A lease store in a dict, for tests and for writers in one process.

    Thread-safe; keeps each record as the JSON text the other stores keep, parsed by the
    core on the way out.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: Dict[str, Union[str, bytes]] = {}

    def get(self, key: str) -> Optional[Record]:
        """The record at ``key``, or ``None``."""
        with self._lock:
            found = self._records.get(check_key(key))
        return None if found is None else parse_record(found, key)

    def put_if_absent(self, key: str, record: Record) -> WriteResult:
        """Create the record if there is none; refused with the record found."""
        text = json.dumps(record)
        with self._lock:
            found = self._records.get(check_key(key))
            if found is None:
                self._records[key] = text
                return True, None
        return False, parse_record(found, key)

    def compare_and_swap(self, key: str, expected_rvn: int, record: Record) -> WriteResult:
        """Replace the record if its ``rvn`` is ``expected_rvn``."""
        check_rvn(expected_rvn)
        text = json.dumps(record)
        with self._lock:
            found = self._records.get(check_key(key))
            if found is None:
                return False, None
            current = parse_record(found, key)
            if current["rvn"] != expected_rvn:
                return False, current
            self._records[key] = text
            return True, None

    def snapshot(self) -> Dict[str, Record]:
        """Every record, by key."""
        with self._lock:
            items = list(self._records.items())
        return {k: parse_record(v, k) for k, v in items}


def __getattr__(name: str) -> Any:
    # The adapters for optional clients load on first use.
    if name == "FileStore":
        from ._file import FileStore

        return FileStore
    if name == "RedisStore":
        from ._redis import RedisStore

        return RedisStore
    if name in ("DynamoDBStore", "create_table"):
        from . import _dynamodb

        return getattr(_dynamodb, name)
    if name == "S3Store":
        from ._s3 import S3Store

        return S3Store
    raise AttributeError(f"module 'writelane.stores' has no attribute {name!r}")


__all__ = [
    "DEFAULT_TIMEOUT_MS",
    "DynamoDBStore",
    "FileStore",
    "ForceReleaseResult",
    "LeaseStore",
    "MemoryStore",
    "Record",
    "RecordError",
    "RedisStore",
    "S3Store",
    "StoreCorrupt",
    "StoreError",
    "StoreLost",
    "StoreUnavailable",
    "TimeoutBound",
    "WriteResult",
    "apply",
    "apply_json",
    "create_table",
    "force_release",
    "parse_record",
]
