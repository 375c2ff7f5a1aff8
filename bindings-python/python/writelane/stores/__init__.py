"""Lease stores: where writers on different processes or machines share a lease.

A lease store keeps ONE record per key (the entity's name)::

    {"owner": str, "epoch": int, "rvn": int, "lease_ms": int,
     "committed_token": str | None, "holder": str | None}

and offers exactly three consistent primitives (see :class:`LeaseStore`): ``get``,
``put_if_absent`` and ``compare_and_swap``. The engine decides everything else; it sends
store operations in the core's JSON form, and :func:`apply` carries one out with an
adapter and returns the reply, turning the adapter's failures into ``lost`` (the request
may have been carried out, no reply came) or ``unavailable`` (it surely was not). No
exception escapes :func:`apply` for a failing store.

Adapters: :class:`MemoryStore` (one process, for tests), :class:`FileStore` (processes on
one host, an ``flock``-guarded JSON file), :class:`RedisStore` (redis-py) and
:class:`DynamoDBStore` (boto3). Adapters never retry on their own: a retried conditional
write whose first try landed would be refused with the writer's own record, and a lease
renewal refused that way is taken as a lost lease.
"""

from __future__ import annotations

import copy
import threading
from typing import Any, Callable, Dict, Optional, Protocol, Tuple

from .._errors import Error, UsageError

#: A lease record as a dict of the six fields.
Record = Dict[str, Any]

#: What a conditional write returns: ``(True, None)`` when it was carried out, else
#: ``(False, record found)`` (``None`` when there is no record).
WriteResult = Tuple[bool, Optional[Record]]

#: The fields of a record, in order.
FIELDS = ("owner", "epoch", "rvn", "lease_ms", "committed_token", "holder")

_MAX_INT = (1 << 53) - 1


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
    """The store holds a value under the key that is not a lease record (someone wrote it
    by hand?). Treated as unavailable: writers wait, then give up without writing."""


def check_record(record: Any, what: str = "record") -> Record:
    """Check that ``record`` is a lease record and return a plain copy of it.

    Raises :class:`writelane.UsageError` (kind ``invalid_record``) naming the field.
    """
    if not isinstance(record, dict):
        raise UsageError("invalid_record", f"{what}: expected a dict, found {type(record).__name__}")
    extra = sorted(set(record) - set(FIELDS))
    if extra:
        raise UsageError("invalid_record", f"{what}.{extra[0]}: unknown field")
    out: Record = {}
    for name in FIELDS:
        if name not in record:
            raise UsageError("invalid_record", f"{what}.{name}: missing")
        value = record[name]
        if name == "owner":
            if not isinstance(value, str):
                raise UsageError("invalid_record", f"{what}.owner: expected str, found {type(value).__name__}")
        elif name in ("committed_token", "holder"):
            if value is not None and not isinstance(value, str):
                raise UsageError("invalid_record", f"{what}.{name}: expected str or None, found {type(value).__name__}")
        else:
            if isinstance(value, bool) or not isinstance(value, int):
                raise UsageError("invalid_record", f"{what}.{name}: expected int, found {type(value).__name__}")
            if not 0 <= value <= _MAX_INT:
                raise UsageError("invalid_record", f"{what}.{name}: must be in 0..2**53, found {value}")
        out[name] = value
    return out


def check_key(key: Any) -> str:
    """Check a store key (a non-empty str)."""
    if not isinstance(key, str) or not key:
        raise UsageError("invalid_argument", f"key: expected a non-empty str, found {key!r}")
    return key


def check_rvn(rvn: Any) -> int:
    """Check an expected record version number."""
    if isinstance(rvn, bool) or not isinstance(rvn, int) or not 0 <= rvn <= _MAX_INT:
        raise UsageError("invalid_argument", f"expected_rvn: expected an int in 0..2**53, found {rvn!r}")
    return rvn


def stored_record(value: Any, key: str) -> Record:
    """Check a record read back from a store; a malformed one raises
    :class:`StoreCorrupt` naming the key and field."""
    try:
        return check_record(value, f"stored record at {key!r}")
    except UsageError as exc:
        raise StoreCorrupt(str(exc)) from None


