"""The file lease store: one JSON file of ``{key: record}`` for writers on one host.

Every operation takes an exclusive ``flock`` of a lock file beside the store
(``PATH.lock``), reads the JSON file, and writes a changed store atomically (a temporary
file in the same directory, fsync, rename), so a process killed mid-write leaves the old
or the new store, never half of one. Waiting for the lock is bounded by the store timeout
(the lane's ``lease.store_timeout_ms``); records read back go to the core's parser. The lock is per open file, so threads of one process
exclude each other as well as other processes. Works on local file systems; ``flock`` over
NFS is not dependable.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
import time
from typing import Any, Dict, Optional

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


class FileStore(TimeoutBound):
    """A lease store in the JSON file ``path`` (created on first write), guarded by an
    ``flock`` of ``path + ".lock"``.

    An operation that cannot take the lock within the store timeout (``timeout_ms``: the
    core's default until a lane hands over its policy's ``lease.store_timeout_ms``) reports
    the store unavailable: a process stopped while holding it must not hang everyone.
    Directory permissions: every writer needs read and write access to the directory
    (for the lock file and the atomic rename).
    """

    def __init__(self, path: "str | os.PathLike[str]") -> None:
        self.path = os.fspath(path)
        self.lock_path = self.path + ".lock"

    def _locked(self) -> int:
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open {self.lock_path}: {exc}") from exc
        wait_s = self.timeout_ms / 1000
        deadline = time.monotonic() + wait_s
        delay = 0.0005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EINTR):
                    os.close(fd)
                    raise StoreUnavailable(f"cannot lock {self.lock_path}: {exc}") from exc
            if time.monotonic() >= deadline:
                os.close(fd)
                raise StoreUnavailable(f"{self.lock_path}: still locked after {wait_s}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def _load(self) -> Dict[str, Any]:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StoreUnavailable(f"cannot read {self.path}: {exc}") from exc
        if not data.strip():
            return {}
        try:
            records = json.loads(data)
        except ValueError as exc:
            raise StoreCorrupt(f"{self.path}: not JSON: {exc}") from None
        if not isinstance(records, dict):
            raise StoreCorrupt(f"{self.path}: expected a JSON object of records")
        return records

    def _save(self, records: Dict[str, Any]) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            fd, tmp = tempfile.mkstemp(prefix=".writelane-", dir=directory)
        except OSError as exc:
            raise StoreUnavailable(f"cannot write in {directory}: {exc}") from exc
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(records, f, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise StoreUnavailable(f"cannot write {self.path}: {exc}") from exc
        try:
            dfd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            # The rename happened; whether it is durable is unknown.
            raise StoreLost(f"cannot sync {directory}: {exc}") from exc

    def _current(self, records: Dict[str, Any], key: str) -> Optional[Record]:
        found = records.get(key)
        return None if found is None else parse_record(found, key)

    def get(self, key: str) -> Optional[Record]:
        """The record at ``key``, or ``None``."""
        check_key(key)
        fd = self._locked()
        try:
            return self._current(self._load(), key)
        finally:
            os.close(fd)

    def put_if_absent(self, key: str, record: Record) -> WriteResult:
        """Create the record if there is none; refused with the record found."""
        check_key(key)
        fd = self._locked()
        try:
            records = self._load()
            found = self._current(records, key)
            if found is not None:
                return False, found
            records[key] = record
            self._save(records)
            return True, None
        finally:
            os.close(fd)

    def compare_and_swap(self, key: str, expected_rvn: int, record: Record) -> WriteResult:
        """Replace the record if its ``rvn`` is ``expected_rvn``."""
        check_key(key)
        check_rvn(expected_rvn)
        fd = self._locked()
        try:
            records = self._load()
            found = self._current(records, key)
            if found is None or found["rvn"] != expected_rvn:
                return False, found
            records[key] = record
            self._save(records)
            return True, None
        finally:
            os.close(fd)

    def __repr__(self) -> str:
        return f"FileStore({self.path!r})"
