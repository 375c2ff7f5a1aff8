"""The Redis lease store (redis-py).

Layout: one string per entity at ``prefix + key`` holding the record as JSON. Both
conditional writes run as Lua scripts, so each is atomic on the server:
``put_if_absent`` (GET, SET if missing, else return what was found) and
``compare_and_swap`` (GET, decode, compare ``rvn``, SET, else return what was found).
Records never expire (no TTL): expiry is the lease protocol's business, judged by the
observers' own clocks. Permissions (ACL): ``GET``, ``SET``, ``EVALSHA`` and ``EVAL`` (or
``SCRIPT LOAD``) on the keys under the prefix.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from . import (
    Record,
    StoreCorrupt,
    StoreLost,
    StoreUnavailable,
    WriteResult,
    check_key,
    check_record,
    check_rvn,
    stored_record,
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


class RedisStore:
    """A lease store in Redis, one JSON string per key under ``prefix``.

    Pass ``url`` (``redis://127.0.0.1:6379/0``): the adapter then builds a client without
    retries and with ``timeout_s`` socket timeouts. Or pass your own redis-py ``client``;
    turn its retries off (``retry=Retry(NoBackoff(), 0)``), because a conditional write
    retried after its first try landed is refused with the writer's own record.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        *,
        client: Any = None,
        prefix: str = "writelane:lease:",
        timeout_s: float = 2.0,
    ) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        if (url is None) == (client is None):
            from .._errors import UsageError

            raise UsageError("invalid_argument", "url, client: pass exactly one")
        if url is not None:
            client = redis.Redis.from_url(
                url,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                retry=Retry(NoBackoff(), 0),
            )
        self._redis = redis
        self.client = client
        self.prefix = prefix
        self._put = client.register_script(PUT_IF_ABSENT)
        self._cas = client.register_script(COMPARE_AND_SWAP)

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

    def _decode(self, value: Any, key: str) -> Record:
        try:
            return stored_record(json.loads(value), key)
        except ValueError:
            raise StoreCorrupt(f"value at {key!r} is not JSON") from None

    def get(self, key: str) -> Optional[Record]:
        """The record at ``key``, or ``None`` (a consistent read from the primary)."""
        check_key(key)
        try:
            value = self.client.get(self.prefix + key)
        except self._redis.exceptions.RedisError as exc:
            raise self._fail(exc, False) from exc
        return None if value is None else self._decode(value, key)

    def put_if_absent(self, key: str, record: Record) -> WriteResult:
        """Create the record if there is none; refused with the record found."""
        check_key(key)
        text = json.dumps(check_record(record), sort_keys=True)
        try:
            found = self._put(keys=[self.prefix + key], args=[text])
        except self._redis.exceptions.RedisError as exc:
            raise self._fail(exc, True) from exc
        if found == 1:
            return True, None
        return False, self._decode(found, key)

    def compare_and_swap(self, key: str, expected_rvn: int, record: Record) -> WriteResult:
        """Replace the record if its ``rvn`` is ``expected_rvn``."""
        check_key(key)
        check_rvn(expected_rvn)
        text = json.dumps(check_record(record), sort_keys=True)
        try:
            found = self._cas(keys=[self.prefix + key], args=[str(expected_rvn), text])
        except self._redis.exceptions.RedisError as exc:
            raise self._fail(exc, True) from exc
        if found == 1:
            return True, None
        if found == 0:
            return False, None
        return False, self._decode(found, key)

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r})"