class LeaseStore(Protocol):
    """What a lease store adapter implements: three strongly consistent primitives.

    Each raises :class:`StoreUnavailable` when the store could not be reached (the
    operation surely did not happen) and :class:`StoreLost` when a request went out and no
    reply came back. Records are plain dicts of the six :data:`FIELDS`.
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


def apply(store: LeaseStore, operation: Dict[str, Any]) -> Dict[str, Any]:
    """Carry out one store operation in the core's JSON form with ``store``; return the
    reply in the core's JSON form.

    ``{"op": "get", "key": K}`` -> ``{"reply": "found", "record": R | None}``;
    ``{"op": "put_if_absent", "key": K, "record": R}`` and
    ``{"op": "compare_and_swap", "key": K, "expected_rvn": N, "record": R}`` ->
    ``{"reply": "done"}`` or ``{"reply": "refused", "current": R | None}``. A store that
    fails gives ``{"reply": "lost"}`` or ``{"reply": "unavailable"}``; no exception the
    adapter raises escapes. A malformed operation raises :class:`writelane.UsageError`.
    """
    if not isinstance(operation, dict):
        raise UsageError("invalid_argument", f"operation: expected a dict, found {type(operation).__name__}")
    kind = operation.get("op")
    key = check_key(operation.get("key"))
    call: Callable[[], Any]
    if kind == "get":
        call = lambda: store.get(key)  # noqa: E731
    elif kind == "put_if_absent":
        record = check_record(operation.get("record"), "operation.record")
        call = lambda: store.put_if_absent(key, record)  # noqa: E731
    elif kind == "compare_and_swap":
        record = check_record(operation.get("record"), "operation.record")
        rvn = check_rvn(operation.get("expected_rvn"))
        call = lambda: store.compare_and_swap(key, rvn, record)  # noqa: E731
    else:
        raise UsageError("invalid_argument", f"operation.op: expected get, put_if_absent or compare_and_swap, found {kind!r}")
    try:
        result = call()
    except StoreLost:
        return {"reply": "lost"}
    except StoreUnavailable:
        return {"reply": "unavailable"}
    except Exception:  # noqa: BLE001 - an adapter bug or an unmapped client error
        # Whether a write went out is unknown: reading back is always safe.
        return {"reply": "lost" if kind != "get" else "unavailable"}
    try:
        if kind == "get":
            return {"reply": "found", "record": None if result is None else check_record(result, "get result")}
        ok, current = result  # type: ignore[misc]
        if ok:
            return {"reply": "done"}
        return {"reply": "refused", "current": None if current is None else check_record(current, "refused record")}
    except (UsageError, TypeError, ValueError):
        # The adapter answered something that is not a reply: treat as no reply.
        return {"reply": "lost" if kind != "get" else "unavailable"}


def force_release(store: LeaseStore, key: str, *, expected_rvn: Optional[int] = None) -> Optional[Record]:
    """Free a stuck lease at ``key`` safely; return the record written (``None`` if there
    is no record, or it was already released).

    The record is replaced by compare-and-swap, never deleted: the owner is cleared, the
    epoch bumped (so the stuck holder's fence is stale), the committed token cleared (the
    stuck holder's write may or may not have landed: the next writer reads the entity
    before writing). With ``expected_rvn`` the release applies only to the record you
    inspected (raises :class:`StoreError` if it changed meanwhile). Other failures of the
    store raise :class:`StoreError`.
    """
    import secrets

    check_key(key)
    current = store.get(key)
    if current is None or current["owner"] == "":
        return None
    rvn = current["rvn"] if expected_rvn is None else check_rvn(expected_rvn)
    released = dict(current, owner="", holder=None, committed_token=None, epoch=current["epoch"] + 1,
                    rvn=secrets.randbelow(_MAX_INT) + 1)
    ok, found = store.compare_and_swap(key, rvn, released)
    if not ok:
        raise StoreError(f"{key!r}: the record changed meanwhile (now {found!r}); inspect it again")
    return released


class MemoryStore:
    """A lease store in a dict, for tests and for writers in one process.

    Thread-safe; records are copied in and out.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: Dict[str, Record] = {}

    def get(self, key: str) -> Optional[Record]:
        """The record at ``key``, or ``None``."""
        with self._lock:
            found = self._records.get(check_key(key))
            return None if found is None else dict(found)

    def put_if_absent(self, key: str, record: Record) -> WriteResult:
        """Create the record if there is none; refused with the record found."""
        record = check_record(record)
        with self._lock:
            found = self._records.get(check_key(key))
            if found is not None:
                return False, dict(found)
            self._records[key] = record
            return True, None

    def compare_and_swap(self, key: str, expected_rvn: int, record: Record) -> WriteResult:
        """Replace the record if its ``rvn`` is ``expected_rvn``."""
        record = check_record(record)
        check_rvn(expected_rvn)
        with self._lock:
            found = self._records.get(check_key(key))
            if found is None or found["rvn"] != expected_rvn:
                return False, None if found is None else dict(found)
            self._records[key] = record
            return True, None

    def snapshot(self) -> Dict[str, Record]:
        """A copy of every record, by key."""
        with self._lock:
            return copy.deepcopy(self._records)


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
    raise AttributeError(f"module 'writelane.stores' has no attribute {name!r}")


__all__ = [
    "FIELDS",
    "DynamoDBStore",
    "FileStore",
    "LeaseStore",
    "MemoryStore",
    "Record",
    "RedisStore",
    "StoreCorrupt",
    "StoreError",
    "StoreLost",
    "StoreUnavailable",
    "WriteResult",
    "apply",
    "check_record",
    "create_table",
    "force_release",
]
