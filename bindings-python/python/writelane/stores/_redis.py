"""The Redis lease store (redis-py).

Layout: one string per entity at ``prefix + key`` holding the record as JSON. Both
conditional writes run as Lua scripts, so each is atomic on the server:
``put_if_absent`` (GET, SET if missing, else return what was found) and
``compare_and_swap`` (GET, decode, compare ``rvn``, SET, else return what was found).
The value read back is handed to the core's parser as it is. Every request is bounded by
the store timeout (socket timeouts of the lane's ``lease.store_timeout_ms``). Records never
expire (no TTL): expiry is the lease protocol's business, judged by the observers' own
clocks. Permissions (ACL): ``GET``, ``SET``, ``EVALSHA`` and ``EVAL`` (or
``SCRIPT LOAD``) on the keys under the prefix.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Optional

from . import (
    Record,
    StoreCorrupt,
    StoreLost,
    StoreUnavailable,
    TimeoutBound,
    WriteResult,
    check_key,
    check_rvn,
    parse_record,
)

#: Create the record if the key is empty: 1 when created, else the value found.
PUT_IF_ABSENT = """
local cur = redis.call('GET', KEYS[1])
if cur then return cur end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""

#: Replace the record if its rvn is ARGV[1]: 1 when replaced, 0 when there is no record,
#: else the value found.
COMPARE_AND_SWAP = """
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local ok, rec = pcall(cjson.decode, cur)
if not ok or type(rec) ~= 'table' or type(rec['rvn']) ~= 'number' then
  return redis.error_reply('WLCORRUPT stored value is not a lease record')
end
if rec['rvn'] ~= tonumber(ARGV[1]) then return cur end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


def _connect_failure(exc: BaseException) -> bool:
    """Whether a redis-py error happened while connecting (nothing was sent)."""
    text = str(exc)
    return " connecting to " in text or text.startswith("Timeout connecting")


class RedisStore(TimeoutBound):
    """A lease store in Redis, one JSON string per key under ``prefix``.

    Pass ``url`` (``redis://127.0.0.1:6379/0``): the adapter then builds a client without
    retries and with socket timeouts of the store timeout (``timeout_ms``: the core's
    default until a lane hands over its policy's ``lease.store_timeout_ms``). Or pass your
    own redis-py ``client``; turn its retries off (``retry=Retry(NoBackoff(), 0)``) and
    keep its timeouts no longer than the lane's store timeout.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        *,
        client: Any = None,
        prefix: str = "writelane:lease:",
    ) -> None:
        import redis

        if (url is None) == (client is None):
            from .._errors import UsageError

            raise UsageError("invalid_argument", "url, client: pass exactly one")
        self._redis = redis
        self._url = url
        self._lock = threading.Lock()
        self._built: Any = client
        self.prefix = prefix
        self._scripts: Any = None
        self.client  # build now: a bad url fails here

    @property
    def client(self) -> Any:
        """The redis-py client."""
        with self._lock:
            if self._built is None:
                from redis.backoff import NoBackoff
                from redis.retry import Retry

                timeout = self.timeout_ms / 1000
                assert self._url is not None  # a client given to the constructor is kept
                self._built = self._redis.Redis.from_url(
                    self._url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
                )
                self._scripts = None
            if self._scripts is None:
                self._scripts = (self._built.register_script(PUT_IF_ABSENT), self._built.register_script(COMPARE_AND_SWAP))
            return self._built

    def _timeout_changed(self) -> None:
        # The next request connects with the new timeouts (a client given to the
        # constructor keeps its own configuration).
        if self._url is not None:
            with self._lock:
                self._built = None

    def _fail(self, exc: BaseException, wrote: bool) -> Exception:
        errors = self._redis.exceptions
        if isinstance(exc, errors.ResponseError) and "WLCORRUPT" in str(exc):
            return StoreCorrupt(str(exc))
        if isinstance(exc, (errors.ConnectionError, errors.TimeoutError)):
            if wrote and not _connect_failure(exc):
                return StoreLost(str(exc))
            return StoreUnavailable(str(exc))
        # Refused outright by the server (READONLY, OOM, NOPERM, LOADING ...).
        return StoreUnavailable(str(exc))

    def get(self, key: str) -> Optional[Record]:
        """The record at ``key``, or ``None`` (a consistent read from the primary)."""
        check_key(key)
        try:
            value = self.client.get(self.prefix + key)
        except self._redis.exceptions.RedisError as exc:
            raise self._fail(exc, False) from exc
        return None if value is None else parse_record(value, key)

    def put_if_absent(self, key: str, record: Record) -> WriteResult:
        """Create the record if there is none; refused with the record found."""
        check_key(key)
        text = json.dumps(record)
        client = self.client
        try:
            found = self._scripts[0](keys=[self.prefix + key], args=[text], client=client)
        except self._redis.exceptions.RedisError as exc:
            raise self._fail(exc, True) from exc
        if found == 1:
            return True, None
        return False, parse_record(found, key)

    def compare_and_swap(self, key: str, expected_rvn: int, record: Record) -> WriteResult:
        """Replace the record if its ``rvn`` is ``expected_rvn``."""
        check_key(key)
        check_rvn(expected_rvn)
        text = json.dumps(record)
        client = self.client
        try:
            found = self._scripts[1](keys=[self.prefix + key], args=[str(expected_rvn), text], client=client)
        except self._redis.exceptions.RedisError as exc:
            raise self._fail(exc, True) from exc
        if found == 1:
            return True, None
        if found == 0:
            return False, None
        return False, parse_record(found, key)

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r})"
